import Engine
import Foundation
import HiFCCore
import Hummingbird
import Logging
import Synchronization

/// Runs a `CompletionPlan` through admission on the engine and answers it: one JSON body, or
/// server-sent events.
struct CompletionResponder: Sendable {
    var admission: AdmissionController
    var metrics: HTTPMetrics
    var logger: Logger

    /// What one request produced, for the response, the metrics and the log.
    private struct Outcome {
        var texts: [String]
        /// Each choice's tokens' log probabilities, when asked for.
        var logprobs: [[GeneratedLogprobs]]
        var finishReasons: [FinishReason?]
        var completionTokens = 0
        /// Each choice's prompt tokens found in the prefix cache.
        var cachedTokens: [Int]
        var firstTokenSeconds: Double?

        init(choices: Int) {
            texts = Array(repeating: "", count: choices)
            logprobs = Array(repeating: [], count: choices)
            finishReasons = Array(repeating: nil, count: choices)
            cachedTokens = Array(repeating: 0, count: choices)
        }

        /// The usage of `plan`: each prompt counted once, with the most of it any of its choices
        /// found cached (choices are prompt-major, `n` per prompt).
        func usage(_ plan: CompletionPlan) -> UsageBody {
            let perPrompt = max(cachedTokens.count / max(plan.promptTokenCounts.count, 1), 1)
            let cached = stride(from: 0, to: cachedTokens.count, by: perPrompt).reduce(0) { $0 + cachedTokens[$1..<$1 + perPrompt].max()! }
            return UsageBody(promptTokens: plan.promptTokens, completionTokens: completionTokens, cachedTokens: cached)
        }
    }

