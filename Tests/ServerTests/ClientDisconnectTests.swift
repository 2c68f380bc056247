import Foundation
import HummingbirdTesting
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// A client that goes away aborts its generation (which frees its blocks in the engine).
final class ClientDisconnectTests: XCTestCase {
    private func assertDisconnectAborts(stream: Bool, reset: Bool = false) async throws {
        let service = ScriptedGenerationService(tokenDelay: .milliseconds(20))
        try await withServer(service, setup: .live) { client in
            let port = try XCTUnwrap(client.port)
            let body = #"{"model":"scripted","prompt":"hi","max_tokens":60,"stream":\#(stream)}"#
            let socket = try RawHTTPConnection(port: port)
            try socket.send(
                "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            )
            if stream { _ = try socket.receiveSome() }  // the headers and the first chunks
            try await Task.sleep(for: .milliseconds(200))
            if reset { socket.reset() } else { socket.close() }
            let deadline = ContinuousClock.now + .seconds(5)
            while service.terminations.isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        }
        let terminations = service.terminations
        XCTAssertEqual(terminations.count, 1)
        XCTAssertEqual(terminations.values.first, true, "the generation was cancelled, not run to its end")
    }

    func testStreamingClientThatDisconnectsAbortsItsGeneration() async throws {
        try await assertDisconnectAborts(stream: true)
    }

    func testNonStreamingClientThatDisconnectsAbortsItsGeneration() async throws {
        try await assertDisconnectAborts(stream: false)
    }

    func testNonStreamingClientWhoseConnectionIsResetAbortsItsGeneration() async throws {
        try await assertDisconnectAborts(stream: false, reset: true)
    }
}

/// A bare TCP connection to the test server on 127.0.0.1, to hang up mid-request.
final class RawHTTPConnection {
    private let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, result == 0 else { throw POSIXError(.ECONNREFUSED) }
        // A server that never answers fails the test instead of hanging it.
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard Glibc.send(fd, bytes, bytes.count, 0) == bytes.count else { throw POSIXError(.EIO) }
    }

    func receiveSome() throws -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { throw POSIXError(.EIO) }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }

    /// Whether the server closes the connection within `seconds` (reading and dropping whatever
    /// it sends first).
    func closedByServer(within seconds: Int) -> Bool {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    /// Closes normally (FIN).
    func close() { _ = Glibc.close(fd) }

    /// Closes with a TCP reset (SO_LINGER 0), as a killed client or a proxy's timeout does.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        _ = Glibc.close(fd)
    }
}
