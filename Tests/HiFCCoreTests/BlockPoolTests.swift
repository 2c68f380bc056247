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
}
