import Foundation
import HiFCCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Gives freed heap memory back to the system after a burst of large, short-lived allocations
/// (request bodies, the buffers of hundreds of connections).
///
/// `hifc serve` raises glibc's mmap threshold to 64 MiB and its trim threshold to 256 MiB, so that
/// the engine's large per-step arrays are reused rather than faulted in again (`MallocTuning`).
/// The price: freed memory at the top of each thread's heap stays resident, and `malloc_trim`
/// does not release that part of a thread arena. After hundreds of request bodies were freed,
/// 788 MB stayed resident. So during a burst (`burstBegan`) the trim threshold goes back to
/// glibc's default, and once a second has passed with no further `request`, `malloc_trim` runs and
/// the steady threshold is restored. A trim runs at most every ten seconds.
public final class HeapTrimmer: Sendable {
    /// The process's trimmer.
    public static let shared = HeapTrimmer()

    private struct State {
        var lastRequest = ContinuousClock.now
        var lastTrim: ContinuousClock.Instant?
        /// Whether a thread is waiting to trim.
        var waiting = false
        /// Whether the trim threshold is lowered for a burst.
        var inBurst = false
        /// The trim threshold between bursts; nil: glibc's own, never changed here.
        var steadyTrimThreshold: Int32?
    }

    private let state = Mutex(State())
    private let trim: (@convention(c) (Int) -> Int32)?
    private let mallopt: (@convention(c) (Int32, Int32) -> Int32)?
    /// Quiet time before a trim.
    static let quiet = Duration.seconds(1)
    /// Least time between trims.
    static let spacing = Duration.seconds(10)
    /// glibc's `M_TRIM_THRESHOLD` parameter and its default value.
    private static let trimThresholdParameter: Int32 = -1
    private static let defaultTrimThreshold: Int32 = 128 << 10

    private init() {
        var trim: (@convention(c) (Int) -> Int32)?
        var mallopt: (@convention(c) (Int32, Int32) -> Int32)?
        #if canImport(Glibc)
            // Neither is exported to Swift; they are looked up at run time.
            if let handle = dlopen(nil, RTLD_NOW) {
                trim = dlsym(handle, "malloc_trim").map { unsafeBitCast($0, to: (@convention(c) (Int) -> Int32).self) }
                mallopt = dlsym(handle, "mallopt").map { unsafeBitCast($0, to: (@convention(c) (Int32, Int32) -> Int32).self) }
            }
        #endif
        self.trim = trim
        self.mallopt = mallopt
    }

    /// Tells the trimmer the trim threshold the process has set (`MallocTuning`), to restore
    /// after each burst.
    public func setSteadyTrimThreshold(_ bytes: Int32) {
        state.withLock { $0.steadyTrimThreshold = bytes }
    }

    /// A burst of allocations has begun: memory freed from now on at the top of a heap goes back
    /// to the system at once, until the burst's trim.
    func burstBegan() {
        let lower = state.withLock { state -> Bool in
            guard state.steadyTrimThreshold != nil, !state.inBurst else { return false }
            state.inBurst = true
            return true
        }
        if lower { _ = mallopt?(Self.trimThresholdParameter, Self.defaultTrimThreshold) }
    }

    /// Trims the heap once a quiet second has passed, and ends the burst.
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
                Thread.sleep(forTimeInterval: wait.inSeconds)
            }
            _ = trim?(0)
            let restore = state.withLock { state -> Int32? in
                state.waiting = false
                state.lastTrim = .now
                defer { state.inBurst = false }
                return state.inBurst ? state.steadyTrimThreshold : nil
            }
            if let restore { _ = mallopt?(Self.trimThresholdParameter, restore) }
        }
    }
}
