import Engine
import HiFCCore
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

/// The sampling fields beyond temperature and top-p: what reaches the engine, how log
/// probabilities and `echo` come back on each endpoint, and what is refused by name.
final class SamplingFieldsTests: XCTestCase {
    func testPenaltiesBiasAndExtensionsReachTheEngine() async throws {
        let service = ScriptedGenerationService()
        try await withServer(service) { client in
            let body = #"""
                {"model":"scripted","prompt":"hi","max_tokens":4,"presence_penalty":0.5,"frequency_penalty":-1,
                 "repetition_penalty":1.3,"logit_bias":{"7":100,"9":-100},"top_k":-1,"min_p":0.05,"min_tokens":2,
                 "best_of":1,"suffix":"","response_format":{"type":"text"},"tools":[],"prompt_logprobs":null}
                """#
            let response = try await client.post("/v1/completions", body)
            XCTAssertEqual(response.status, .ok, String(buffer: response.body))
        }
        let sampling = try XCTUnwrap(service.requests.first).sampling
        XCTAssertEqual(sampling.presencePenalty, 0.5)
        XCTAssertEqual(sampling.frequencyPenalty, -1)
        XCTAssertEqual(sampling.repetitionPenalty, 1.3)
        XCTAssertEqual(sampling.logitBias, [7: 100, 9: -100])
        XCTAssertEqual(sampling.topK, 0, "-1 is vLLM's 'no limit'")
        XCTAssertEqual(sampling.minP, 0.05)
        XCTAssertEqual(sampling.minTokens, 2)
        XCTAssertNil(sampling.logprobs)
    }

    func testBestOfEqualToNIsAcceptedWhateverFormNTakes() async throws {
        let service = ScriptedGenerationService()
        try await withServer(service) { client in
            for fields in [#""n":2,"best_of":2"#, #""n":2.0,"best_of":2"#] {
                let response = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"hi","max_tokens":2,"# + fields + "}")
                XCTAssertEqual(response.status, .ok, fields + ": " + String(buffer: response.body))
            }
            let refused = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"hi","n":2,"best_of":3}"#)
            XCTAssertEqual(try refused.error["param"] as? String, "best_of")
        }
        XCTAssertEqual(service.requests.count, 4, "two requests of two choices each")
    }

    func testCompletionLogprobsListTokensAlternativesAndTextOffsets() async throws {
        try await withServer(ScriptedGenerationService()) { client in
            let response = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"hi","max_tokens":3,"logprobs":2}"#)
            XCTAssertEqual(response.status, .ok, String(buffer: response.body))
            let choice = try XCTUnwrap((response.json["choices"] as? [[String: Any]])?.first)
            let logprobs = try XCTUnwrap(choice["logprobs"] as? [String: Any])
            XCTAssertEqual(logprobs["tokens"] as? [String], [" t0", " t1", " t2"])
            XCTAssertEqual(logprobs["token_logprobs"] as? [Double], [0, -0.1, -0.2])
            XCTAssertEqual(logprobs["text_offset"] as? [Int], [0, 3, 6])
            let tops = try XCTUnwrap(logprobs["top_logprobs"] as? [[String: Double]])
            XCTAssertEqual(tops.count, 3)
            XCTAssertEqual(tops[1], [" a0": -1, " a1": -2, " t1": -0.1], "the alternatives and the chosen token")
        }
    }

    func testChatLogprobsCarryBytesAndTheAskedAlternativesStreamedOrNot() async throws {
        try await withServer(ScriptedGenerationService()) { client in
            let fields = #""model":"scripted","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"logprobs":true,"top_logprobs":1"#
            let whole = try await client.post("/v1/chat/completions", "{\(fields)}")
            XCTAssertEqual(whole.status, .ok, String(buffer: whole.body))
            let choice = try XCTUnwrap((whole.json["choices"] as? [[String: Any]])?.first)
            let content = try XCTUnwrap((choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
            XCTAssertEqual(content.map { $0["token"] as? String }, [" t0", " t1"])
            XCTAssertEqual(content[1]["bytes"] as? [Int], Array(" t1".utf8).map(Int.init))
            let top = try XCTUnwrap(content[1]["top_logprobs"] as? [[String: Any]])
            XCTAssertEqual(top.map { $0["token"] as? String }, [" a0"])
            XCTAssertEqual(top.first?["logprob"] as? Double, -1)

            let streamed = try await client.post("/v1/chat/completions", "{\(fields),\"stream\":true}")
            let chunks = try streamed.events.dropLast().map(jsonObject)
            let perChunk = chunks.map { chunk -> [String] in
                let choice = (chunk["choices"] as? [[String: Any]])?.first
                let content = (choice?["logprobs"] as? [String: Any])?["content"] as? [[String: Any]] ?? []
                return content.compactMap { $0["token"] as? String }
            }
            XCTAssertEqual(perChunk.flatMap { $0 }, [" t0", " t1"], "each token's entry once, in order")
            XCTAssertEqual(perChunk.first, [], "the role chunk carries none")
        }
    }

    func testLogprobsFieldsAreCheckedByEndpoint() async throws {
        try await withServer(ScriptedGenerationService()) { client in
            let refusals: [(String, String, String)] = [
                ("/v1/completions", #""prompt":"hi","logprobs":true"#, "logprobs"),
                ("/v1/completions", #""prompt":"hi","logprobs":21"#, "logprobs"),
                ("/v1/chat/completions", #""messages":[{"role":"user","content":"hi"}],"logprobs":3"#, "logprobs"),
                ("/v1/chat/completions", #""messages":[{"role":"user","content":"hi"}],"top_logprobs":3"#, "top_logprobs"),
                ("/v1/chat/completions", #""messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":-1"#, "top_logprobs"),
            ]
            for (uri, fields, param) in refusals {
                let response = try await client.post(uri, #"{"model":"scripted","# + fields + "}")
                XCTAssertEqual(response.status, .badRequest, fields)
                XCTAssertEqual(try response.error["param"] as? String, param, fields)
            }
        }
    }

    func testFieldsThisServerDoesNotImplementAreRefusedByName() async throws {
        let service = ScriptedGenerationService()
        try await withServer(service) { client in
            let refusals: [(String, String, String)] = [
                ("/v1/completions", #""prompt":"hi","best_of":3"#, "best_of"),
                ("/v1/completions", #""prompt":"hi","suffix":"end""#, "suffix"),
                ("/v1/completions", #""prompt":"hi","echo":true,"logprobs":1"#, "echo"),
                ("/v1/completions", #""prompt":"hi","prompt_logprobs":1"#, "prompt_logprobs"),
                ("/v1/chat/completions", #""messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}"#, "response_format"),
                ("/v1/chat/completions", #""messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function"}]"#, "tools"),
                ("/v1/chat/completions", #""messages":[{"role":"user","content":"hi"}],"echo":true"#, "echo"),
            ]
            for (uri, fields, param) in refusals {
                let response = try await client.post(uri, #"{"model":"scripted","# + fields + "}")
                XCTAssertEqual(response.status, .badRequest, fields)
                let error = try response.error
                XCTAssertEqual(error["param"] as? String, param, fields)
                XCTAssertTrue((error["message"] as? String ?? "").contains(param), "the message names the field: \(error)")
            }
        }
        XCTAssertEqual(service.requests.count, 0, "a refused request never reaches the engine")
    }

    func testSamplingFieldsOutOfRangeAreNamed() async throws {
        try await withServer(ScriptedGenerationService()) { client in
            let refusals: [(String, String)] = [
                (#""presence_penalty":2.5"#, "presence_penalty"), (#""frequency_penalty":-3"#, "frequency_penalty"),
                (#""repetition_penalty":0"#, "repetition_penalty"), (#""logit_bias":{"x":1}"#, "logit_bias"),
                (#""logit_bias":{"5":101}"#, "logit_bias"), (#""top_k":-2"#, "top_k"), (#""min_p":1.5"#, "min_p"),
                (#""min_tokens":9"#, "min_tokens"),
            ]
            for (field, param) in refusals {
                let response = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"hi","max_tokens":4,"# + field + "}")
                XCTAssertEqual(response.status, .badRequest, field)
                XCTAssertEqual(try response.error["param"] as? String, param, field)
            }
        }
    }

    func testEchoRepeatsThePromptAsSentOrDecoded() async throws {
        try await withServer(ScriptedGenerationService()) { client in
            let text = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"hey","max_tokens":1,"echo":true}"#)
            XCTAssertEqual((try text.json["choices"] as? [[String: Any]])?.first?["text"] as? String, "hey t0")
            let ids = try await client.post("/v1/completions", #"{"model":"scripted","prompt":[104,105],"max_tokens":1,"echo":true}"#)
            XCTAssertEqual((try ids.json["choices"] as? [[String: Any]])?.first?["text"] as? String, "hi t0")
            let streamed = try await client.post(
                "/v1/completions", #"{"model":"scripted","prompt":"hey","max_tokens":2,"echo":true,"stream":true}"#)
            let texts = try streamed.events.dropLast().map(jsonObject).compactMap {
                ($0["choices"] as? [[String: Any]])?.first?["text"] as? String
            }
            XCTAssertEqual(texts.first, "hey", "the prompt comes first, in a chunk of its own")
            XCTAssertEqual(texts.joined(), "hey t0 t1")
        }
    }

    func testTextOffsetsCountCharactersAndAPartialCharacterStartsWhereItsCharacterDoes() {
        var offsets = LogprobsBody.TextOffsets()
        // "é" is split over two tokens, "日" over three; the offsets count characters, not bytes.
        // A special token (EOS) has no bytes and adds nothing.
        let tokens: [[UInt8]] = [Array("a".utf8), [0xC3], [0xA9, 0x62], [0xE6], [0x97], [0xA5], Array("z".utf8), [], []]
        XCTAssertEqual(tokens.map { offsets.next($0) }, [0, 1, 1, 3, 3, 3, 4, 5, 5])
        var fresh = LogprobsBody.TextOffsets()
        XCTAssertEqual([[], [], Array("b".utf8)].map { fresh.next($0) }, [0, 0, 0])
        XCTAssertEqual(LogprobsBody.text(.init(token: 0, bytes: [0xE6, 0x97], logprob: 0)), #"bytes:\xe6\x97"#)
        XCTAssertEqual(LogprobsBody.text(.init(token: 0, bytes: Array(" é".utf8), logprob: 0)), " é")
    }
}
