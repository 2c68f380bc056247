import Foundation
import Synchronization

/// Runs `body(worker, index)` for every index of `count` on up to `depth` threads at once, so the
/// disk sees several requests in flight; rethrows the first error after all threads have stopped.
///
/// Each worker takes the next index not yet taken, rather than a fixed share: on a disk whose
/// request times vary, a fixed share leaves the workers that drew fast requests idle while one
/// finishes a slow share, and the batch ends with a single request in flight. `worker` (below
/// `depth`) is stable for the thread, so a caller can give each worker a buffer of its own.
func concurrentlyForEach(_ count: Int, depth: Int, _ body: @Sendable (_ worker: Int, _ index: Int) throws -> Void) throws {
    let workers = max(1, min(depth, count))
    if workers == 1 {
        for i in 0..<count { try body(0, i) }
        return
    }
    let next = Atomic<Int>(0)
    let failure = Mutex<(any Error)?>(nil)
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        while failure.withLock({ $0 == nil }) {
            let i = next.add(1, ordering: .relaxed).oldValue
            guard i < count else { return }
            do { try body(w, i) } catch { failure.withLock { if $0 == nil { $0 = error } } }
        }
    }
    if let error = failure.withLock({ $0 }) { throw error }
}
