import Engine
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

final class OpenAIRoutesTests: XCTestCase {
    func testCompletionReturnsTextFinishReasonAndUsage() async throws {
        let service = ScriptedGenerationService()
        try await withServer(service) { client in
            let response = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"hello","max_tokens":3}"#)
            XCTAssertEqual(response.status, .ok)
            let json = try response.json
            XCTAssertEqual(json["object"] as? String, "text_completion")
            XCTAssertEqual(json["model"] as? String, "scripted")
            let choices = try XCTUnwrap(json["choices"] as? [[String: Any]])
            XCTAssertEqual(choices.count, 1)
            XCTAssertEqual(choices[0]["text"] as? String, " t0 t1 t2")
            XCTAssertEqual(choices[0]["finish_reason"] as? String, "length")
            let usage = try XCTUnwrap(usageCounts(json["usage"]))
            XCTAssertEqual(usage, ["prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8, "cached_tokens": 0])
        }
    }

    func testSamplingParametersReachTheEngine() async throws {
        let service = ScriptedGenerationService()
        try await withServer(service) { client in
            let body =
                #"{"model":"scripted","prompt":"hi","max_tokens":2,"temperature":0.5,"top_p":0.9,"seed":7,"stop":["x","y"],"n":2,"ignore_eos":true}"#
            let response = try await client.post("/v1/completions", body)
            XCTAssertEqual(response.status, .ok)
            let choices = try XCTUnwrap(response.json["choices"] as? [[String: Any]])
            XCTAssertEqual(choices.map { $0["index"] as? Int }, [0, 1])
            XCTAssertEqual(usageCounts(try response.json["usage"])?["completion_tokens"], 4)
        }
        let requests = service.requests.sorted { $0.id < $1.id }
        XCTAssertEqual(requests.count, 2)
        XCTAssertEqual(requests[0].sampling.temperature, 0.5)
        XCTAssertEqual(requests[0].sampling.topP, 0.9)
        XCTAssertEqual(requests[0].sampling.stop, ["x", "y"])
        XCTAssertTrue(requests[0].sampling.ignoreEOS)
        XCTAssertEqual(requests.map(\.sampling.seed), [7, 8], "choices of a seeded request get distinct, repeatable seeds")
    }

    func testCompletionDefaultsToSixteenTokensAndAcceptsTokenPrompts() async throws {
        let service = ScriptedGenerationService()
        try await withServer(service) { client in
            let response = try await client.post("/v1/completions", #"{"model":"scripted","prompt":[[1,2,3],[4,5]]}"#)
            XCTAssertEqual(response.status, .ok)
            let usage = try XCTUnwrap(usageCounts(response.json["usage"]))
            XCTAssertEqual(usage["prompt_tokens"], 5)
            XCTAssertEqual(usage["completion_tokens"], 32)
        }
        XCTAssertEqual(Set(service.requests.map(\.promptTokens)), [[1, 2, 3], [4, 5]])
    }

    func testChatRendersMessagesWithTheTemplateAndReturnsAMessage() async throws {
        let service = ScriptedGenerationService()
        try await withServer(service) { client in
            let body =
                #"{"model":"scripted","messages":[{"role":"system","content":"S"},{"role":"user","content":[{"type":"text","text":"U"}]}],"max_tokens":2}"#
            let response = try await client.post("/v1/chat/completions", body)
            XCTAssertEqual(response.status, .ok)
            let json = try response.json
            XCTAssertEqual(json["object"] as? String, "chat.completion")
            let choice = try XCTUnwrap((json["choices"] as? [[String: Any]])?.first)
            XCTAssertEqual(choice["message"] as? [String: String], ["role": "assistant", "content": " t0 t1"])
            XCTAssertEqual(choice["finish_reason"] as? String, "length")
            XCTAssertNotNil(json["usage"])
        }
        let prompt = try XCTUnwrap(service.requests.first).promptTokens
        XCTAssertEqual(String(decoding: prompt.map(UInt8.init), as: UTF8.self), "<system>S<user>U<assistant>")
    }

    func testChatWithoutMaxTokensGeneratesToTheEndOfTheContext() async throws {
        let service = ScriptedGenerationService(maxContextTokens: 40)
        try await withServer(service) { client in
            let response = try await client.post("/v1/chat/completions", #"{"model":"scripted","messages":[{"role":"user","content":"hi"}]}"#)
            XCTAssertEqual(response.status, .ok)
        }
        let request = try XCTUnwrap(service.requests.first)
        XCTAssertEqual(request.sampling.maxTokens, 40 - request.promptTokens.count)
    }

    func testCompletionStreamSendsChunksThenDone() async throws {
        try await withServer(ScriptedGenerationService()) { client in
            let body = #"{"model":"scripted","prompt":"hi","max_tokens":2,"stream":true,"stream_options":{"include_usage":true}}"#
            let response = try await client.post("/v1/completions", body)
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(response.headers[.contentType], "text/event-stream")
            let events = response.events
            XCTAssertEqual(events.last, "[DONE]")
            let chunks = try events.dropLast().map(jsonObject)
            let texts = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }
            XCTAssertEqual(texts.joined(), " t0 t1")
            let finishes = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }
            XCTAssertEqual(finishes, ["length"])
            let usage = try XCTUnwrap(usageCounts(chunks.last?["usage"]))
            XCTAssertEqual(usage["completion_tokens"], 2)
            XCTAssertEqual((chunks.last?["choices"] as? [Any])?.count, 0)
        }
    }

    func testChatStreamStartsWithTheRoleAndHasNoUsageUnlessAsked() async throws {
        try await withServer(ScriptedGenerationService()) { client in
            let body = #"{"model":"scripted","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"stream":true}"#
            let response = try await client.post("/v1/chat/completions", body)
            let chunks = try response.events.dropLast().map(jsonObject)
            XCTAssertTrue(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" && $0["usage"] == nil })
            let deltas = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: String] }
            XCTAssertEqual(deltas.first?["role"], "assistant")
            XCTAssertEqual(deltas.compactMap { $0["content"] }.joined(), " t0 t1")
            XCTAssertEqual(deltas.last, [:])
            XCTAssertEqual(response.events.last, "[DONE]")
        }
    }

