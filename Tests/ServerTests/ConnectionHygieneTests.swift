import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

/// Idle and slow connections are closed, their number is capped without locking out a real
/// request, and request bodies share a memory budget.
final class ConnectionHygieneTests: XCTestCase {
    func testAnIdleConnectionIsClosed() async throws {
        try await withServer(ScriptedGenerationService(), setup: .live, configure: { $0.idleTimeout = .milliseconds(300) }) { client in
            let socket = try RawHTTPConnection(port: try XCTUnwrap(client.port))
            defer { socket.close() }
            XCTAssertTrue(socket.closedByServer(within: 5))
        }
    }

    func testARequestSentTooSlowlyIsCutOff() async throws {
        try await withServer(
            ScriptedGenerationService(), setup: .live,
            configure: {
                $0.idleTimeout = .seconds(30)
                $0.requestReadTimeout = .milliseconds(300)
            }
        ) { client in
            let socket = try RawHTTPConnection(port: try XCTUnwrap(client.port))
            defer { socket.close() }
            try socket.send("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            let start = ContinuousClock.now
            XCTAssertTrue(socket.closedByServer(within: 5))
            XCTAssertLessThan(ContinuousClock.now - start, .seconds(3), "closed by the read timeout, not the idle one")
            // A prompt client on another connection is served as usual.
            let response = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"hi","max_tokens":1}"#)
            XCTAssertEqual(response.status, .ok)
        }
    }

    func testAtTheCapAnIdleConnectionMakesRoomForARealRequest() async throws {
        try await withServer(ScriptedGenerationService(), setup: .live, configure: { $0.maxConnections = 4 }) { client in
            let port = try XCTUnwrap(client.port)
            let idle = try (0..<8).map { _ in try RawHTTPConnection(port: port) }
            defer { idle.forEach { $0.close() } }
            try await Task.sleep(for: .milliseconds(200))
            // Each probe on a connection of its own, opened after the crowd, as a health checker
            // does (the test client's one connection may be among the evicted idle ones).
            for _ in 0..<3 {
                let probe = try RawHTTPConnection(port: port)
                defer { probe.close() }
                try probe.send("GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                XCTAssertTrue(try probe.receiveSome().hasPrefix("HTTP/1.1 200"))
            }
            XCTAssertTrue(idle[0].closedByServer(within: 2), "the longest idle connection was closed for a new one")
        }
    }

    func testBodiesOverTheMemoryBudgetGet503UntilItFrees() async throws {
        try await withServer(ScriptedGenerationService(), setup: .live, configure: { $0.maxBodyMemory = .kib(1) }) { client in
            let port = try XCTUnwrap(client.port)
            let slow = try RawHTTPConnection(port: port)
            try slow.send(
                "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 800\r\n\r\n{\"model\":")
            try await Task.sleep(for: .milliseconds(200))
            let body = #"{"model":"scripted","prompt":"hi","max_tokens":1,"padding":"\#(String(repeating: "x", count: 400))"}"#
            let refused = try await client.post("/v1/completions", body)
            XCTAssertEqual(refused.status, .serviceUnavailable)
            XCTAssertEqual(refused.headers[.retryAfter], "1")
            XCTAssertEqual(try refused.error["code"] as? String, "server_busy")
            slow.close()
            try await Task.sleep(for: .milliseconds(300))
            let served = try await client.post("/v1/completions", body)
            XCTAssertEqual(served.status, .ok, "the budget came back when the slow body's connection closed")
        }
    }
}
