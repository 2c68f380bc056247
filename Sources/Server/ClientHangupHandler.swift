import NIOCore

/// Closes a connection as soon as its client stops sending (TCP FIN).
///
/// Hummingbird keeps half-closed connections open, so a client that gives up on a non-streaming
/// request would otherwise be noticed only when its answer is written, after the whole generation.
/// Closing the connection fires its close future, which cancels the request's generation
/// (`ServerRequestContext.whenConnectionCloses`) and frees its KV blocks. HTTP clients do not
/// half-close a connection they still expect an answer on.
final class ClientHangupHandler: ChannelInboundHandler, RemovableChannelHandler {
    // Parts pass through untouched (the default `channelRead` forwards them unread).
    typealias InboundIn = Never

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
        }
    }
}
