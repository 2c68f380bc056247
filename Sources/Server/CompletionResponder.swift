import Engine
import Foundation
import Hummingbird
import Logging
import Synchronization

/// Runs a `CompletionPlan` on the engine and answers it: one JSON body, or server-sent events.
struct CompletionResponder: Sendable {
    var service: any GenerationService
    var metrics: HTTPMetrics
    var logger: Logger

    /// What one request produced, for the response, the metrics and the log.
    private struct Outcome {
        var texts: [String]
        var finishReasons: [FinishReason?]
        var completionTokens = 0
        var firstTokenSeconds: Double?

        init(choices: Int) {
            texts = Array(repeating: "", count: choices)
            finishReasons = Array(repeating: nil, count: choices)
        }
    }

    /// The response to `plan`; `whenConnectionCloses` aborts a non-streaming generation whose
    /// client went away.
    func respond(
        to plan: CompletionPlan, whenConnectionCloses: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void
    ) async throws -> Response {
        let start = ContinuousClock.now
        metrics.inFlight.increment()
        if plan.stream { return streamingResponse(plan, start: start) }
        defer { metrics.inFlight.decrement() }
        let streams = ChoiceStreams(plan.choices, service: service)
        let disconnected = DisconnectFlag()
        whenConnectionCloses { disconnected.set(); streams.cancel() }
        var outcome = Outcome(choices: plan.choices.count)
        do {
            for try await (choice, event) in streams.events {
                record(event, choice: choice, into: &outcome, start: start)
            }
        } catch {
            throw Self.openAIError(error)
        }
        if disconnected.isSet || outcome.finishReasons.contains(nil) {
            metrics.recordClientDisconnect(endpoint: plan.endpoint.rawValue)
            throw OpenAIError.clientClosedRequest
        }
        finish(plan, outcome, start: start)
        let usage = UsageBody(promptTokens: plan.promptTokens, completionTokens: outcome.completionTokens)
        let body: ByteBuffer
        switch plan.endpoint {
        case .completions:
            let choices = outcome.texts.indices.map { TextChoice(index: $0, text: outcome.texts[$0], finishReason: outcome.finishReasons[$0]) }
            body = Self.json(CompletionEnvelope(id: plan.id, object: "text_completion", created: plan.created, model: plan.model, choices: choices, usage: usage))
        case .chatCompletions:
            let choices = outcome.texts.indices.map { ChatChoice(index: $0, content: outcome.texts[$0], finishReason: outcome.finishReasons[$0]) }
            body = Self.json(CompletionEnvelope(id: plan.id, object: "chat.completion", created: plan.created, model: plan.model, choices: choices, usage: usage))
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: body))
    }

    private func streamingResponse(_ plan: CompletionPlan, start: ContinuousClock.Instant) -> Response {
        let responder = self
        let body = ResponseBody { writer in
            defer { responder.metrics.inFlight.decrement() }
            let streams = ChoiceStreams(plan.choices, service: responder.service)
            defer { streams.cancel() }
            var outcome = Outcome(choices: plan.choices.count)
            do {
                if plan.endpoint == .chatCompletions {
                    for index in plan.choices.indices {
                        try await writer.write(responder.chunk(plan, choice: index, text: "", finish: nil, withRole: true))
                    }
                }
                var events = streams.events.makeAsyncIterator()
                while true {
                    let next: (choice: Int, event: GenerationEvent)?
                    do {
                        next = try await events.next()
                    } catch {
                        // Headers are gone already: the error travels as an event, as OpenAI sends it.
                        let failure = Self.openAIError(error)
                        responder.logger.warning("\(plan.id) failed while streaming: \(failure.message)")
                        try await writer.write(ServerSentEvents.event(failure))
                        try await writer.finish(nil)
                        return
                    }
                    guard let (choice, event) = next else { break }
                    responder.record(event, choice: choice, into: &outcome, start: start)
                    switch event {
                    case .delta(_, let text):
                        if !text.isEmpty { try await writer.write(responder.chunk(plan, choice: choice, text: text, finish: nil)) }
                    case .finished(let reason, _):
                        try await writer.write(responder.chunk(plan, choice: choice, text: nil, finish: reason))
                    }
                }
                if plan.includeUsage {
                    let usage = UsageBody(promptTokens: plan.promptTokens, completionTokens: outcome.completionTokens)
                    try await writer.write(responder.usageChunk(plan, usage: usage))
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
        case .delta(let tokens, let text):
            outcome.texts[choice] += text
            if outcome.firstTokenSeconds == nil, !tokens.isEmpty { outcome.firstTokenSeconds = Self.seconds(since: start) }
        case .finished(let reason, let usage):
            outcome.finishReasons[choice] = reason
            outcome.completionTokens += usage.completionTokens
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
            "served \(endpoint) \(plan.id)\(plan.stream ? " (stream)" : ""): \(plan.choices.count) choice(s), \(plan.promptTokens) prompt + \(outcome.completionTokens) completion tokens, finish \(reasons), first token \(ttft), total \(String(format: "%.3f s", seconds))")
    }

    private func chunk(_ plan: CompletionPlan, choice: Int, text: String?, finish: FinishReason?, withRole: Bool = false) -> ByteBuffer {
        switch plan.endpoint {
        case .completions:
            let choices = [TextChoice(index: choice, text: text ?? "", finishReason: finish)]
            return ServerSentEvents.event(CompletionEnvelope(id: plan.id, object: "text_completion", created: plan.created, model: plan.model, choices: choices))
        case .chatCompletions:
            let choices = [ChatDeltaChoice(index: choice, role: withRole ? "assistant" : nil, content: text, finishReason: finish)]
            return ServerSentEvents.event(CompletionEnvelope(id: plan.id, object: "chat.completion.chunk", created: plan.created, model: plan.model, choices: choices))
        }
    }

    private func usageChunk(_ plan: CompletionPlan, usage: UsageBody) -> ByteBuffer {
        let object = plan.endpoint == .completions ? "text_completion" : "chat.completion.chunk"
        return ServerSentEvents.event(CompletionEnvelope<TextChoice>(id: plan.id, object: object, created: plan.created, model: plan.model, choices: [], usage: usage))
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
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}

/// Set once when a request's connection closes; read after its generation ends.
private final class DisconnectFlag: Sendable {
    private let state = Mutex(false)
    func set() { state.withLock { $0 = true } }
    var isSet: Bool { state.withLock { $0 } }
}
