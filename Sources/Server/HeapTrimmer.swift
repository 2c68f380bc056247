import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Gives freed heap memory back to the system (glibc's `malloc_trim`) after a burst of large,
/// short-lived allocations such as request bodies.
///
/// `hifc serve` raises glibc's mmap and trim thresholds so that the engine's large per-step arrays
/// are reused rather than faulted in again (`MallocTuning`); the price is that freed blocks of up
/// to 64 MiB stay in the heap. After hundreds of request bodies were freed, that kept 788 MB
/// resident. A trim runs on its own thread, at most once a second, a short while after it is asked
/// for (a storm usually frees its bodies over a few moments).
final class HeapTrimmer: Sendable {
    static let shared = HeapTrimmer()

    private let pending = Mutex(false)
    /// `malloc_trim`, looked up at run time: glibc does not export it to Swift.
    private let trim: (@convention(c) (Int) -> Int32)?

    private init() {
        #if canImport(Glibc)
            if let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "malloc_trim") {
                trim = unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
                return
            }
        #endif
        trim = nil
    }

    /// Trims the heap soon, unless a trim is already due.
    func request() {
        guard trim != nil else { return }
        let first = pending.withLock { due -> Bool in
            if due { return false }
            due = true
            return true
        }
        guard first else { return }
        Thread.detachNewThread { [self] in
            Thread.sleep(forTimeInterval: 1)
            pending.withLock { $0 = false }
            _ = trim?(0)
        }
    }
}
