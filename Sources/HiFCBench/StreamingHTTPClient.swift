import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 client over SwiftNIO that hands back a response as it arrives, each piece of
/// the body stamped with the monotonic time its bytes were read from the socket.
///
/// Why not AsyncHTTPClient: the benchmark needs each SSE chunk's arrival time, taken on the event
/// loop when the bytes come in, not when a consuming task next runs; a channel handler of our
/// own gives exactly that in about a hundred lines, and NIO is already a dependency (Hummingbird's),
/// while AsyncHTTPClient would add it, swift-nio-ssl (BoringSSL) and HTTP/2 to the `hifc` binary's
/// build for features a benchmark on loopback or a cluster network does not use (TLS, pooling,
/// redirects, proxies). One connection per request (`Connection: close`): no pool to warm, and a
/// request's time includes its connect, as a client's would.
public final class StreamingHTTPClient: Sendable {
    private let group: MultiThreadedEventLoopGroup

    /// A client with `threads` event loop threads (one is plenty for hundreds of streams).
    public init(threads: Int = 1) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    /// Stops the event loops; call once every request has ended.
    public func shutdown() async throws { try await group.shutdownGracefully() }

    /// A piece of a response, in the order it arrives.
    public enum Part: Sendable {
        /// The status line and headers.
        case head(status: Int, headers: [(name: String, value: String)])
        /// Body bytes, with the time they were read.
        case body(ByteBuffer, receivedAt: ContinuousClock.Instant)
        /// The response is complete, at that time.
        case end(receivedAt: ContinuousClock.Instant)
    }

    /// Sends one request to `url` and returns its response as it arrives. The stream throws
    /// `HTTPClientError` when the connection fails, closes early or `timeout` passes; ending the
    /// iteration early closes the connection.
    public func send(
        _ method: HTTPMethod, to url: BaseURL, path: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        timeout: Duration = .seconds(600)
    ) async throws(HTTPClientError) -> AsyncThrowingStream<Part, any Error> {
        let (stream, continuation) = AsyncThrowingStream<Part, any Error>.makeStream()
        let limit = TimeAmount.nanoseconds(timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(10))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(ResponseReader(continuation, timeout: limit))
                    }
                }
                .connect(host: url.host, port: url.port).get()
        } catch {
            throw .cannotConnect(url.description, reason: "\(error)")
        }
        // A consumer that stops early closes the connection (closing a closed channel is harmless).
        continuation.onTermination = { _ in channel.close(promise: nil) }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: url.path + path)
        head.headers.add(name: "Host", value: "\(url.host):\(url.port)")
        head.headers.add(name: "Connection", value: "close")
        head.headers.add(name: "User-Agent", value: "hifc-bench")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if let body { head.headers.add(name: "Content-Length", value: "\(body.count)") }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        return stream
    }
}

/// Where a server is: `http://host:port` and an optional path prefix (`/v1` or a proxy's).
public struct BaseURL: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// Prefix of every path, without a trailing slash ("" for none).
    public var path: String

    /// Parses `http://host[:port][/path]`; HTTPS is refused (this client speaks plain HTTP).
    public init(parsing text: String) throws(HTTPClientError) {
        var rest = Substring(text)
        guard rest.hasPrefix("http://") else {
            throw .badURL(
                text,
                reason: rest.hasPrefix("https://")
                    ? "HTTPS is not supported; use http:// (a benchmark on loopback or a cluster network)" : "it must start with http://")
        }
        rest = rest.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        var prefix = String(rest.dropFirst(authority.count))
        while prefix.hasSuffix("/") { prefix.removeLast() }
        path = prefix
        if authority.hasPrefix("[") {
            // An IPv6 literal: [::1]:8000.
            guard let close = authority.firstIndex(of: "]") else { throw .badURL(text, reason: "unclosed [ in the host") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            port = after.hasPrefix(":") ? Int(after.dropFirst()) ?? -1 : 80
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = Int(authority[authority.index(after: colon)...]) ?? -1
        } else {
            host = String(authority)
            port = 80
        }
        guard !host.isEmpty else { throw .badURL(text, reason: "no host") }
        guard (1...65535).contains(port) else { throw .badURL(text, reason: "the port is not a number from 1 to 65535") }
    }

    public var description: String {
        "http://\(host.contains(":") ? "[\(host)]" : host):\(port)\(path)"
    }
}

/// Why a request got no complete response.
public enum HTTPClientError: Error, CustomStringConvertible, Sendable {
    case badURL(String, reason: String)
    case cannotConnect(String, reason: String)
    case timedOut(seconds: Double)
    case closedEarly

    public var description: String {
        switch self {
        case .badURL(let url, let reason): return "cannot use the URL '\(url)': \(reason)"
        case .cannotConnect(let url, let reason): return "cannot connect to \(url): \(reason)"
        case .timedOut(let seconds): return "no complete response within \(seconds) s"
        case .closedEarly: return "the server closed the connection before the response ended"
        }
    }
}

/// Hands the response's parts to the stream as the event loop reads them, stamping each with the
/// time of the read, and fails the response if it has not ended within its time limit.
private final class ResponseReader: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let continuation: AsyncThrowingStream<StreamingHTTPClient.Part, any Error>.Continuation
    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    private var ended = false

    init(_ continuation: AsyncThrowingStream<StreamingHTTPClient.Part, any Error>.Continuation, timeout: TimeAmount) {
        self.continuation = continuation
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let limit = timeout
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: limit) { [self] in
            fail(HTTPClientError.timedOut(seconds: Double(limit.nanoseconds) / 1e9))
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) { deadline?.cancel() }

    /// Ends the stream with `error` unless it has ended.
    private func fail(_ error: any Error) {
        guard !ended else { return }
        ended = true
        deadline?.cancel()
        continuation.finish(throwing: error)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = ContinuousClock.now
        switch unwrapInboundIn(data) {
        case .head(let head):
            continuation.yield(.head(status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) }))
        case .body(let buffer):
            continuation.yield(.body(buffer, receivedAt: now))
        case .end:
            ended = true
            deadline?.cancel()
            continuation.yield(.end(receivedAt: now))
            continuation.finish()
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(HTTPClientError.closedEarly)
        context.fireChannelInactive()
    }
}