    /// The response to `plan`; `whenConnectionCloses` aborts a non-streaming generation whose
    /// client went away.
    func respond(
        to plan: CompletionPlan, whenConnectionCloses: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void
    ) async throws -> Response {
        let start = ContinuousClock.now
        let streams = try admission.submit(plan.choices)
        metrics.inFlight.increment()
        if plan.stream { return try await streamingResponse(plan, streams: streams, start: start) }
        defer { metrics.inFlight.decrement() }
        let watch = DisconnectWatch(streams)
        whenConnectionCloses { watch.connectionClosed() }
        defer { watch.disarm() }
        var outcome = Outcome(choices: plan.choices.count)
        do {
            for try await (choice, event) in streams.events {
                record(event, choice: choice, into: &outcome, start: start)
            }
        } catch {
            throw Self.openAIError(error)
        }
        if watch.fired {
            metrics.recordClientDisconnect(endpoint: plan.endpoint.rawValue)
            throw OpenAIError.clientClosedRequest
        }
        guard !outcome.finishReasons.contains(nil) else {
            throw OpenAIError.unavailable("The engine ended the request before it finished.")
        }
        finish(plan, outcome, start: start)
        let usage = outcome.usage(plan)
        let chat = plan.endpoint == .chatCompletions
        let choices = outcome.texts.indices.map { i in
            var offsets = LogprobsBody.TextOffsets()
            let text = (plan.echoTexts.indices.contains(i) ? plan.echoTexts[i] : "") + outcome.texts[i]
            return ResponseChoice(
                index: i, content: chat ? .message(text) : .text(text), finishReason: outcome.finishReasons[i],
                logprobs: logprobsBody(plan, outcome.logprobs[i], offsets: &offsets))
        }
        let body = Self.json(
            CompletionEnvelope(
                id: plan.id, object: chat ? "chat.completion" : "text_completion", created: plan.created, model: plan.model,
                choices: choices, usage: usage))
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: body))
    }

    /// Server-sent events of `plan`. The first event is awaited before the response starts, so that
    /// a request the engine refuses (a token outside the vocabulary, say) is still a 4xx.
    private func streamingResponse(_ plan: CompletionPlan, streams: ChoiceStreams, start: ContinuousClock.Instant) async throws -> Response {
        let cursor = EventCursor(streams.events)
        let first: (choice: Int, event: GenerationEvent)?
        do {
            first = try await cursor.next()
        } catch {
            streams.cancel()
            metrics.inFlight.decrement()
            throw Self.openAIError(error)
        }
        let responder = self
        let body = ResponseBody { writer in
            defer { responder.metrics.inFlight.decrement() }
            defer { streams.cancel() }
            var outcome = Outcome(choices: plan.choices.count)
            // Log probabilities of tokens whose text is still held back (part of a character, or
            // of what may be a stop string) go out with the chunk that carries their text: each
            // choice's `outcome.logprobs` from `sent` on.
            var sent = Array(repeating: 0, count: plan.choices.count)
            var offsets = Array(repeating: LogprobsBody.TextOffsets(), count: plan.choices.count)
            do {
                if plan.endpoint == .chatCompletions {
                    for index in plan.choices.indices {
                        try await writer.write(responder.chunk(plan, choice: index, text: "", finish: nil, withRole: true))
                    }
                }
                for (index, echo) in plan.echoTexts.enumerated() where !echo.isEmpty {
                    try await writer.write(responder.chunk(plan, choice: index, text: echo, finish: nil))
                }
                var next = first
                while let (choice, event) = next {
                    responder.record(event, choice: choice, into: &outcome, start: start)
                    switch event {
                    case .delta(_, let text, _):
                        if !text.isEmpty {
                            let unsent = Array(outcome.logprobs[choice][sent[choice]...])
                            sent[choice] = outcome.logprobs[choice].count
                            let body = responder.logprobsBody(plan, unsent, offsets: &offsets[choice])
                            try await writer.write(responder.chunk(plan, choice: choice, text: text, finish: nil, logprobs: body))
                        }
                    case .finished(let reason, _):
                        let unsent = Array(outcome.logprobs[choice][sent[choice]...])
                        let body = responder.logprobsBody(plan, unsent, offsets: &offsets[choice])
                        try await writer.write(responder.chunk(plan, choice: choice, text: nil, finish: reason, logprobs: body))
                    }
                    do {
                        next = try await cursor.next()
                    } catch {
                        // Headers are gone already: the error travels as an event, as OpenAI sends it.
                        let failure = Self.openAIError(error)
                        responder.logger.warning("\(plan.id) failed while streaming: \(failure.message)")
                        try await writer.write(ServerSentEvents.event(failure))
                        try await writer.finish(nil)
                        return
                    }
                }
                if plan.includeUsage {
                    try await writer.write(responder.usageChunk(plan, usage: outcome.usage(plan)))
                }
                try await writer.write(ServerSentEvents.done)
                try await writer.finish(nil)
                responder.finish(plan, outcome, start: start)
            } catch {
                // A write failed: the client is gone. Cancelling the streams aborts the generations.
                streams.cancel()
                responder.metrics.recordClientDisconnect(endpoint: plan.endpoint.rawValue)
                responder.logger.info("\(plan.id) aborted: the client disconnected after \(outcome.completionTokens) tokens")
                throw error
            }
        }
        return Response(status: .ok, headers: ServerSentEvents.headers, body: body)
    }

    private func record(_ event: GenerationEvent, choice: Int, into outcome: inout Outcome, start: ContinuousClock.Instant) {
        switch event {
        case .delta(let tokens, let text, let logprobs):
            outcome.texts[choice] += text
            outcome.logprobs[choice] += logprobs
            if outcome.firstTokenSeconds == nil, !tokens.isEmpty { outcome.firstTokenSeconds = Self.seconds(since: start) }
        case .finished(let reason, let usage):
            outcome.finishReasons[choice] = reason
            outcome.completionTokens += usage.completionTokens
            outcome.cachedTokens[choice] = usage.cachedTokens
        }
    }

    /// Metrics and the log line of a request that was served in full.
    private func finish(_ plan: CompletionPlan, _ outcome: Outcome, start: ContinuousClock.Instant) {
        let seconds = Self.seconds(since: start)
        let endpoint = plan.endpoint.rawValue
        metrics.recordLatency(endpoint: endpoint, seconds: seconds)
        if let ttft = outcome.firstTokenSeconds { metrics.recordTimeToFirstToken(endpoint: endpoint, seconds: ttft) }
        let reasons = Set(outcome.finishReasons.compactMap { $0?.rawValue }).sorted().joined(separator: ",")
        let ttft = outcome.firstTokenSeconds.map { String(format: "%.3f s", $0) } ?? "-"
        logger.info(
            "served \(endpoint) \(plan.id)\(plan.stream ? " (stream)" : ""): \(plan.choices.count) choice(s), \(plan.promptTokens) prompt + \(outcome.completionTokens) completion tokens, finish \(reasons), first token \(ttft), total \(String(format: "%.3f s", seconds))"
        )
    }

    private func chunk(
        _ plan: CompletionPlan, choice: Int, text: String?, finish: FinishReason?, withRole: Bool = false, logprobs: LogprobsBody? = nil
    ) -> ByteBuffer {
        let chat = plan.endpoint == .chatCompletions
        let content: ResponseChoice.Content = chat ? .delta(role: withRole ? "assistant" : nil, content: text) : .text(text ?? "")
        return ServerSentEvents.event(
            CompletionEnvelope(
                id: plan.id, object: chat ? "chat.completion.chunk" : "text_completion", created: plan.created, model: plan.model,
                choices: [ResponseChoice(index: choice, content: content, finishReason: finish, logprobs: logprobs)]))
    }

    /// `tokens`' log probabilities in `plan`'s endpoint's form, their text offsets continuing from
    /// `offsets`; nil when there are none, or the request asked for none.
    private func logprobsBody(_ plan: CompletionPlan, _ tokens: [GeneratedLogprobs], offsets: inout LogprobsBody.TextOffsets) -> LogprobsBody? {
        guard !tokens.isEmpty, plan.choices.first?.sampling.logprobs != nil else { return nil }
        guard plan.endpoint == .completions else { return .chat(tokens) }
        return .completion(tokens, textOffsets: tokens.map { offsets.next($0.chosen.bytes) })
    }

    private func usageChunk(_ plan: CompletionPlan, usage: UsageBody) -> ByteBuffer {
        let object = plan.endpoint == .completions ? "text_completion" : "chat.completion.chunk"
        return ServerSentEvents.event(
            CompletionEnvelope(id: plan.id, object: object, created: plan.created, model: plan.model, choices: [], usage: usage))
    }

    /// The OpenAI error an engine failure maps to.
    static func openAIError(_ error: any Error) -> OpenAIError {
        switch error {
        case let error as OpenAIError: return error
        case let error as GenerationError: return OpenAIError(error)
        default: return .internalError("Generation failed: \(error)")
        }
    }

    static func json(_ value: some Encodable) -> ByteBuffer {
        ByteBuffer(bytes: (try? JSONEncoder().encode(value)) ?? Data("{}".utf8))
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        (ContinuousClock.now - start).inSeconds
    }
}