    func testStreamThatFailsMidwayEndsWithAnErrorEvent() async throws {
        try await withServer(ScriptedGenerationService()) { client in
            let response = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"FAIL","max_tokens":4,"stream":true}"#)
            let last = try jsonObject(try XCTUnwrap(response.events.last))
            let error = try XCTUnwrap(last["error"] as? [String: Any])
            XCTAssertEqual(error["param"] as? String, "prompt")
        }
    }

    func testStreamTheEngineRefusesAtOnceIsABadRequest() async throws {
        try await withServer(ScriptedGenerationService()) { client in
            let response = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"REFUSE","stream":true}"#)
            XCTAssertEqual(response.status, .badRequest)
            XCTAssertEqual(try response.error["param"] as? String, "prompt")
        }
    }

    func testModelsHealthAndMetrics() async throws {
        try await withServer(ScriptedGenerationService()) { client in
            let models = try await client.execute(uri: "/v1/models", method: .get)
            XCTAssertEqual(models.status, .ok)
            let data = try XCTUnwrap(models.json["data"] as? [[String: Any]])
            XCTAssertEqual(data.first?["id"] as? String, "scripted")
            XCTAssertEqual(data.first?["max_model_len"] as? Int, 64)

            let health = try await client.execute(uri: "/health", method: .get)
            XCTAssertEqual(health.status, .ok)
            XCTAssertEqual(try health.json["status"] as? String, "ok")

            _ = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"hi","max_tokens":1}"#)
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertEqual(metrics.status, .ok)
            let text = String(buffer: metrics.body)
            XCTAssertTrue(text.contains(#"hifc_http_requests_total{endpoint="/v1/completions",status="200"}"#), text)
            XCTAssertTrue(text.contains("hifc_http_time_to_first_token_seconds_bucket"), text)
            XCTAssertTrue(text.contains("hifc_http_request_duration_seconds_bucket"), text)
        }
    }
}
