import XCTest

@testable import HiFCBench

/// Server-sent events split wherever the network splits them, and what a stream's chunks measure.
final class StreamParsingTests: XCTestCase {
    func testEventsSplitAcrossReadsAndLineEndingsAreFound() {
        var parser = ServerSentEventParser()
        let stream = "data: {\"a\":1}\n\n: a comment\r\ndata: {\"b\":\r\ndata: 2}\r\n\r\nevent: x\ndata: [DONE]\n\n"
        var events: [String] = []
        // One byte at a time: every split point is tried.
        for byte in stream.utf8 { events += parser.feed([byte]) }
        XCTAssertEqual(events, ["{\"a\":1}", "{\"b\":\n2}", "[DONE]"])
        var whole = ServerSentEventParser()
        XCTAssertEqual(whole.feed(Array(stream.utf8)), events, "one read holding every event")
    }

    func testMeasurementTimesTokensAndReadsUsage() throws {
        let start = ContinuousClock.now
        var measurement = StreamMeasurement(start: start)
        try measurement.receive(#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#, at: start + .milliseconds(5))
        XCTAssertNil(measurement.ttft, "an empty first chunk (the role) is not a token")
        try measurement.receive(#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#, at: start + .milliseconds(40))
        try measurement.receive(#"{"choices":[{"index":0,"delta":{"content":"lo"}}]}"#, at: start + .milliseconds(55))
        try measurement.receive(#"{"choices":[{"index":0,"text":" there","finish_reason":null}]}"#, at: start + .milliseconds(75))
        try measurement.receive(
            #"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":4,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":8}}}"#,
            at: start + .milliseconds(76))
        try measurement.receive("[DONE]", at: start + .milliseconds(77))
        XCTAssertEqual(measurement.text, "Hello there")
        XCTAssertEqual(measurement.ttft ?? 0, 0.040, accuracy: 1e-9)
        XCTAssertEqual(measurement.interTokenLatencies.count, 2)
        XCTAssertEqual(measurement.interTokenLatencies[0], 0.015, accuracy: 1e-9)
        XCTAssertEqual(measurement.interTokenLatencies[1], 0.020, accuracy: 1e-9)
        XCTAssertEqual(measurement.latency, 0.077, accuracy: 1e-9)
        XCTAssertEqual(measurement.outputTokens, 4, "the server's count, not the three chunks")
        XCTAssertEqual(measurement.promptTokens, 12)
        XCTAssertEqual(measurement.cachedPromptTokens, 8)
        XCTAssertTrue(measurement.done)
    }

    func testErrorEventAndGarbageFailTheRequest() {
        var measurement = StreamMeasurement(start: .now)
        XCTAssertThrowsError(try measurement.receive(#"{"error":{"message":"engine failed","type":"server_error"}}"#, at: .now)) { error in
            XCTAssertTrue("\(error)".contains("engine failed"))
        }
        XCTAssertThrowsError(try measurement.receive("not json", at: .now))
    }

    func testRetryAfterIsReadAsSecondsOrAnHTTPDate() {
        XCTAssertEqual(ServeBenchRunner.retryAfterSeconds("3"), 3)
        XCTAssertEqual(ServeBenchRunner.retryAfterSeconds("Wed, 21 Oct 2015 07:28:00 GMT"), 0, "a date in the past: no wait")
        XCTAssertNil(ServeBenchRunner.retryAfterSeconds("soon"))
    }

    func testBaseURLsParseAndHTTPSIsRefusedByName() throws {
        let plain = try BaseURL(parsing: "http://127.0.0.1:8000")
        XCTAssertEqual([plain.host, "\(plain.port)", plain.path], ["127.0.0.1", "8000", ""])
        XCTAssertEqual(ServeEndpoint.completions.path(under: plain), "/v1/completions")
        let v1 = try BaseURL(parsing: "http://localhost:9000/v1/")
        XCTAssertEqual(v1.path, "/v1")
        XCTAssertEqual(ServeEndpoint.chat.path(under: v1), "/chat/completions")
        XCTAssertEqual(try BaseURL(parsing: "http://[::1]:8080").host, "::1")
        XCTAssertEqual(try BaseURL(parsing: "http://example").port, 80)
        XCTAssertThrowsError(try BaseURL(parsing: "https://api.example.com")) { XCTAssertTrue("\($0)".contains("HTTPS")) }
        XCTAssertThrowsError(try BaseURL(parsing: "http://host:99999"))
    }
}
