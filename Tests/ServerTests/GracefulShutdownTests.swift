import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import XCTest

@testable import Server

/// Graceful shutdown: new work is refused, running requests finish within the timeout or are
/// aborted at it, and the server is down soon after.
final class GracefulShutdownTests: XCTestCase {
    /// Runs a server on `service` in a service group and returns it with its port.
    private func startServer(
        _ service: ScriptedGenerationService, timeout: Duration
    ) async throws -> (group: ServiceGroup, run: Task<Void, Error>, port: Int) {
        var configuration = ServerConfiguration()
        configuration.shutdownTimeout = timeout
        let routes = OpenAIRoutes(service: service, configuration: configuration, logger: Logger(label: "test"))
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let application = try routes.application(address: .hostname("127.0.0.1", port: 0)) { port in
            portContinuation.yield(port ?? 0)
        }
        let group = ServiceGroup(
            services: [HTTPServerService(application: application, routes: routes, timeout: timeout, logger: Logger(label: "test"))],
            logger: Logger(label: "test"))
        let run = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        let first = await iterator.next()
        let port = try XCTUnwrap(first)
        return (group, run, port)
    }

    private func streamingRequest(port: Int, maxTokens: Int) throws -> RawHTTPConnection {
        let body = #"{"model":"scripted","prompt":"hi","max_tokens":\#(maxTokens),"stream":true}"#
        let socket = try RawHTTPConnection(port: port)
        try socket.send(
            "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        return socket
    }

    func testARequestThatFinishesInTimeIsServedInFull() async throws {
        let service = ScriptedGenerationService(tokenDelay: .milliseconds(20))
        let server = try await startServer(service, timeout: .seconds(10))
        let socket = try streamingRequest(port: server.port, maxTokens: 10)
        defer { socket.close() }
        _ = try socket.receiveSome()
        await server.group.triggerGracefulShutdown()
        let text = socket.receiveAll()
        try await server.run.value
        XCTAssertTrue(text.contains("data: [DONE]"), text)
        XCTAssertEqual(service.terminations.values.first, false, "the generation ran to its end")
    }

    func testARequestStillRunningAtTheDeadlineIsAbortedAndTheServerStops() async throws {
        let service = ScriptedGenerationService(maxContextTokens: 4096, tokenDelay: .milliseconds(50))
        let server = try await startServer(service, timeout: .milliseconds(300))
        let socket = try streamingRequest(port: server.port, maxTokens: 1000)
        defer { socket.close() }
        _ = try socket.receiveSome()
        let start = ContinuousClock.now
        await server.group.triggerGracefulShutdown()
        let text = socket.receiveAll()
        try await server.run.value
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(5), "down within the timeout and the closing margin")
        XCTAssertTrue(text.contains("shutting down"), "the stream ends with an error event: \(text.suffix(300))")
        XCTAssertEqual(service.terminations.values.first, true, "the generation was aborted")
        XCTAssertThrowsError(try RawHTTPConnection(port: server.port), "no longer listening")
    }
}

extension RawHTTPConnection {
    /// Everything the server sends until it closes the connection (at most 10 s).
    func receiveAll() -> String {
        var text = ""
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, let piece = try? receiveSome() { text += piece }
        return text
    }
}
