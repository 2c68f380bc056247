import HiFCCore

/// One message of a chat, as the OpenAI API sends it.
public struct ChatMessage: Sendable, Hashable {
    /// "system", "user", "assistant" or "tool".
    public var role: String
    /// The message text.
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// What a client asks the engine to generate.
public struct GenerationRequest: Sendable {
    /// Unique id of the request (the server's request id).
    public var id: String
    /// The prompt, already tokenized.
    public var promptTokens: [Int]
    /// How to sample and when to stop.
    public var sampling: SamplingParams
    /// Keeps this request's cached prefixes apart from those of requests with another salt or
    /// none (vLLM's `cache_salt`: one tenant cannot find another's prompts by timing).
    public var cacheSalt: String?
    /// The request this sequence is one of (the server's request: its `n` choices and prompts),
    /// for the engine's fairness between requests (`FairShare`). Sequences that name none are one
    /// request together, served first come, first served.
    public var fairnessGroup: FairShare.Group

    public init(id: String, promptTokens: [Int], sampling: SamplingParams, cacheSalt: String? = nil, fairnessGroup: FairShare.Group = nil) {
        self.id = id
        self.promptTokens = promptTokens
        self.sampling = sampling
        self.cacheSalt = cacheSalt
        self.fairnessGroup = fairnessGroup
    }
}

/// Why generation of a request ended (OpenAI's `finish_reason`).
public enum FinishReason: String, Sendable, Hashable {
    /// EOS, a stop string or a stop token.
    case stop
    /// `maxTokens` or the model's context length reached.
    case length
    /// The client went away or the request was aborted.
    case abort
}

/// Token counts of one request (OpenAI's `usage`).
public struct TokenUsage: Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// Prompt tokens whose KV came from the prefix cache (`prompt_tokens_details.cached_tokens`).
    public var cachedTokens: Int
    public var totalTokens: Int { promptTokens + completionTokens }

    public init(promptTokens: Int, completionTokens: Int, cachedTokens: Int = 0) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedTokens = cachedTokens
    }
}

/// What the engine streams back for one request.
public enum GenerationEvent: Sendable, Hashable {
    /// New tokens and the text they complete. `text` may be empty while a multi-byte character is
    /// still incomplete, and it never contains a stop string. `logprobs` has one entry per token
    /// when the request asked for them (`SamplingParams.logprobs`), none otherwise.
    case delta(tokenIDs: [Int], text: String, logprobs: [GeneratedLogprobs] = [])
    /// The last event of a request.
    case finished(FinishReason, TokenUsage)
}

/// Why a request could not be generated; each case is the client's fault and has a message for it.
public enum GenerationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Prompt plus `maxTokens` exceed the model's context.
    case contextTooLong(promptTokens: Int, maxTokens: Int, limit: Int)
    /// The prompt has no tokens.
    case emptyPrompt
    /// A request's parameters are out of range; `parameter` names which.
    case invalidParameter(parameter: String, reason: String)
    /// The engine stopped (shut down, or a fault it could not recover from).
    case engineStopped(String)

    public var description: String {
        switch self {
        case .contextTooLong(let p, let m, let limit):
            return "This model's maximum context length is \(limit) tokens; the request has \(p) prompt tokens and asks for \(m) more."
        case .emptyPrompt: return "The prompt is empty."
        case .invalidParameter(let p, let reason): return "Invalid '\(p)': \(reason)"
        case .engineStopped(let why): return "The engine stopped: \(why)"
        }
    }
}

/// The engine as the HTTP server sees it.
///
/// Cancelling the task that consumes `generate`'s stream (a client that disconnects) aborts the
/// request and frees its KV blocks.
public protocol GenerationService: Sendable {
    /// The model's name as `/v1/models` lists it.
    var modelID: String { get }
    /// Most tokens (prompt plus output) of one sequence.
    var maxContextTokens: Int { get }
    /// Tokenizes plain text (completions), adding the model's BOS token when it uses one.
    func encode(_ text: String) throws -> [Int]
    /// Renders `messages` with the model's chat template, ready to generate the assistant's turn.
    func encodeChat(_ messages: [ChatMessage]) throws -> [Int]
    /// The text of token ids, special tokens included (ids outside the vocabulary add nothing).
    func decode(_ tokens: [Int]) -> String
    /// Starts generating; the stream ends after `.finished`, or throws a `GenerationError`.
    func generate(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error>
    /// Forgets cached prefixes on the device and, with `flash`, on flash; returns the numbers of
    /// device and flash blocks forgotten.
    func resetPrefixCache(flash: Bool) async -> (device: Int, flash: Int)
    /// Sequences the engine holds without running them (waiting for admission, or preempted), as
    /// of its latest step; the server's admission hands it no more while this is high.
    var backlog: Int { get }
}

extension GenerationService {
    /// A service without a prefix cache has nothing to forget.
    public func resetPrefixCache(flash: Bool) async -> (device: Int, flash: Int) { (0, 0) }
    /// No backlog known: a service that does not report one.
    public var backlog: Int { 0 }
}
