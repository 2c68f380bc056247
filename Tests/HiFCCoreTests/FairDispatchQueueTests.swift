import XCTest

@testable import HiFCCore

final class FairDispatchQueueTests: XCTestCase {
    private typealias Queue = FairDispatchQueue<String>

    private func limits(sequences: Int = 100, tokens: Int = 10_000, inEngine: Int = 4, backlog: Int = 4) -> Queue.Limits {
        .init(maxQueuedSequences: sequences, maxQueuedTokens: tokens, maxInEngine: inEngine, maxEngineBacklog: backlog)
    }

    private func items(_ prefix: String, _ count: Int, tokens: Int = 10) -> [(item: String, tokens: Int)] {
        (0..<count).map { ("\(prefix)\($0)", tokens) }
    }

    /// Hands out everything the engine may take now, reporting each started at once.
    private func drainStarted(_ queue: inout Queue) -> [String] {
        var out: [String] = []
        while let (group, item) = queue.next() {
            queue.started(group: group)
            out.append(item)
        }
        return out
    }

    func testANewcomerGetsTheNextPlaceAheadOfALargeRequest() {
        var queue = Queue(limits: limits(inEngine: 4))
        XCTAssertNil(queue.enqueue(group: 1, items: items("big", 50)))
        XCTAssertEqual(drainStarted(&queue), ["big0", "big1", "big2", "big3"], "the engine's share is full")
        XCTAssertNil(queue.enqueue(group: 2, items: items("small", 1)))
        XCTAssertNil(queue.next(), "nothing more until a sequence leaves")
        queue.finished(group: 1, started: true)
        XCTAssertEqual(queue.next()?.item, "small0", "the group with the fewest in the engine goes first")
    }

    func testGroupsAlternateWhenBothHaveWork() {
        var queue = Queue(limits: limits(inEngine: 1))
        XCTAssertNil(queue.enqueue(group: 1, items: items("a", 3)))
        XCTAssertNil(queue.enqueue(group: 2, items: items("b", 3)))
        var order: [String] = []
        for _ in 0..<6 {
            guard let (group, item) = queue.next() else { return XCTFail("a sequence should be ready") }
            order.append(item)
            queue.finished(group: group, started: false)
        }
        XCTAssertEqual(order, ["a0", "b0", "a1", "b1", "a2", "b2"])
        XCTAssertEqual(queue.activeGroups, 0)
    }

    func testSequencesWaitingInsideTheEngineAreBounded() {
        var queue = Queue(limits: limits(inEngine: 10, backlog: 2))
        XCTAssertNil(queue.enqueue(group: 1, items: items("a", 5)))
        XCTAssertNotNil(queue.next())
        XCTAssertNotNil(queue.next())
        XCTAssertNil(queue.next(), "two sequences wait in the engine already")
        queue.started(group: 1)
        queue.started(group: 1)
        XCTAssertNil(queue.next(engineBacklog: 2), "the engine reports two preempted")
        XCTAssertEqual(queue.next(engineBacklog: 1)?.item, "a2")
    }

    func testAFullQueueRefusesByCountAndByTokensButAnEmptyOneTakesAnything() {
        var queue = Queue(limits: limits(sequences: 4, tokens: 100, inEngine: 1))
        XCTAssertNil(queue.enqueue(group: 1, items: items("huge", 10, tokens: 50)), "an empty queue takes even an oversized group")
        XCTAssertEqual(queue.enqueue(group: 2, items: items("x", 1)), .sequences(queued: 10, asked: 1, limit: 4))
        var other = Queue(limits: limits(sequences: 10, tokens: 100, inEngine: 1))
        XCTAssertNil(other.enqueue(group: 1, items: items("a", 2, tokens: 40)))
        XCTAssertEqual(other.enqueue(group: 2, items: items("b", 1, tokens: 30)), .tokens(queued: 80, asked: 30, limit: 100))
        XCTAssertNil(other.enqueue(group: 3, items: items("c", 1, tokens: 20)))
        XCTAssertEqual(other.queuedTokens, 100)
    }

    func testRemovingAGroupDropsItsWaitingSequencesAtOnce() {
        var queue = Queue(limits: limits(inEngine: 2))
        XCTAssertNil(queue.enqueue(group: 1, items: items("big", 1000)))
        XCTAssertEqual(drainStarted(&queue).count, 2)
        XCTAssertEqual(queue.removeWaiting(of: 1), 998)
        XCTAssertEqual(queue.queuedSequences, 0)
        XCTAssertEqual(queue.queuedTokens, 0)
        XCTAssertNil(queue.next())
        queue.finished(group: 1, started: true)
        queue.finished(group: 1, started: true)
        XCTAssertEqual(queue.inEngine, 0)
        XCTAssertEqual(queue.activeGroups, 0)
    }
}
