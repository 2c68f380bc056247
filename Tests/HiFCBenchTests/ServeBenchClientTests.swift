import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Models
import Server
import Synchronization
import XCTest

@testable import HiFCBench

/// The benchmark's client over real HTTP: against the hifc server on its embedded default, and
/// against a small server that answers 429 first.
final class ServeBenchClientTests: XCTestCase {
    func testRunAgainstTheRealServerMeasuresEveryRequestAndTurn() async throws {
        let dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("hifc-bench-serve-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        var configuration = ServerConfiguration()
        configuration.dataDirectory = dataDirectory
        configuration.flashCapacity = .mib(64)
        let stack = try ServingStack(configuration: configuration, logger: Logger(label: "test"))
        defer { stack.shutdown() }
        let tokenizer = stack.replicas[0].model.tokenizer
        let model = stack.routes.servedModelName
        let context = stack.service.maxContextTokens

        try await stack.routes.application(address: .hostname("127.0.0.1", port: 0)).test(.live) { client in
            let base = try BaseURL(parsing: "http://127.0.0.1:\(try XCTUnwrap(client.port))")
            let http = StreamingHTTPClient()
            let served = try await ServedModels.fetch(from: base, client: http, apiKey: nil)
            XCTAssertEqual(served.models, [ServedModels.Model(id: model, maxModelLength: context)])

            // Two sessions of two turns, prompts as token ids, at most two requests in flight.
            let prompts = SyntheticPrompt(tokenizer: tokenizer)
            let shape = ServeWorkload.Shape(requests: 4, inputLengths: .fixed(24), outputLengths: .fixed(12), turns: 2)
            let completions = ServeBenchRunner(
                settings: .init(baseURL: base, endpoint: .completions, model: model, options: .init(tokenIDPrompts: true), maxConcurrency: 2),
                client: http, prompts: prompts)
            let finished = Mutex(0)
            let run = await completions.run(ServeWorkload(shape: shape, seed: 1, prompts: prompts), rate: .perSecond(50), seed: 1) { _ in
                finished.withLock { $0 += 1 }
            }
            XCTAssertEqual(finished.withLock { $0 }, 4)
            XCTAssertEqual(run.outcomes.map(\.failure), [nil, nil, nil, nil])
            XCTAssertEqual(run.outcomes.map(\.outputTokens), [12, 12, 12, 12], "ignore_eos makes every output run to max_tokens")
            for outcome in run.outcomes {
                XCTAssertGreaterThan(outcome.ttft, 0)
                XCTAssertGreaterThanOrEqual(outcome.latency, outcome.ttft)
                XCTAssertFalse(outcome.interTokenLatencies.isEmpty)
                XCTAssertLessThanOrEqual(outcome.interTokenLatencies.count, 11, "at most one gap per token after the first")
                if outcome.turn == 0 { XCTAssertEqual(outcome.promptTokens, 24, "token-id prompts arrive exactly") }
                if outcome.turn == 1 { XCTAssertGreaterThan(outcome.promptTokens, 48, "the second turn resends the first and its reply") }
                XCTAssertNotNil(outcome.cachedPromptTokens, "hifc reports the prefix cache's share in usage")
            }
            let summary = ServeRunSummary(run, maxConcurrency: 2, objectives: ServiceLevelObjectives(e2el: 60_000))
            XCTAssertEqual(summary.completed, 4)
            XCTAssertEqual(summary.goodput_fraction, 1)

            // Chat, text prompts, all at once.
            let chat = ServeBenchRunner(settings: .init(baseURL: base, endpoint: .chat, model: model), client: http, prompts: prompts)
            let chatShape = ServeWorkload.Shape(requests: 2, inputLengths: .fixed(16), outputLengths: .fixed(6))
            let chatRun = await chat.run(ServeWorkload(shape: chatShape, seed: 2, prompts: prompts), rate: .infinite, seed: 2) { _ in }
            XCTAssertEqual(chatRun.outcomes.map(\.failure), [nil, nil])
            XCTAssertEqual(chatRun.outcomes.map(\.outputTokens), [6, 6])

            // A wrong model name is counted, with the server's message.
            let wrong = ServeBenchRunner(
                settings: .init(baseURL: base, endpoint: .completions, model: "no-such-model"), client: http, prompts: prompts)
            let wrongRun = await wrong.run(ServeWorkload(shape: chatShape, seed: 2, prompts: prompts), rate: .infinite, seed: 2) { _ in }
            XCTAssertEqual(wrongRun.outcomes.map { $0.failure?.kind }, ["http 404", "http 404"])
            XCTAssertTrue(
                wrongRun.outcomes[0].failure?.message.contains("no-such-model") ?? false, "\(String(describing: wrongRun.outcomes[0].failure))")
            try await http.shutdown()
        }
    }

    func testRateLimitedRequestIsRetriedAfterRetryAfterOrCountedAsAnError() async throws {
        let attempts = Mutex(0)
        let router = Router()
        router.post("v1/completions") { _, _ -> Response in
            let attempt = attempts.withLock {
                $0 += 1
                return $0
            }
            guard attempt > 1 else {
                return Response(
                    status: .tooManyRequests, headers: [.retryAfter: "0", .contentType: "application/json"],
                    body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"error":{"message":"slow down","type":"rate_limit_error"}}"#)))
            }
            let events = [
                #"data: {"choices":[{"index":0,"text":"one"}]}"#, #"data: {"choices":[{"index":0,"text":" two"}]}"#,
                #"data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#, "data: [DONE]",
            ]
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: events.map { $0 + "\n\n" }.joined())))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let base = try BaseURL(parsing: "http://127.0.0.1:\(try XCTUnwrap(client.port))")
            let http = StreamingHTTPClient()
            let prompts = SyntheticPrompt(tokenizer: nil)
            let workload = ServeWorkload(shape: .init(requests: 1, inputLengths: .fixed(3), outputLengths: .fixed(2)), seed: 0, prompts: prompts)

