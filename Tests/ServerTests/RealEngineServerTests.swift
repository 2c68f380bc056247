import Engine
import Foundation
import HiFCCore
import Hummingbird
import HummingbirdTesting
import Logging
import XCTest

@testable import Server

/// The server end to end over the real `LLMEngine`, with the synthetic tiny Llama (no network),
/// the CPU backend and a flash region in a temporary directory.
final class RealEngineServerTests: XCTestCase {
    private var stack: ServingStack!
    private var dataDirectory: String!

    override func setUpWithError() throws {
        dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("hifc-server-\(UUID().uuidString)").path
        var configuration = ServerConfiguration()
        configuration.dataDirectory = dataDirectory
        configuration.model = DefaultModel.syntheticName
        configuration.flashCapacity = .mib(64)
        stack = try ServingStack(configuration: configuration, logger: Logger(label: "test"))
    }

    override func tearDownWithError() throws {
        stack.shutdown()
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    private var model: String { stack.routes.servedModelName }

    private func withRealServer(setup: TestingSetup = .router, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws
    {
        try await stack.routes.application(address: .hostname("127.0.0.1", port: 0)).test(setup) { client in try await body(client) }
    }

    /// The value of metric `name`, summed over its labels (the engine's carry `replica`).
    static func metric(_ name: String, in text: String) -> Double {
        text.split(separator: "\n").filter { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
            .compactMap { Double($0.split(separator: " ").last!) }.reduce(0, +)
    }

    func testBothEndpointsServeTheRealModelWholeAndStreamed() async throws {
        let model = self.model
        try await withRealServer { client in
            let completion = try await client.post(
                "/v1/completions", #"{"model":"\#(model)","prompt":"Once upon a time","max_tokens":6,"temperature":0}"#)
            XCTAssertEqual(completion.status, .ok, String(buffer: completion.body))
            let usage = try XCTUnwrap(usageCounts(completion.json["usage"]))
            XCTAssertEqual(usage["completion_tokens"].map { $0 <= 6 && $0 >= 1 }, true)
            let text = try XCTUnwrap((completion.json["choices"] as? [[String: Any]])?.first?["text"] as? String)

            let streamed = try await client.post(
                "/v1/completions", #"{"model":"\#(model)","prompt":"Once upon a time","max_tokens":6,"temperature":0,"stream":true}"#)
            XCTAssertEqual(streamed.events.last, "[DONE]")
            let pieces = try streamed.events.dropLast().map(jsonObject).compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }
            XCTAssertEqual(pieces.joined(), text, "streaming and not give the same greedy text")

            let chat = try await client.post(
                "/v1/chat/completions",
                #"{"model":"\#(model)","messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}"#
            )
            let chunks = try chat.events.dropLast().map(jsonObject)
            XCTAssertEqual(chat.events.last, "[DONE]")
            XCTAssertNotNil(usageCounts(chunks.last?["usage"]))
        }
    }

    func testARepeatedPromptReportsCachedTokensUntilTheCacheIsReset() async throws {
        let model = self.model
        let prompt = Array(repeating: "the quick brown fox jumps over the lazy dog", count: 8).joined(separator: " ")
        try await withRealServer { client in
            func cached(salt: String? = nil) async throws -> Int? {
                let saltField = salt.map { #","cache_salt":"\#($0)""# } ?? ""
                let response = try await client.post(
                    "/v1/completions", #"{"model":"\#(model)","prompt":"\#(prompt)","max_tokens":2,"temperature":0\#(saltField)}"#)
                XCTAssertEqual(response.status, .ok, String(buffer: response.body))
                return usageCounts(try response.json["usage"])?["cached_tokens"]
            }
            let first = try await cached()
            XCTAssertEqual(first, 0)
            let second = try await cached()
            XCTAssertGreaterThanOrEqual(second ?? 0, 16, "the repeated prompt's full blocks come from the cache")
            let salted = try await cached(salt: "tenant")
            XCTAssertEqual(salted, 0, "another salt sees nothing")
            let reset = try await client.post("/reset_prefix_cache?flash=true", "")
            XCTAssertEqual(reset.status, .ok)
            XCTAssertGreaterThan((try reset.json["device_blocks"] as? Int) ?? 0, 0)
            let afterReset = try await cached()
            XCTAssertEqual(afterReset, 0, "nothing is cached after a reset")
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            XCTAssertTrue(metrics.contains(#"hifc_prefix_cache_hit_tokens_total{replica="0",tier="device"}"#), metrics)
        }
    }

    func testPromptBeyondTheRealContextIsRefused() async throws {
        let model = self.model
        let limit = stack.replicas[0].engine.maxContextTokens
        try await withRealServer { client in
            let response = try await client.post("/v1/completions", #"{"model":"\#(model)","prompt":"hi","max_tokens":\#(limit)}"#)
            XCTAssertEqual(response.status, .badRequest)
            XCTAssertEqual(try response.error["code"] as? String, "context_length_exceeded")
        }
    }

    func testTokenOutsideTheVocabularyIsABadRequestStreamedOrNot() async throws {
        let model = self.model
        try await withRealServer { client in
            for stream in [false, true] {
                let response = try await client.post("/v1/completions", #"{"model":"\#(model)","prompt":[1,99999999],"stream":\#(stream)}"#)
                XCTAssertEqual(response.status, .badRequest, String(buffer: response.body))
                XCTAssertEqual(try response.error["param"] as? String, "prompt")
            }
        }
    }

    func testConcurrentRequestsSwapToFlashAndItShowsInMetrics() async throws {
        let model = self.model
        let before = Self.metric("hifc_swap_outs_total", in: ServerMetrics.render())
        try await withRealServer { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<6 {
                    group.addTask {
                        let prompt = String(repeating: "story \(i) ", count: 20)
                        let response = try await client.post(
                            "/v1/completions", #"{"model":"\#(model)","prompt":"\#(prompt)","max_tokens":150,"temperature":0}"#)
                        XCTAssertEqual(response.status, .ok, String(buffer: response.body))
                    }
                }
                try await group.waitForAll()
            }
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            XCTAssertGreaterThan(Self.metric("hifc_swap_outs_total", in: metrics), before, "a 32-block KV budget swaps to flash:\n\(metrics)")
            XCTAssertTrue(metrics.contains("hifc_flash_predicted_lifetime_years") || metrics.contains("hifc_flash_live_bytes"), metrics)
        }
        XCTAssertGreaterThan(stack.replicas[0].engine.stats().swapOuts, 0)
    }

    func testTargetLifetimeSetsTheDailyWriteBudgetShownInMetrics() async throws {
        var configuration = ServerConfiguration()
        configuration.dataDirectory = dataDirectory + "-lifetime"
        defer { try? FileManager.default.removeItem(atPath: configuration.dataDirectory) }
        configuration.model = DefaultModel.syntheticName
        configuration.flashCapacity = .mib(64)
        configuration.flashTargetLifetime = TargetLifetime(years: 5)
        let stack = try ServingStack(configuration: configuration, logger: Logger(label: "test"))
        defer { stack.shutdown() }
        let model = stack.routes.servedModelName
        try await stack.routes.application(address: .hostname("127.0.0.1", port: 0)).test(.router) { client in
            let response = try await client.post("/v1/completions", #"{"model":"\#(model)","prompt":"Once upon a time","max_tokens":4}"#)
            XCTAssertEqual(response.status, .ok, String(buffer: response.body))
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            // 6000 TB over 5 years of 365 days, for the one flash path.
            let budget = Self.metric("hifc_flash_daily_write_budget_bytes", in: metrics)
            XCTAssertEqual(budget, 6e15 / (5 * 365), accuracy: 1, metrics)
            let left = Self.metric("hifc_flash_write_budget_left_bytes", in: metrics)
            XCTAssertGreaterThan(left, 0)
            XCTAssertLessThanOrEqual(left, budget)
        }
    }

    func testClientThatDisconnectsFreesItsBlocks() async throws {
        let model = self.model
        let engine = stack.replicas[0].engine
        try await withRealServer(setup: .live) { client in
            let port = try XCTUnwrap(client.port)
            let body = #"{"model":"\#(model)","prompt":"a long answer","max_tokens":400,"stream":true}"#
            let socket = try RawHTTPConnection(port: port)
            try socket.send(
                "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            )
            _ = try socket.receiveSome()
            socket.close()
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                let stats = engine.stats()
                if stats.finishedRequests == 1, stats.running == 0, stats.kvUtilization == 0 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let stats = engine.stats()
            XCTAssertEqual(stats.running, 0)
            XCTAssertEqual(stats.kvUtilization, 0, "the aborted request's blocks are free")
            XCTAssertLessThan(stats.generatedTokens, 400, "the generation stopped early")
        }
    }

    func testOfficialOpenAIClient() async throws {
        let available = Process.exitStatus(of: "/usr/bin/env", ["python3", "-c", "import openai"]) == 0
        if !available {
            if ProcessInfo.processInfo.environment["CI"] != nil {
                XCTFail("the openai package is missing: pip install openai (scripts/test.sh does)")
            }
            throw XCTSkip("the openai package is missing: pip install openai (scripts/test.sh does)")
        }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/openai-client-check.py")
            .standardized.path
        let model = self.model
        try await withRealServer(setup: .live) { client in
            let port = try XCTUnwrap(client.port)
            let status = await Task.detached {
                Process.exitStatus(of: "/usr/bin/env", ["python3", script, "http://127.0.0.1:\(port)/v1", model])
            }.value
            XCTAssertEqual(status, 0, "scripts/openai-client-check.py failed; its output is above")
        }
    }
}

extension Process {
    /// Runs a program to its end, its output going to the test's, and returns its exit status.
    static func exitStatus(of path: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        do { try process.run() } catch { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
