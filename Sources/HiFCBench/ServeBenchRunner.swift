import Foundation
import HiFCCore
import NIOHTTP1

/// Sends a `ServeWorkload` to an OpenAI-compatible server at a request rate and measures every
/// request: sessions start at Poisson arrival times (or all at once), their turns follow each
/// other, and at most `maxConcurrency` requests are in flight.
public struct ServeBenchRunner: Sendable {
    /// Where and how requests go.
    public struct Settings: Sendable {
        public var baseURL: BaseURL
        public var endpoint: ServeEndpoint
        public var model: String
        /// Sent as `Authorization: Bearer`, when set.
        public var apiKey: String?
        public var options: Conversation.Options
        /// Most requests in flight (nil: no limit).
        public var maxConcurrency: Int?
        /// Longest a request may take.
        public var timeout: Duration
        /// Times a request answered 429 is sent again, after the server's `Retry-After` (1 s if it
        /// gives none); 0 counts a 429 as a failure at once.
        public var maxRetries: Int

        public init(
            baseURL: BaseURL, endpoint: ServeEndpoint, model: String, apiKey: String? = nil, options: Conversation.Options = .init(),
            maxConcurrency: Int? = nil, timeout: Duration = .seconds(600), maxRetries: Int = 0
        ) {
            self.baseURL = baseURL
            self.endpoint = endpoint
            self.model = model
            self.apiKey = apiKey
            self.options = options
            self.maxConcurrency = maxConcurrency
            self.timeout = timeout
            self.maxRetries = maxRetries
        }
    }

    /// Every request of one run at one rate.
    public struct Run: Sendable {
        public var rate: RequestRate
        public var outcomes: [RequestOutcome]
        /// Seconds from the first arrival to the last request's end.
        public var duration: Double
    }

    public var settings: Settings
    public var client: StreamingHTTPClient
    /// Encodes replies to token ids when prompts are sent as ids.
    public var prompts: SyntheticPrompt

    public init(settings: Settings, client: StreamingHTTPClient, prompts: SyntheticPrompt) {
        self.settings = settings
        self.client = client
        self.prompts = prompts
    }

    /// Runs `workload` with sessions arriving at `rate` (arrival times drawn from `seed`);
    /// `finished` is called as each request ends.
    public func run(_ workload: ServeWorkload, rate: RequestRate, seed: UInt64, finished: @escaping @Sendable (RequestOutcome) -> Void) async -> Run {
        let offsets = rate.arrivalOffsets(count: workload.sessions.count, seed: seed)
        let limit = ConcurrencyLimit(settings.maxConcurrency)
        let start = ContinuousClock.now
        let outcomes = await withTaskGroup(of: [RequestOutcome].self) { group in
            for (session, offset) in zip(workload.sessions, offsets) {
                group.addTask {
                    try? await Task.sleep(until: start + .nanoseconds(Int64(offset * 1e9)), clock: .continuous)
                    return await runSession(session, start: start, limit: limit, finished: finished)
                }
            }
            var all: [RequestOutcome] = []
            for await outcomes in group { all += outcomes }
            return all
        }
        let duration = (ContinuousClock.now - start).inSeconds
        return Run(rate: rate, outcomes: outcomes.sorted { ($0.sentAt, $0.session, $0.turn) < ($1.sentAt, $1.session, $1.turn) }, duration: duration)
    }

    private func runSession(
        _ session: ServeWorkload.Session, start: ContinuousClock.Instant, limit: ConcurrencyLimit, finished: @Sendable (RequestOutcome) -> Void
    ) async -> [RequestOutcome] {
        var conversation = Conversation()
        var outcomes: [RequestOutcome] = []
        // Prompt tokens as asked for: the document, every message and every reply so far (the
        // server's own count replaces it when it sends usage).
        var askedTokens = session.sharedPrefix?.tokens ?? 0
        for (index, turn) in session.turns.enumerated() {
            conversation.addUser(turn.message, after: index == 0 ? session.sharedPrefix : nil)
            askedTokens += turn.message.tokens
            if outcomes.last?.failure != nil {
                // The conversation cannot go on without the reply it lacks.
                let outcome = RequestOutcome.failed(
                    session: session.index, turn: index, sentAt: (ContinuousClock.now - start).inSeconds,
                    promptTokens: askedTokens, latency: 0, retries: 0,
                    RequestFailure(kind: "skipped", message: "an earlier turn of its session failed"))
                finished(outcome)
                outcomes.append(outcome)
                continue
            }
            await limit.acquire()
            let body = conversation.body(endpoint: settings.endpoint, model: settings.model, maxTokens: turn.outputTokens, options: settings.options)
            let (outcome, reply) = await send(body, session: session.index, turn: index, promptTokens: askedTokens, start: start)
            await limit.release()
            finished(outcome)
            outcomes.append(outcome)
            conversation.addAssistant(reply, tokenIDs: settings.options.tokenIDPrompts ? prompts.tokenIDs(of: reply) : nil)
            askedTokens += outcome.outputTokens
        }
        return outcomes
    }

