import XCTest

@testable import HiFCCore

final class FlashSlotMapTests: XCTestCase {
    private func location(segment: Int, offset: Int64, generation: UInt64) -> FlashSlotLocation {
        FlashSlotLocation(path: 0, segment: segment, offset: offset, length: 100, generation: generation, checksum: 1)
    }

    func testInsertReturnsTheReplacedSlotAsDead() {
        var map = FlashSlotMap()
        let key = BlockKey.content(high: 1, low: 2)
        XCTAssertNil(map.insert(key, at: location(segment: 0, offset: 0, generation: 1)))
        let old = map.insert(key, at: location(segment: 1, offset: 4096, generation: 2))
        XCTAssertEqual(old?.generation, 1)
        XCTAssertEqual(map[key]?.generation, 2)
    }

    func testAnOlderGenerationNeverReplacesANewerOne() {
        var map = FlashSlotMap()
        let key = BlockKey.sequence(3, block: 0)
        map.insert(key, at: location(segment: 1, offset: 0, generation: 9))
        let dead = map.insert(key, at: location(segment: 0, offset: 0, generation: 4))
        XCTAssertEqual(dead?.generation, 4, "the older copy is the dead one")
        XCTAssertEqual(map[key]?.generation, 9)
    }

    func testReplaceOnlyMovesASlotThatWasNotOverwrittenMeanwhile() {
        var map = FlashSlotMap()
        let key = BlockKey.content(high: 5, low: 5)
        let original = location(segment: 0, offset: 0, generation: 1)
        map.insert(key, at: original)
        XCTAssertTrue(map.replace(key, expecting: original, with: location(segment: 2, offset: 0, generation: 1)))
        XCTAssertFalse(map.replace(key, expecting: original, with: location(segment: 3, offset: 0, generation: 1)))
        XCTAssertEqual(map[key]?.segment, 2)
    }

    func testEntriesOfASegmentComeInOffsetOrder() {
        var map = FlashSlotMap()
        map.insert(.sequence(1, block: 1), at: location(segment: 4, offset: 8192, generation: 1))
        map.insert(.sequence(1, block: 0), at: location(segment: 4, offset: 0, generation: 2))
        map.insert(.sequence(1, block: 2), at: location(segment: 5, offset: 0, generation: 3))
        XCTAssertEqual(map.entries(inPath: 0, segment: 4).map(\.key), [.sequence(1, block: 0), .sequence(1, block: 1)])
        XCTAssertEqual(map.remove(.sequence(1, block: 2))?.segment, 5)
        XCTAssertEqual(map.count, 2)
    }
}
