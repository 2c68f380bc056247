import Engine
import Foundation
import HiFCCore
import Metrics
import Synchronization

/// Admission and fair dispatch in front of the engine.
///
/// Each request's choices enter a `FairDispatchQueue` as one group, or are refused at once with a
/// 429 naming the full bound and a `Retry-After` estimate. The controller hands sequences to the
/// engine as the queue allows (a bounded number in the engine, few waiting or preempted inside it
/// as `GenerationService.backlog` reports, the next one from the request with the fewest there),
/// runs one task per sequence in the engine, and merges each request's events
/// into its `ChoiceStreams`. Ending a request (`ChoiceStreams.cancel`, a client gone) drops its
/// waiting sequences and aborts those in the engine together.
///
/// `stopAccepting` and `abortAll` serve graceful shutdown: new requests get a 503, and requests
/// still running at the deadline end with `GenerationError.engineStopped`.
final class AdmissionController: Sendable {
    typealias Events = AsyncThrowingStream<(choice: Int, event: GenerationEvent), Error>

    /// One choice of a request waiting for the engine.
    struct Choice: Sendable {
        var index: Int
        var request: GenerationRequest
    }

    private struct Group {
        var continuation: Events.Continuation
        /// Consumer tasks of the choices in the engine, by choice index.
        var tasks: [Int: Task<Void, Never>] = [:]
        /// Choices not finished yet.
        var remaining: Int
    }

    private struct State {
        var queue: FairDispatchQueue<Choice>
        var groups: [FairDispatchQueue<Choice>.GroupID: Group] = [:]
        var nextGroup: FairDispatchQueue<Choice>.GroupID = 1
        var accepting = true
        var throughput = ThroughputWindow()
    }

    private let service: any GenerationService
    private let state: Mutex<State>

    /// A controller feeding `service` within `limits`.
    init(service: any GenerationService, limits: FairDispatchQueue<Choice>.Limits) {
        self.service = service
        state = Mutex(State(queue: FairDispatchQueue(limits: limits)))
    }

    /// Queues `choices` as one request and starts those the engine may take now; throws a 429
    /// when the queue is full and a 503 once shutdown has begun.
    func submit(_ choices: [GenerationRequest]) throws(OpenAIError) -> ChoiceStreams {
        let (events, continuation) = Events.makeStream()
        let items = choices.enumerated().map { (item: Choice(index: $0.offset, request: $0.element), tokens: Self.tokens(of: $0.element)) }
        let group = try state.withLock { state throws(OpenAIError) -> FairDispatchQueue<Choice>.GroupID in
            guard state.accepting else { throw OpenAIError.shuttingDown }
            let id = state.nextGroup
            if let refusal = state.queue.enqueue(group: id, items: items) {
                let retryAfter = state.throughput.secondsToServe(tokens: state.queue.queuedTokens)
                throw OpenAIError.queueFull(refusal, retryAfterSeconds: retryAfter)
            }
            state.nextGroup += 1
            state.groups[id] = Group(continuation: continuation, remaining: choices.count)
            return id
        }
        continuation.onTermination = { [weak self] _ in self?.cancel(group: group) }
        dispatch()
        return ChoiceStreams(events: events, cancel: { [weak self] in self?.cancel(group: group) })
    }

    /// Refuses every later request with a 503 (shutdown has begun).
    func stopAccepting() { state.withLock { $0.accepting = false } }

    /// Requests queued or running.
    var activeRequests: Int { state.withLock { $0.groups.count } }

    /// Ends every request now: their streams throw `error`, their sequences leave the engine.
    /// Returns how many requests were ended.
    @discardableResult
    func abortAll(_ error: GenerationError) -> Int {
        let ended = state.withLock { state -> [Group] in
            let groups = Array(state.groups.values)
            for id in state.groups.keys { state.queue.removeWaiting(of: id) }
            state.groups = [:]
            return groups
        }
        for group in ended {
            group.tasks.values.forEach { $0.cancel() }
            group.continuation.finish(throwing: error)
        }
        publishGauges()
        return ended.count
    }

