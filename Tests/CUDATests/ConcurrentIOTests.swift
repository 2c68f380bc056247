import Foundation
import Synchronization
import XCTest

@testable import CUDA

/// The worker loop that keeps several block requests in flight (cuFile and the staging ring).
final class ConcurrentIOTests: XCTestCase {
    func testEveryIndexRunsOnceAndNoWorkerRunsTwoAtOnce() throws {
        let count = 97
        let depth = 4
        let runs = Mutex([Int](repeating: 0, count: count))
        let busy = Mutex(Set<Int>())
        let overlap = Atomic<Bool>(false)
        try concurrentlyForEach(count, depth: depth) { worker, index in
            XCTAssertLessThan(worker, depth)
            if !busy.withLock({ $0.insert(worker).inserted }) { overlap.store(true, ordering: .relaxed) }
            runs.withLock { $0[index] += 1 }
            busy.withLock { _ = $0.remove(worker) }
        }
        XCTAssertEqual(runs.withLock { $0 }, [Int](repeating: 1, count: count))
        XCTAssertFalse(overlap.load(ordering: .relaxed), "one worker's buffer was used by two requests at once")
    }

    func testASlowRequestDoesNotHoldBackTheIndicesAfterIt() throws {
        // Index 0 finishes only once every other index has: with fixed shares (i mod depth) the
        // worker holding 0 would also own 4, 8, ... and this would never end.
        let count = 16
        let othersDone = DispatchSemaphore(value: 0)
        let remaining = Atomic<Int>(count - 1)
        let waited = Atomic<Bool>(true)
        try concurrentlyForEach(count, depth: 4) { _, index in
            if index == 0 {
                if othersDone.wait(timeout: .now() + 20) == .timedOut { waited.store(false, ordering: .relaxed) }
            } else if remaining.subtract(1, ordering: .relaxed).newValue == 0 {
                othersDone.signal()
            }
        }
        XCTAssertTrue(waited.load(ordering: .relaxed), "the other indices waited behind the slow one")
    }

    func testTheFirstErrorIsRethrownAfterTheWorkersStop() {
        struct Refused: Error, Equatable { let index: Int }
        let ran = Atomic<Int>(0)
        XCTAssertThrowsError(
            try concurrentlyForEach(1000, depth: 4) { _, index in
                ran.add(1, ordering: .relaxed)
                if index == 10 { throw Refused(index: index) }
                // Items that take a moment, as block requests do: with empty ones the other
                // workers could finish all 1000 while the thrower waits for a core on a busy
                // machine, before it publishes its error.
                usleep(1_000)
            }
        ) { XCTAssertEqual($0 as? Refused, Refused(index: 10)) }
        XCTAssertLessThan(ran.load(ordering: .relaxed), 1000, "the workers went on after the error")
    }
}
