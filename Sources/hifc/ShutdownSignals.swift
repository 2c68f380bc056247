import Dispatch
import Foundation
import Logging
import Synchronization

/// SIGTERM and SIGINT for `hifc serve`: the first starts a graceful shutdown, a second exits at
/// once (status 128 + the signal) without waiting for anything.
///
/// ServiceLifecycle's own signal handling ignores a signal repeated during graceful shutdown, so
/// the signals are taken here, with dispatch sources, and the first one is handed on.
final class ShutdownSignals: @unchecked Sendable {
    // Kept so the sources live as long as this object; touched only in init.
    private var sources: [any DispatchSourceSignal] = []

    /// Starts listening; `onFirst` runs on the first signal.
    init(logger: Logger, onFirst: @escaping @Sendable () async -> Void) {
        let received = Mutex(0)
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let count = received.withLock { count -> Int in
                    count += 1
                    return count
                }
                guard count == 1 else {
                    logger.warning("received \(name) again: exiting now, without waiting for running requests")
                    fflush(nil)
                    _exit(128 + number)
                }
                logger.info("received \(name): shutting down gracefully (send it again to exit at once)")
                Task { await onFirst() }
            }
            source.resume()
            sources.append(source)
        }
    }
}
