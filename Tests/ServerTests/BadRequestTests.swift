import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

/// Every kind of bad input gets a 4xx with an OpenAI error body naming the parameter; none is a
/// 500, and the server keeps answering afterwards.
final class BadRequestTests: XCTestCase {
    private func assertRefused(
        _ uri: String, _ body: String, status: HTTPResponse.Status = .badRequest, param: String?, code: String? = nil,
        maxBodyBytes: Int = 1 << 20, file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let service = ScriptedGenerationService()
        try await withServer(service, maxBodyBytes: maxBodyBytes) { client in
            let response = try await client.post(uri, body)
            XCTAssertEqual(response.status, status, String(buffer: response.body), file: file, line: line)
            let error = try response.error
            XCTAssertEqual(error["param"] as? String, param, file: file, line: line)
            if let code { XCTAssertEqual(error["code"] as? String, code, file: file, line: line) }
            XCTAssertFalse((error["message"] as? String ?? "").isEmpty, file: file, line: line)
            XCTAssertNotNil(error["type"] as? String, file: file, line: line)
            let healthy = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"ok","max_tokens":1}"#)
            XCTAssertEqual(healthy.status, .ok, "the server keeps serving after a bad request", file: file, line: line)
        }
        XCTAssertEqual(service.requests.count, 1, "a refused request never reaches the engine", file: file, line: line)
    }

    func testMalformedJSONIsRefused() async throws {
        try await assertRefused("/v1/completions", #"{"model": "scripted", "prompt": "#, param: nil, code: "invalid_json")
    }

    func testABodyThatIsNotAnObjectIsRefused() async throws {
        try await assertRefused("/v1/completions", "[1, 2]", param: nil, code: "invalid_json")
    }

    func testAnEmptyBodyIsRefused() async throws {
        try await assertRefused("/v1/chat/completions", "", param: nil, code: "invalid_json")
    }

    func testMissingFieldsAreNamed() async throws {
        try await assertRefused("/v1/completions", #"{"prompt":"hi"}"#, param: "model", code: "missing_required_parameter")
        try await assertRefused("/v1/completions", #"{"model":"scripted"}"#, param: "prompt", code: "missing_required_parameter")
        try await assertRefused("/v1/chat/completions", #"{"model":"scripted"}"#, param: "messages", code: "missing_required_parameter")
        try await assertRefused("/v1/chat/completions", #"{"model":"scripted","messages":[{"content":"hi"}]}"#, param: "messages.0.role")
    }

    func testWrongTypesAreNamed() async throws {
        try await assertRefused(
            "/v1/completions", #"{"model":"scripted","prompt":"hi","max_tokens":"ten"}"#, param: "max_tokens", code: "invalid_type")
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":"hi","max_tokens":2.5}"#, param: "max_tokens")
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":{"a":1}}"#, param: "prompt", code: "invalid_type")
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":"hi","stream":"yes"}"#, param: "stream", code: "invalid_type")
        try await assertRefused("/v1/chat/completions", #"{"model":"scripted","messages":"hi"}"#, param: "messages", code: "invalid_type")
        try await assertRefused("/v1/completions", #"{"model":7,"prompt":"hi"}"#, param: "model", code: "invalid_type")
    }

    func testOutOfRangeParametersAreNamed() async throws {
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":"hi","temperature":3}"#, param: "temperature")
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":"hi","top_p":0}"#, param: "top_p")
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":"hi","n":0}"#, param: "n")
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":"hi","max_tokens":0}"#, param: "max_tokens")
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":"hi","stop":[""]}"#, param: "stop")
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":[1,-2]}"#, param: "prompt")
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":[]}"#, param: "prompt")
        try await assertRefused("/v1/chat/completions", #"{"model":"scripted","messages":[]}"#, param: "messages")
        try await assertRefused(
            "/v1/chat/completions", #"{"model":"scripted","messages":[{"role":"wizard","content":"hi"}]}"#, param: "messages.0.role")
        try await assertRefused(
            "/v1/chat/completions", #"{"model":"scripted","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
            param: "messages.0.content")
    }

    func testAnOutOfRangeSeedIsNamed() async throws {
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":"hi","seed":1180591620717411303424}"#, param: "seed")
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":"hi","seed":1.5}"#, param: "seed")
    }

    func testInvalidUTF8IsReportedAsSuch() async throws {
        let service = ScriptedGenerationService()
        try await withServer(service) { client in
            var body = ByteBuffer(string: #"{"model":"scripted","prompt":["#)
            body.writeBytes([0x22, 0x61, 0xFF, 0xFE, 0x22])
            body.writeString("]}")
            let response = try await client.execute(
                uri: "/v1/completions", method: .post, headers: [.contentType: "application/json"], body: body)
            XCTAssertEqual(response.status, .badRequest)
            XCTAssertEqual(try response.error["code"] as? String, "invalid_encoding")
            let message = try XCTUnwrap(response.error["message"] as? String)
            XCTAssertTrue(message.contains("not valid UTF-8") && message.contains("offset 32"), message)
        }
        XCTAssertTrue(service.requests.isEmpty)
    }

    func testAKnownPathWithAnotherMethodIsA405NamingTheAllowedOne() async throws {
        try await withServer(ScriptedGenerationService()) { client in
            let response = try await client.execute(uri: "/v1/chat/completions", method: .get)
            XCTAssertEqual(response.status, .methodNotAllowed)
            XCTAssertEqual(response.headers[.allow], "POST")
            XCTAssertEqual(try response.error["code"] as? String, "method_not_allowed")
            let health = try await client.execute(uri: "/health", method: .post)
            XCTAssertEqual(health.status, .methodNotAllowed)
            XCTAssertEqual(health.headers[.allow], "GET")
        }
    }

    func testUnknownModelIsNotFound() async throws {
        try await assertRefused("/v1/completions", #"{"model":"gpt-9","prompt":"hi"}"#, status: .notFound, param: "model", code: "model_not_found")
    }

    func testRequestsBeyondTheContextAreRefused() async throws {
        // The scripted model's context is 64 tokens.
        try await assertRefused(
            "/v1/completions", #"{"model":"scripted","prompt":"hi","max_tokens":63}"#, param: "max_tokens", code: "context_length_exceeded")
        let long = String(repeating: "x", count: 64)
        try await assertRefused("/v1/completions", #"{"model":"scripted","prompt":"\#(long)"}"#, param: "prompt", code: "context_length_exceeded")
        try await assertRefused(
            "/v1/chat/completions", #"{"model":"scripted","messages":[{"role":"user","content":"\#(long)"}]}"#,
            param: "messages", code: "context_length_exceeded")
    }

    func testOversizedBodyIsTooLarge() async throws {
        let big = String(repeating: "x", count: 4096)
        try await assertRefused(
            "/v1/completions", #"{"model":"scripted","prompt":"\#(big)"}"#, status: .contentTooLarge, param: nil,
            code: "request_too_large", maxBodyBytes: 1024)
    }

    func testUnknownRouteIsAnOpenAIError() async throws {
        try await withServer(ScriptedGenerationService()) { client in
            let response = try await client.execute(uri: "/v1/embeddings", method: .post)
            XCTAssertEqual(response.status, .notFound)
            XCTAssertNotNil(try response.error["message"] as? String)
        }
    }
}