            let patient = ServeBenchRunner(
                settings: .init(baseURL: base, endpoint: .completions, model: "m", maxRetries: 2), client: http, prompts: prompts)
            let retried = await patient.run(workload, rate: .infinite, seed: 0) { _ in }.outcomes[0]
            XCTAssertNil(retried.failure)
            XCTAssertEqual(retried.retries, 1)
            XCTAssertEqual(retried.outputTokens, 2)
            XCTAssertEqual(retried.promptTokens, 3)

            attempts.withLock { $0 = 0 }
            let strict = ServeBenchRunner(settings: .init(baseURL: base, endpoint: .completions, model: "m"), client: http, prompts: prompts)
            let refused = await strict.run(workload, rate: .infinite, seed: 0) { _ in }.outcomes[0]
            XCTAssertEqual(refused.failure, RequestFailure(kind: "http 429", message: "slow down", retryAfter: 0))
            try await http.shutdown()
        }
    }

    func testStreamThatOutlivesItsTimeoutCountsAsATimeout() async throws {
        let router = Router()
        router.post("v1/completions") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/event-stream"],
                body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(string: #"data: {"choices":[{"index":0,"text":"slow"}]}"# + "\n\n"))
                    try await Task.sleep(for: .seconds(1))
                    try await writer.finish(nil)
                })
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let base = try BaseURL(parsing: "http://127.0.0.1:\(try XCTUnwrap(client.port))")
            let http = StreamingHTTPClient()
            let prompts = SyntheticPrompt(tokenizer: nil)
            let workload = ServeWorkload(shape: .init(requests: 1, inputLengths: .fixed(3), outputLengths: .fixed(2)), seed: 0, prompts: prompts)
            let runner = ServeBenchRunner(
                settings: .init(baseURL: base, endpoint: .completions, model: "m", timeout: .milliseconds(300)), client: http, prompts: prompts)
            let outcome = await runner.run(workload, rate: .infinite, seed: 0) { _ in }.outcomes[0]
            XCTAssertEqual(outcome.failure?.kind, "timeout", "\(String(describing: outcome.failure))")
            XCTAssertEqual(outcome.latency, 0.3, accuracy: 0.25)
            try await http.shutdown()
        }
    }
}