    /// Waits until no request is queued or running, or `deadline` passes; returns whether idle.
    func waitUntilIdle(deadline: ContinuousClock.Instant) async -> Bool {
        while ContinuousClock.now < deadline {
            if state.withLock({ $0.groups.isEmpty && $0.queue.inEngine == 0 }) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return state.withLock { $0.groups.isEmpty && $0.queue.inEngine == 0 }
    }

    // MARK: Running

    /// Work a waiting sequence represents: its prompt plus every token it may generate.
    private static func tokens(of request: GenerationRequest) -> Int {
        request.promptTokens.count + request.sampling.maxTokens
    }

    /// Starts every sequence the queue lets into the engine now.
    private func dispatch() {
        state.withLock { state in
            let backlog = service.backlog
            while let (group, choice) = state.queue.next(engineBacklog: backlog) {
                guard state.groups[group] != nil else {
                    state.queue.finished(group: group, started: false)
                    continue
                }
                state.groups[group]!.tasks[choice.index] = Task.detached { [self] in await run(choice, group: group) }
            }
        }
        publishGauges()
    }

    /// Generates one sequence and forwards its events to its request's stream.
    private func run(_ choice: Choice, group: FairDispatchQueue<Choice>.GroupID) async {
        guard let continuation = state.withLock({ $0.groups[group]?.continuation }), !Task.isCancelled else {
            finished(choice, group: group, started: false, failure: nil)
            return
        }
        var started = false
        var failure: (any Error)?
        // The engine shares itself fairly between requests, as the queue does.
        var request = choice.request
        request.fairnessGroup = group
        do {
            for try await event in service.generate(request) {
                if !started {
                    started = true
                    state.withLock { $0.queue.started(group: group) }
                    dispatch()
                } else if state.withLock({ $0.queue.queuedSequences > 0 }) {
                    // Each step may have emptied the engine's backlog: look again while any wait.
                    dispatch()
                }
                if case .finished(_, let usage) = event {
                    state.withLock { $0.throughput.record(tokens: usage.promptTokens + usage.completionTokens) }
                }
                continuation.yield((choice.index, event))
            }
        } catch {
            failure = error
        }
        finished(choice, group: group, started: started, failure: Task.isCancelled ? nil : failure)
    }

    /// Books a sequence out of the engine; the first failure ends its whole request.
    private func finished(_ choice: Choice, group: FairDispatchQueue<Choice>.GroupID, started: Bool, failure: (any Error)?) {
        let ending = state.withLock { state -> (Group, (any Error)?)? in
            state.queue.finished(group: group, started: started)
            guard var entry = state.groups[group] else { return nil }
            entry.tasks[choice.index] = nil
            if let failure {
                state.groups[group] = nil
                state.queue.removeWaiting(of: group)
                return (entry, failure)
            }
            entry.remaining -= 1
            if entry.remaining == 0 {
                state.groups[group] = nil
                return (entry, nil)
            }
            state.groups[group] = entry
            return nil
        }
        if let (entry, failure) = ending {
            entry.tasks.values.forEach { $0.cancel() }
            if let failure { entry.continuation.finish(throwing: failure) } else { entry.continuation.finish() }
        }
        dispatch()
    }

    /// Ends one request: drops its waiting sequences and aborts those in the engine.
    private func cancel(group: FairDispatchQueue<Choice>.GroupID) {
        let ended = state.withLock { state -> Group? in
            guard let entry = state.groups.removeValue(forKey: group) else { return nil }
            state.queue.removeWaiting(of: group)
            return entry
        }
        guard let ended else { return }
        ended.tasks.values.forEach { $0.cancel() }
        ended.continuation.finish()
        publishGauges()
    }

    private func publishGauges() {
        let (sequences, tokens, inEngine) = state.withLock { ($0.queue.queuedSequences, $0.queue.queuedTokens, $0.queue.inEngine) }
        Gauge(label: "hifc_admission_queued_sequences").record(sequences)
        Gauge(label: "hifc_admission_queued_tokens").record(tokens)
        Gauge(label: "hifc_admission_engine_sequences").record(inEngine)
    }
}

/// Tokens the engine served recently, to tell a refused client when to come back.
struct ThroughputWindow {
    private var windowStart = ContinuousClock.now
    private var windowTokens = 0
    /// Tokens per second over the last full window (nil until one has passed).
    private(set) var tokensPerSecond: Double?

    /// Length of a measuring window.
    static let window = Duration.seconds(10)

    mutating func record(tokens: Int) {
        windowTokens += tokens
        let elapsed = ContinuousClock.now - windowStart
        guard elapsed >= Self.window else { return }
        tokensPerSecond = Double(windowTokens) / elapsed.inSeconds
        windowStart = .now
        windowTokens = 0
    }

    /// Seconds to serve `tokens` at the measured rate, between 1 and 60 (1 before any measure).
    func secondsToServe(tokens: Int) -> Int {
        guard let rate = tokensPerSecond, rate > 0 else { return 1 }
        return Int(min(60, max(1, (Double(tokens) / rate).rounded(.up))))
    }
}
