import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

/// The work one request can create is bounded; a request over a limit gets a 400 naming it and
/// never reaches the engine.
final class RequestLimitTests: XCTestCase {
    private func assertOverLimit(
        _ body: String, param: String, setting: String, configure: @escaping (inout ServerConfiguration) -> Void = { _ in },
        file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let service = ScriptedGenerationService()
        try await withServer(service, configure: configure) { client in
            let response = try await client.post("/v1/completions", body)
            XCTAssertEqual(response.status, .badRequest, String(buffer: response.body), file: file, line: line)
            XCTAssertEqual(try response.error["param"] as? String, param, file: file, line: line)
            XCTAssertEqual(try response.error["code"] as? String, "request_limit_exceeded", file: file, line: line)
            let message = try XCTUnwrap(response.error["message"] as? String)
            XCTAssertTrue(message.contains(setting), message, file: file, line: line)
        }
        XCTAssertTrue(service.requests.isEmpty, "a refused request never reaches the engine", file: file, line: line)
    }

    func testEightyThousandGenerationsFromOneSmallBodyAreRefused() async throws {
        let prompts = Array(repeating: "[1]", count: 5000).joined(separator: ",")
        try await assertOverLimit(
            #"{"model":"scripted","prompt":[\#(prompts)],"n":16,"max_tokens":1}"#, param: "n", setting: "--max-request-sequences")
        try await assertOverLimit(#"{"model":"scripted","prompt":[\#(prompts)],"max_tokens":1}"#, param: "prompt", setting: "--max-request-sequences")
    }

    func testPromptTokensAreCountedOncePerChoice() async throws {
        try await assertOverLimit(
            #"{"model":"scripted","prompt":"abcdefghij","n":4,"max_tokens":1}"#, param: "prompt", setting: "--max-request-prompt-tokens",
            configure: { $0.maxRequestPromptTokens = 39 })
    }

    func testCompletionTokensAreMaxTokensTimesSequences() async throws {
        try await assertOverLimit(
            #"{"model":"scripted","prompt":["a","b"],"n":3,"max_tokens":10}"#, param: "max_tokens", setting: "--max-request-completion-tokens",
            configure: { $0.maxRequestCompletionTokens = 59 })
    }

    func testAnUnsetMaxTokensIsCutToTheCompletionLimit() async throws {
        let service = ScriptedGenerationService()
        try await withServer(service, configure: { $0.maxRequestCompletionTokens = 8 }) { client in
            let response = try await client.post("/v1/chat/completions", #"{"model":"scripted","messages":[{"role":"user","content":"hi"}],"n":2}"#)
            XCTAssertEqual(response.status, .ok, String(buffer: response.body))
        }
        XCTAssertEqual(service.requests.map(\.sampling.maxTokens), [4, 4])
    }
}
