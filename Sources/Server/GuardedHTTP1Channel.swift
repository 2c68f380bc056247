import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOHTTPTypes

/// Hummingbird's HTTP/1.1 child channel with the server's connection hygiene around it.
///
/// Each accepted connection is first admitted by the `ConnectionRegistry` (which may close an idle
/// one to make room, or refuse this one). Its pipeline gets, besides Hummingbird's own handlers:
/// - `RequestBytesWatch` before the HTTP decoder, which sees the first byte of each request;
/// - `RequestPhaseHandler` after it, which sees each request's head and end and each response's end;
/// - `ClientHangupHandler`, which closes a connection whose client stopped sending.
///
/// Together they keep the registry told what the connection is doing and close a connection whose
/// request is not fully received within `requestReadTimeout` of its first byte (a client sending
/// its headers or body a byte at a time). Idle connections are closed by Hummingbird after
/// `idleTimeout`.
struct GuardedHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = HTTP1Channel.Value

    let responder: HTTPChannelHandler.Responder
    let registry: ConnectionRegistry
    let idleTimeout: Duration
    let requestReadTimeout: Duration

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard registry.admit(channel) else {
            // Every connection is being answered: this one is closed unread. A failed setup is
            // dropped by the server's accept loop, which goes on accepting.
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(ChannelError.inputClosed)
        }
        let registry = self.registry
        let readTimeout = TimeAmount(requestReadTimeout)
        let idleTimeout = TimeAmount(self.idleTimeout)
        let responder = self.responder
        return channel.eventLoop.makeCompletedFuture { () -> HTTP1Channel in
            let tracker = ConnectionTracker(channel: channel, registry: registry, readTimeout: readTimeout)
            try channel.pipeline.syncOperations.addHandler(RequestBytesWatch(tracker: tracker))
            // HTTP1Channel makes its handlers on this event loop, during its setup below.
            let bound = NIOLoopBound(tracker, eventLoop: channel.eventLoop)
            return HTTP1Channel(
                responder: responder,
                configuration: .init(
                    additionalChannelHandlers: [ClientHangupHandler(), RequestPhaseHandler(tracker: bound.value)], idleTimeout: idleTimeout))
        }.flatMap { base in
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: value, logger: logger)
    }
}

/// One connection's request state, shared by its `RequestBytesWatch` and `RequestPhaseHandler`;
/// used only on the connection's event loop.
final class ConnectionTracker {
    private let channel: any Channel
    private let registry: ConnectionRegistry
    private let readTimeout: TimeAmount
    /// Whether a request's head or body is still arriving.
    private var reading = false
    /// Requests whose response has not been written in full.
    private var unanswered = 0
    private var readDeadline: Scheduled<Void>?

    init(channel: any Channel, registry: ConnectionRegistry, readTimeout: TimeAmount) {
        self.channel = channel
        self.registry = registry
        self.readTimeout = readTimeout
    }

    /// Bytes arrived: when nothing was under way, a request begins and its read deadline starts.
    func bytesArrived() {
        guard !reading, unanswered == 0 else { return }
        reading = true
        startDeadline()
        publish()
    }

    /// A request's head was read.
    func headRead() {
        reading = true
        unanswered += 1
        startDeadline()
        publish()
    }

    /// A request's end was read.
    func requestRead() {
        reading = false
        readDeadline?.cancel()
        readDeadline = nil
        publish()
    }

    /// A response's end was written.
    func responseWritten() {
        unanswered = max(0, unanswered - 1)
        publish()
    }

    private func startDeadline() {
        guard readDeadline == nil else { return }
        let channel = self.channel
        readDeadline = channel.eventLoop.scheduleTask(in: readTimeout) {
            Counter(label: "hifc_http_request_read_timeouts_total").increment()
            channel.close(promise: nil)
        }
    }

    private func publish() {
        let phase: ConnectionPhase = reading ? .reading : unanswered > 0 ? .answering : .idle
        registry.setPhase(phase, of: channel)
    }

    deinit { readDeadline?.cancel() }
}

/// Sits before the HTTP decoder and tells the tracker when bytes arrive.
final class RequestBytesWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let tracker: ConnectionTracker

    init(tracker: ConnectionTracker) { self.tracker = tracker }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        tracker.bytesArrived()
        context.fireChannelRead(data)
    }
}

/// Sits after the HTTP decoder and tells the tracker where each request and response stands.
final class RequestPhaseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let tracker: ConnectionTracker

    init(tracker: ConnectionTracker) { self.tracker = tracker }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: tracker.headRead()
        case .body: break
        case .end: tracker.requestRead()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { tracker.responseWritten() }
        context.write(data, promise: promise)
    }
}
