import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Gives freed heap memory back to the system (glibc's `malloc_trim`) after a burst of large,
/// short-lived allocations such as request bodies and the buffers of many connections.
///
/// `hifc serve` raises glibc's mmap and trim thresholds so that the engine's large per-step arrays
/// are reused rather than faulted in again (`MallocTuning`); the price is that freed blocks of up
/// to 64 MiB stay in the heap. After hundreds of request bodies were freed, that kept 788 MB
/// resident. A trim runs on its own thread once a second has passed with no new request for one
/// (a storm frees its memory over a few moments), and at most every ten seconds, so a burst
/// costs one trim and steady churn one every ten seconds.
final class HeapTrimmer: Sendable {
    static let shared = HeapTrimmer()

    /// When the latest trim was asked for and the latest ran, and whether a thread is waiting.
    private let state = Mutex<(lastRequest: ContinuousClock.Instant, lastTrim: ContinuousClock.Instant?, waiting: Bool)>((.now, nil, false))
    /// `malloc_trim`, looked up at run time: glibc does not export it to Swift.
    private let trim: (@convention(c) (Int) -> Int32)?
    /// Quiet time before a trim.
    static let quiet = Duration.seconds(1)
    /// Least time between trims.
    static let spacing = Duration.seconds(10)

    private init() {
        #if canImport(Glibc)
            if let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "malloc_trim") {
                trim = unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
                return
            }
        #endif
        trim = nil
    }

    /// Trims the heap once a quiet second has passed.
    func request() {
        guard trim != nil else { return }
        let start = state.withLock { state -> Bool in
            state.lastRequest = .now
            defer { state.waiting = true }
            return !state.waiting
        }
        guard start else { return }
        Thread.detachNewThread { [self] in
            while true {
                let due = state.withLock { state in
                    let quiet = state.lastRequest + Self.quiet
                    return state.lastTrim.map { max(quiet, $0 + Self.spacing) } ?? quiet
                }
                let wait = due - .now
                guard wait > .zero else { break }
                Thread.sleep(forTimeInterval: Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18)
            }
            state.withLock {
                $0.waiting = false
                $0.lastTrim = .now
            }
            _ = trim?(0)
        }
    }
}
