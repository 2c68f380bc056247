import XCTest

@testable import HiFCCore

final class BlockPoolTests: XCTestCase {
    func testAllocationIsAllOrNothing() {
        var pool = BlockPool(capacity: 4)
        XCTAssertEqual(pool.allocate(3)?.count, 3)
        XCTAssertNil(pool.allocate(2))
        XCTAssertEqual(pool.freeCount, 1)
        XCTAssertEqual(pool.utilization, 0.75)
    }

    func testBlockReturnsToTheFreeBlocksOnlyWhenTheLastOwnerReleases() {
        var pool = BlockPool(capacity: 2)
        let blocks = pool.allocate(1)!
        let hash = PrefixHash.root(namespace: SchedulerTests.namespace).appending([1])
        pool.commit(blocks[0], content: hash)
        pool.retain(blocks)
        XCTAssertEqual(pool.refCount(blocks[0]), 2)
        pool.release(blocks)
        XCTAssertEqual(pool.freeCount, 1)
        pool.release(blocks)
        XCTAssertEqual(pool.freeCount, 2)
        XCTAssertEqual(pool.refCount(blocks[0]), 0)
        XCTAssertEqual(pool.block(holding: hash), blocks[0], "a freed full block keeps its content")
    }

    func testDuplicateContentStaysPrivate() {
        var pool = BlockPool(capacity: 2)
        let blocks = pool.allocate(2)!
        let hash = PrefixHash.root(namespace: SchedulerTests.namespace).appending([1])
        XCTAssertTrue(pool.commit(blocks[0], content: hash))
        XCTAssertFalse(pool.commit(blocks[1], content: hash))
        pool.release(blocks)
        XCTAssertEqual(pool.cachedCount, 1)
        XCTAssertEqual(pool.block(holding: hash), blocks[0])
    }

    func testCachedBlocksAreReusedLeastRecentlyFreedFirstSkippingPinnedAndTakenBack() {
        var pool = BlockPool(capacity: 5)
        let blocks = pool.allocate(5)!
        let root = PrefixHash.root(namespace: SchedulerTests.namespace)
        for (i, block) in blocks.enumerated() { pool.commit(block, content: root.appending([i])) }
        // Freed in the order 3, 0, 4, 1, 2: that is the reuse order.
        pool.release([blocks[3], blocks[0], blocks[4], blocks[1], blocks[2]])
        XCTAssertEqual(pool.nextEvictions(limit: 5), [blocks[3], blocks[0], blocks[4], blocks[1], blocks[2]])
        pool.pin(blocks[3])
        pool.retain([blocks[4]])  // a prefix hit takes it back from the middle
        XCTAssertEqual(pool.nextEvictions(limit: 5), [blocks[0], blocks[1], blocks[2]])
        XCTAssertEqual(pool.allocate(2), [blocks[0], blocks[1]], "the pinned oldest block is skipped")
        XCTAssertEqual(pool.evictions, 2)
        XCTAssertNil(pool.block(holding: root.appending([0])), "a reused block forgets its content")
        pool.unpin(blocks[3])
        XCTAssertEqual(pool.allocate(2), [blocks[3], blocks[2]])
        XCTAssertEqual(pool.freeCount, 0)
    }

    func testLRUListRemovesFromAnyPlaceAndKeepsTheOrder() {
        var list = BlockLRUList(capacity: 8)
        for block in [5, 1, 7, 0, 3] { list.append(block) }
        XCTAssertTrue(list.remove(7))
        XCTAssertFalse(list.remove(7))
        XCTAssertTrue(list.remove(5))
        XCTAssertTrue(list.remove(3))
        XCTAssertEqual(Array(list), [1, 0])
        XCTAssertEqual(list.first, 1)
        XCTAssertEqual(list.member(after: 1), 0)
        XCTAssertNil(list.member(after: 0))
        list.append(5)
        XCTAssertEqual(Array(list), [1, 0, 5])
        XCTAssertEqual(list.count, 3)
        XCTAssertTrue(list.remove(1) && list.remove(0) && list.remove(5))
        XCTAssertTrue(list.isEmpty)
        XCTAssertNil(list.first)
        XCTAssertEqual(Array(list), [])
    }

    func testKeyLRUListKeepsUseOrderAcrossRemovalsAndReusedSlots() {
        var list = KeyLRUList<String>()
        for key in ["a", "b", "c", "d"] { list.append(key) }
        list.append("b")  // already there: keeps its place
        XCTAssertEqual(list.ordered, ["a", "b", "c", "d"])
        XCTAssertTrue(list.remove("b"))
        list.append("b")  // a touch: removed and appended again
        XCTAssertEqual(list.removeFirst(), "a")
        list.append("e")  // takes a freed slot
        XCTAssertEqual(list.ordered, ["c", "d", "b", "e"])
        XCTAssertEqual(list.count, 4)
        for key in (0..<100).map(String.init) { list.append(key) }
        XCTAssertEqual(list.count, 104)
        XCTAssertEqual(list.first, "c")
        list.removeAll()
        XCTAssertNil(list.removeFirst())
        XCTAssertEqual(list.count, 0)
    }
}
