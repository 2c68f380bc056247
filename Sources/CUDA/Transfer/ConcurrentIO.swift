import Foundation
import Synchronization

/// Runs `body` for every index of `count` on up to `depth` threads at once (index i on thread
/// i mod depth), so the disk sees several requests in flight; rethrows the first error after all
/// threads have stopped.
func concurrentlyForEach(_ count: Int, depth: Int, _ body: @Sendable (Int) throws -> Void) throws {
    let workers = max(1, min(depth, count))
    if workers == 1 {
        for i in 0..<count { try body(i) }
        return
    }
    let failure = Mutex<(any Error)?>(nil)
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        for i in stride(from: w, to: count, by: workers) {
            if failure.withLock({ $0 != nil }) { return }
            do { try body(i) } catch { failure.withLock { if $0 == nil { $0 = error } } }
        }
    }
    if let error = failure.withLock({ $0 }) { throw error }
}
