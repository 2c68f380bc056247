import Hummingbird

/// The per-request context of the server: Hummingbird's core context, plus a way to learn that the
/// client's connection closed (so that a non-streaming generation can be aborted when its client
/// gives up).
public struct ServerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Runs an action once the request's connection is closed.
    let whenConnectionCloses: @Sendable (@escaping @Sendable () -> Void) -> Void

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        let closed = source.channel.closeFuture
        whenConnectionCloses = { action in closed.whenComplete { _ in action() } }
    }
}
