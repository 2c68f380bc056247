import CPUKernels
import Foundation

/// The threads the CPU backend computes on: a pool of workers (in C, `hifc_pool`) that the
/// calling thread joins for each op. One pool serves the whole process (`shared`), sized once at
/// start-up by `--threads` (`configure(threads:)`), so the backend's ops, a BLAS library (told
/// the same count) and the server never run more compute threads than asked for.
public final class CPUThreadPool: @unchecked Sendable {
    /// The C pool; immutable after init, destroyed on deinit.
    let raw: OpaquePointer
    /// Threads in the pool, the caller included.
    public let threads: Int

    /// How long an idle worker polls for the next op before it sleeps: long enough to bridge the
    /// gaps between the ops of a forward pass, short enough not to hold a core between steps.
    public static let spinMicroseconds: Int32 = 200

    /// A pool of `threads` threads (at least 1).
    public init(threads: Int) {
        raw = hifc_pool_create(Int32(clamping: max(1, threads)), Self.spinMicroseconds)
        self.threads = Int(hifc_pool_threads(raw))
    }

    deinit { hifc_pool_destroy(raw) }

    /// Physical cores this process may run on (SMT siblings counted once): the default thread count.
    public static var physicalCores: Int { Int(hifc_physical_cores()) }

    private static let current = NSLock()
    nonisolated(unsafe) private static var sharedPool: CPUThreadPool?

    /// The process's pool: the one `configure(threads:)` made, else one of `physicalCores` threads.
    public static var shared: CPUThreadPool {
        current.lock()
        defer { current.unlock() }
        if let pool = sharedPool { return pool }
        let pool = CPUThreadPool(threads: physicalCores)
        sharedPool = pool
        return pool
    }

    /// Makes the process's pool `threads` threads (nil: `physicalCores`) and returns it. A backend
    /// made before keeps the pool it has; the old pool ends with its last user.
    @discardableResult
    public static func configure(threads: Int?) -> CPUThreadPool {
        let pool = CPUThreadPool(threads: threads ?? physicalCores)
        current.lock()
        sharedPool = pool
        current.unlock()
        return pool
    }

    /// Runs `body` over `0..<count` split into contiguous ranges of at least `minimumPerTask`,
    /// spread over the pool; `body` must only touch disjoint memory for disjoint ranges.
    public func parallelRanges(_ count: Int, minimumPerTask: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(count / max(minimumPerTask, 1), threads * 4)
        if chunks <= 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            var job = RangeJob(body: body, count: count, chunks: chunks)
            withUnsafeMutablePointer(to: &job) { pointer in
                hifc_parallel(
                    raw, chunks,
                    { context, chunk, _ in
                        let job = context!.assumingMemoryBound(to: RangeJob.self).pointee
                        job.body(job.count * chunk / job.chunks..<job.count * (chunk + 1) / job.chunks)
                    }, pointer)
            }
        }
    }
}

/// A `parallelRanges` call as the C pool's chunk function reads it.
private struct RangeJob {
    let body: (Range<Int>) -> Void
    let count: Int
    let chunks: Int
}
