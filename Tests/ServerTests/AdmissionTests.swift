import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

/// Admission in front of the engine: a bounded queue that answers 429, fair dispatch between
/// requests, and a request's whole work dropped when its client goes.
final class AdmissionTests: XCTestCase {
    func testAFullQueueAnswers429WithRetryAfter() async throws {
        let service = ScriptedGenerationService(tokenDelay: .milliseconds(20))
        try await withServer(
            service,
            configure: {
                $0.maxRunning = 1
                $0.maxQueuedSequences = 2
            }
        ) { client in
            async let first = client.post("/v1/completions", #"{"model":"scripted","prompt":"a","max_tokens":30}"#)
            try await eventually { service.requests.count == 1 }
            async let second = client.post("/v1/completions", #"{"model":"scripted","prompt":"b","max_tokens":2,"n":2}"#)
            try await Task.sleep(for: .milliseconds(100))
            let refused = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"c","max_tokens":2}"#)
            XCTAssertEqual(refused.status, .tooManyRequests, String(buffer: refused.body))
            XCTAssertNotNil(refused.headers[.retryAfter].flatMap(Int.init))
            XCTAssertEqual(try refused.error["code"] as? String, "queue_full")
            XCTAssertTrue(try XCTUnwrap(refused.error["message"] as? String).contains("--max-queued-sequences"))
            let (a, b) = try await (first, second)
            XCTAssertEqual(a.status, .ok)
            XCTAssertEqual(b.status, .ok, "queued requests are served once there is room")
        }
    }

    func testASmallRequestIsNotHeldBehindALargeOne() async throws {
        let service = ScriptedGenerationService(tokenDelay: .milliseconds(20))
        try await withServer(service, configure: { $0.maxRunning = 2 }) { client in
            async let big = client.post("/v1/completions", #"{"model":"scripted","prompt":"big","max_tokens":5,"n":16}"#)
            try await eventually { service.requests.count >= 2 }
            let start = ContinuousClock.now
            let small = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"small","max_tokens":2}"#)
            let smallTime = ContinuousClock.now - start
            XCTAssertEqual(small.status, .ok)
            let bigResponse = try await big
            let bigTime = ContinuousClock.now - start
            XCTAssertEqual(bigResponse.status, .ok)
            XCTAssertLessThan(smallTime * 2, bigTime, "the small request finished long before the large one")
        }
        let order = service.requests.map { String(decoding: $0.promptTokens.map(UInt8.init), as: UTF8.self) }
        let smallPlace = try XCTUnwrap(order.firstIndex(of: "small"))
        XCTAssertLessThanOrEqual(smallPlace, 3, "the small request took the next free place: \(order)")
    }

    func testADisconnectedClientsQueuedAndRunningGenerationsAllGo() async throws {
        let service = ScriptedGenerationService(tokenDelay: .milliseconds(20))
        try await withServer(service, setup: .live, configure: { $0.maxRunning = 2 }) { client in
            let port = try XCTUnwrap(client.port)
            let body = #"{"model":"scripted","prompt":"big","max_tokens":40,"n":16}"#
            let socket = try RawHTTPConnection(port: port)
            try socket.send(
                "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            )
            try await eventually { service.requests.count == 2 }
            socket.close()
            try await eventually { service.terminations.count == 2 }
            try await Task.sleep(for: .milliseconds(200))
            let after = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"next","max_tokens":1}"#)
            XCTAssertEqual(after.status, .ok)
        }
        XCTAssertEqual(service.requests.count, 3, "the 14 queued choices never reached the engine")
        XCTAssertEqual(service.terminations.values.filter { $0 }.count, 2, "both running choices were aborted")
    }
}