/// The iterator of a request's events, handed from the handler (which awaits the first event) to
/// the response body's writer (which awaits the rest). It is unchecked `Sendable` because exactly
/// one task uses it at a time: the handler's last use happens before the body starts.
private final class EventCursor: @unchecked Sendable {
    private var iterator: AsyncThrowingStream<(choice: Int, event: GenerationEvent), Error>.AsyncIterator

    init(_ events: AsyncThrowingStream<(choice: Int, event: GenerationEvent), Error>) {
        iterator = events.makeAsyncIterator()
    }

    func next() async throws -> (choice: Int, event: GenerationEvent)? { try await iterator.next() }
}

/// Cancels a non-streaming request's generations if its connection closes while they run. The
/// connection may outlive the request (keep-alive), so the watch lets go of the generations once
/// the request is answered and only a few bytes stay registered until the connection closes.
private final class DisconnectWatch: Sendable {
    private let state: Mutex<(streams: ChoiceStreams?, fired: Bool)>

    init(_ streams: ChoiceStreams) { state = Mutex((streams, false)) }

    /// The connection closed: cancel the generations if they still run.
    func connectionClosed() {
        let streams = state.withLock { state -> ChoiceStreams? in
            guard let streams = state.streams else { return nil }
            state.fired = true
            return streams
        }
        streams?.cancel()
    }

    /// The request is answered; a later close of the connection concerns it no more.
    func disarm() { state.withLock { $0.streams = nil } }

    /// Whether the connection closed while the generations ran.
    var fired: Bool { state.withLock { $0.fired } }
}