    /// One request, sent again after a 429 up to `maxRetries` times; its times count from the
    /// first attempt, as its client would see them.
    private func send(_ body: [UInt8], session: Int, turn: Int, promptTokens: Int, start: ContinuousClock.Instant) async -> (RequestOutcome, String) {
        let first = ContinuousClock.now
        let sentAt = (first - start).inSeconds
        var retries = 0
        while true {
            switch await attempt(body, start: first) {
            case .success(let measured):
                let outcome = RequestOutcome(
                    session: session, turn: turn, sentAt: sentAt, promptTokens: measured.promptTokens ?? promptTokens,
                    cachedPromptTokens: measured.cachedPromptTokens,
                    outputTokens: measured.outputTokens, ttft: measured.ttft ?? 0, latency: measured.latency,
                    interTokenLatencies: measured.interTokenLatencies, retries: retries, failure: nil)
                return (outcome, measured.text)
            case .failure(let failure):
                if failure.kind == "http 429", retries < settings.maxRetries {
                    retries += 1
                    try? await Task.sleep(for: .milliseconds(Int((failure.retryAfter ?? 1) * 1000)))
                    continue
                }
                let latency = (ContinuousClock.now - first).inSeconds
                return (
                    .failed(session: session, turn: turn, sentAt: sentAt, promptTokens: promptTokens, latency: latency, retries: retries, failure), ""
                )
            }
        }
    }

    /// One HTTP exchange, measured from `start`.
    private func attempt(_ body: [UInt8], start: ContinuousClock.Instant) async -> Result<StreamMeasurement, RequestFailure> {
        var headers = [("Content-Type", "application/json"), ("Accept", "text/event-stream")]
        if let apiKey = settings.apiKey { headers.append(("Authorization", "Bearer \(apiKey)")) }
        var measurement = StreamMeasurement(start: start)
        var status = 0
        var retryAfter: Double?
        var errorBody: [UInt8] = []
        var parser = ServerSentEventParser()
        var ended = false
        do {
            let parts = try await client.send(
                .POST, to: settings.baseURL, path: settings.endpoint.path(under: settings.baseURL), headers: headers, body: body,
                timeout: settings.timeout)
            for try await part in parts {
                switch part {
                case .head(let code, let fields):
                    status = code
                    retryAfter = fields.first { $0.name.lowercased() == "retry-after" }.flatMap { Self.retryAfterSeconds($0.value) }
                case .body(let buffer, let time):
                    if status == 200 {
                        for event in parser.feed(buffer.readableBytesView) { try measurement.receive(event, at: time) }
                    } else if errorBody.count < 4096 {
                        errorBody += buffer.readableBytesView
                    }
                case .end:
                    ended = true
                }
            }
        } catch let error as HTTPClientError {
            switch error {
            case .timedOut: return .failure(RequestFailure(kind: "timeout", message: error.description))
            case .cannotConnect, .badURL: return .failure(RequestFailure(kind: "connect", message: error.description))
            case .closedEarly: return .failure(RequestFailure(kind: "closed", message: error.description))
            }
        } catch let error as StreamMeasurement.StreamError {
            return .failure(RequestFailure(kind: "stream", message: error.message))
        } catch {
            return .failure(RequestFailure(kind: "other", message: "\(error)"))
        }
        guard status == 200 else {
            return .failure(RequestFailure(kind: "http \(status)", message: Self.errorMessage(errorBody), retryAfter: retryAfter))
        }
        guard ended, measurement.ttft != nil else {
            return .failure(RequestFailure(kind: "empty", message: "the stream ended without any text"))
        }
        return .success(measurement)
    }

    /// `Retry-After` as seconds: a number of seconds, or an HTTP date.
    static func retryAfterSeconds(_ value: String) -> Double? {
        if let seconds = Double(value.trimmingCharacters(in: .whitespaces)), seconds >= 0 { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: value).map { max(0, $0.timeIntervalSinceNow) }
    }

    /// The message of an OpenAI error body, or the body's start.
    static func errorMessage(_ body: [UInt8]) -> String {
        struct Envelope: Decodable {
            struct Detail: Decodable { var message: String? }
            var error: Detail?
        }
        if let message = (try? JSONDecoder().decode(Envelope.self, from: Data(body)))?.error?.message { return message }
        return String(decoding: body.prefix(300), as: UTF8.self)
    }
}

/// At most `limit` holders at once (no limit when nil); waiters are served in arrival order.
actor ConcurrencyLimit {
    private let limit: Int?
    private var held = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(_ limit: Int?) { self.limit = limit }

    func acquire() async {
        guard let limit, held >= limit else {
            held += 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            held -= 1
        } else {
            // The slot passes straight to the next waiter.
            waiters.removeFirst().resume()
        }
    }
}
