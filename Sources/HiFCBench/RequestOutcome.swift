/// One request of a `bench serve` run: when it was sent, what came back and how fast.
public struct RequestOutcome: Sendable {
    /// Its session and its turn in that session (0 for the first).
    public var session: Int
    public var turn: Int
    /// Seconds from the run's start to its first attempt.
    public var sentAt: Double
    /// Prompt tokens: the server's count from `usage` when it sent one, else the count asked for.
    public var promptTokens: Int
    /// Prompt tokens the server's prefix cache supplied, when it says (`cached_tokens` in usage).
    public var cachedPromptTokens: Int?
    /// Output tokens: the server's count when it sent one, else the number of text chunks.
    public var outputTokens: Int
    /// Seconds from the first attempt to the first token (0 when it failed).
    public var ttft: Double
    /// Seconds from the first attempt to the end of its stream.
    public var latency: Double
    /// Seconds between successive chunks of text.
    public var interTokenLatencies: [Double]
    /// Attempts repeated after a 429 (rate limited) answer.
    public var retries: Int
    /// Why it failed; nil when it was answered in full.
    public var failure: RequestFailure?

    /// Seconds per output token after the first; nil for a failure or a single-token answer.
    public var tpot: Double? {
        guard failure == nil, outputTokens > 1 else { return nil }
        return (latency - ttft) / Double(outputTokens - 1)
    }

    /// A request that produced no answer.
    public static func failed(
        session: Int, turn: Int, sentAt: Double, promptTokens: Int, latency: Double, retries: Int, _ failure: RequestFailure
    ) -> RequestOutcome {
        RequestOutcome(
            session: session, turn: turn, sentAt: sentAt, promptTokens: promptTokens, cachedPromptTokens: nil, outputTokens: 0, ttft: 0,
            latency: latency,
            interTokenLatencies: [], retries: retries, failure: failure)
    }
}

/// Why a request was not answered in full.
public struct RequestFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// A short class for counting: `http 429`, `http 500`, `timeout`, `connect`, `stream`, ...
    public var kind: String
    /// The detail (the server's error message, say).
    public var message: String
    /// Seconds the server asked to wait (`Retry-After`), when it did.
    public var retryAfter: Double?

    public init(kind: String, message: String, retryAfter: Double? = nil) {
        self.kind = kind
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(kind): \(message)" }
}
