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

    func testBlockReturnsToFreeListOnlyWhenLastOwnerReleases() {
        var pool = BlockPool(capacity: 2)
        let blocks = pool.allocate(1)!
        pool.retain(blocks)
        XCTAssertEqual(pool.refCount(blocks[0]), 2)
        pool.release(blocks)
        XCTAssertEqual(pool.freeCount, 1)
        pool.release(blocks)
        XCTAssertEqual(pool.freeCount, 2)
        XCTAssertEqual(pool.refCount(blocks[0]), 0)
    }

    func testBlockTableMapsTokensToSlots() {
        var table = BlockTable(blockTokens: 4)
        XCTAssertEqual(table.blocksMissing(forTokens: 9), 3)
        table.append([7, 2, 5])
        XCTAssertEqual(table.blocksMissing(forTokens: 9), 0)
        XCTAssertEqual(table.slot(of: 5).block, 2)
        XCTAssertEqual(table.slot(of: 5).offset, 1)
        XCTAssertEqual(table.removeAll(), [7, 2, 5])
        XCTAssertEqual(table.tokenCapacity, 0)
    }
}
