import Engine
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// The HTTP server as a service of a `ServiceGroup`, with the server's graceful shutdown.
///
/// When the group shuts down gracefully, Hummingbird stops accepting connections and closes the
/// idle ones, while this service stops admitting generations (503) and gives those running
/// `timeout` to finish. At the deadline it aborts what is left (a non-streamed request gets a 503,
/// a stream an error event), and a few seconds later closes any connection still open (a client
/// still sending its request), so the server is down within `timeout` plus that margin.
struct HTTPServerService<App: ApplicationProtocol>: Service {
    let application: App
    let routes: OpenAIRoutes
    let timeout: Duration
    let logger: Logger

    /// Time between aborting the generations and closing the connections left.
    static var closeMargin: Duration { .seconds(3) }

    func run() async throws {
        let drain = DrainTask()
        try await withGracefulShutdownHandler {
            try await application.run()
        } onGracefulShutdown: { [routes, timeout, logger] in
            drain.start { await Self.drain(routes, timeout: timeout, logger: logger) }
        }
        drain.cancel()
    }

    /// Lets running requests finish until the deadline, then ends them and their connections.
    private static func drain(_ routes: OpenAIRoutes, timeout: Duration, logger: Logger) async {
        let admission = routes.admission
        admission.stopAccepting()
        let running = admission.activeRequests
        logger.info(
            "shutting down: no new connections or requests; \(running) request(s) running get up to \(ConfigurationSchema.renderDuration(timeout)) to finish (--shutdown-timeout)"
        )
        let deadline = ContinuousClock.now + timeout
        if await admission.waitUntilIdle(deadline: deadline) {
            if running > 0 { logger.info("shutting down: the \(running) running request(s) finished") }
        } else {
            let aborted = admission.abortAll(.engineStopped("the server is shutting down (--shutdown-timeout passed)"))
            logger.warning("shutting down: aborted \(aborted) request(s) still running at the deadline")
        }
        try? await Task.sleep(for: closeMargin)
        guard !Task.isCancelled else { return }
        let closed = routes.connections.closeAll()
        if closed > 0 { logger.warning("shutting down: closed \(closed) connection(s) still open") }
    }
}

/// The drain started by graceful shutdown, cancelled when the server stopped before it finished.
private final class DrainTask: Sendable {
    private let task = Mutex<Task<Void, Never>?>(nil)

    func start(_ body: @escaping @Sendable () async -> Void) {
        task.withLock { $0 = $0 ?? Task { await body() } }
    }

    func cancel() { task.withLock { $0?.cancel() } }
}
