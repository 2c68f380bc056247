import XCTest

@testable import HiFCCore

final class FlashSegmentAllocatorTests: XCTestCase {
    private let mib = 1 << 20

    private func allocator(segments: Int, segmentSize: Int = 1 << 20) throws -> FlashSegmentAllocator {
        FlashSegmentAllocator(
            geometry: try FlashRegionGeometry(
                capacity: Int64(FlashLayout.superblockAreaSize + segments * segmentSize), segmentSize: segmentSize))
    }

    func testABatchLandsContiguouslyInTheOpenSegment() throws {
        var a = try allocator(segments: 4)
        let placements = try XCTUnwrap(a.allocate(footprints: [8192, 4096, 16384]))
        XCTAssertEqual(placements.map(\.segment), [0, 0, 0])
        XCTAssertEqual(placements.map(\.offset), [1 << 20, (1 << 20) + 8192, (1 << 20) + 12288])
        let next = try XCTUnwrap(a.allocate(footprints: [4096]))
        XCTAssertEqual(next[0].offset, (1 << 20) + 28672, "appends continue at the frontier")
    }

    func testAFullSegmentClosesAndTheNextFreeOneOpensWithANewSequence() throws {
        var a = try allocator(segments: 3)
        let first = try XCTUnwrap(a.allocate(footprints: [mib - 4096]))
        let second = try XCTUnwrap(a.allocate(footprints: [8192]))
        XCTAssertEqual(second[0].segment, 1)
        XCTAssertGreaterThan(second[0].sequence, first[0].sequence)
        XCTAssertEqual(a.segments[0].state, .closed)
        XCTAssertEqual(a.segments[1].state, .open)
    }

    func testAllocationThatDoesNotFitChangesNothing() throws {
        var a = try allocator(segments: 2)
        XCTAssertNil(a.allocate(footprints: [mib, mib, 4096]))
        XCTAssertEqual(a.freeSegmentCount, 2)
        XCTAssertNil(a.allocate(footprints: [2 * mib]), "a slot larger than a segment never fits")
        XCTAssertNil(a.allocate(footprints: [100]), "footprints are page multiples")
    }

    func testASegmentIsReusedOnlyWhenAllItsSlotsAreDeadAndUnpinned() throws {
        var a = try allocator(segments: 2)
        let slots = try XCTUnwrap(a.allocate(footprints: [mib / 2, mib / 2]))
        _ = try XCTUnwrap(a.allocate(footprints: [4096]))  // closes segment 0
        a.release(segment: 0, footprint: mib / 2)
        XCTAssertEqual(a.segments[0].state, .closed, "one live slot remains")
        a.pin(segment: 0)
        a.release(segment: slots[1].segment, footprint: mib / 2)
        XCTAssertEqual(a.segments[0].state, .closed, "a pinned segment is not reused")
        a.unpin(segment: 0)
        XCTAssertEqual(a.segments[0].state, .free)
        XCTAssertEqual(a.freeSegmentCount, 1)
    }

    func testTheOpenSegmentIsNotFreedWhileAppending() throws {
        var a = try allocator(segments: 2)
        let slot = try XCTUnwrap(a.allocate(footprints: [4096]))
        a.release(segment: slot[0].segment, footprint: 4096)
        XCTAssertEqual(a.segments[0].state, .open)
        XCTAssertEqual(try XCTUnwrap(a.allocate(footprints: [4096]))[0].offset, slot[0].offset + 4096)
    }

    func testAOneSegmentRegionReusesItsSegmentOnceEverythingInItIsDead() throws {
        var a = try allocator(segments: 1)
        // Fill most of the segment, then let every slot die, as swaps that were read back do.
        let early = try XCTUnwrap(a.allocate(footprints: Array(repeating: mib / 8, count: 7)))
        for slot in early { a.release(segment: slot.segment, footprint: mib / 8) }
        XCTAssertEqual(a.liveBytes, 0)
        // A batch longer than the rest of the segment (its first slot fits there, its second does
        // not) starts the segment afresh.
        let batch = try XCTUnwrap(a.allocate(footprints: [mib / 16, mib / 4]))
        XCTAssertEqual(batch.map(\.offset), [1 << 20, (1 << 20) + Int64(mib / 16)])
        XCTAssertGreaterThan(batch[0].sequence, early[0].sequence, "a new life of the segment")
        // While something in it lives, a batch that does not fit is refused and nothing changes.
        let before = a
        XCTAssertNil(a.allocate(footprints: [mib / 2, mib / 4]))
        XCTAssertEqual(a.segments, before.segments)
        // A pinned dead segment (a read in flight) is not recycled under the reader.
        for (slot, footprint) in zip(batch, [mib / 16, mib / 4]) { a.release(segment: slot.segment, footprint: footprint) }
        a.pin(segment: 0)
        XCTAssertNil(a.allocate(footprints: [mib / 2, mib / 4]))
        a.unpin(segment: 0)
        XCTAssertNotNil(a.allocate(footprints: [mib / 2, mib / 4]))
    }

    func testADeadOpenSegmentIsRecycledWhenTheOtherSegmentsAreInUse() throws {
        var a = try allocator(segments: 2)
        let kept = try XCTUnwrap(a.allocate(footprints: [mib]))  // segment 0, full and live
        let passing = try XCTUnwrap(a.allocate(footprints: Array(repeating: mib / 4, count: 3)))  // segment 1
        for slot in passing { a.release(segment: slot.segment, footprint: mib / 4) }
        let batch = try XCTUnwrap(a.allocate(footprints: [mib / 8, mib / 2]))
        XCTAssertEqual(batch.map(\.segment), [1, 1])
        XCTAssertEqual(batch[0].offset, a.geometry.segmentStart(1), "from the segment's start")
        XCTAssertEqual(a.segments[kept[0].segment].liveSlots, 1, "the live segment is untouched")
    }

    func testCompactionPicksTheEmptiestClosedSegmentOnlyWhenFreeSegmentsRunShort() throws {
        var a = try allocator(segments: 4)
        let s0 = try XCTUnwrap(a.allocate(footprints: Array(repeating: mib / 4, count: 4)))
        let s1 = try XCTUnwrap(a.allocate(footprints: Array(repeating: mib / 4, count: 4)))
        _ = try XCTUnwrap(a.allocate(footprints: [4096]))
        for slot in s0.prefix(3) { a.release(segment: slot.segment, footprint: mib / 4) }  // 25% live
        a.release(segment: s1[0].segment, footprint: mib / 4)  // 75% live
        XCTAssertNil(a.compactionCandidate(threshold: 0.5, minimumFreeSegments: 1), "one free segment is enough")
        XCTAssertEqual(a.compactionCandidate(threshold: 0.5, minimumFreeSegments: 2), 0)
        XCTAssertNil(a.compactionCandidate(threshold: 0.2, minimumFreeSegments: 2), "25% live is above a 20% threshold")
    }

    func testRestoredSegmentsAreClosedAndSequencesContinueAfterThem() throws {
        var a = try allocator(segments: 3)
        a.restore(segment: 1, sequence: 41, frontier: 8192, liveSlots: 1, liveBytes: 8192)
        a.restore(segment: 2, sequence: 7, frontier: 4096, liveSlots: 0, liveBytes: 0)
        XCTAssertEqual(a.segments[1].state, .closed)
        XCTAssertEqual(a.segments[2].state, .free, "a segment with no live slot is free again")
        let next = try XCTUnwrap(a.allocate(footprints: [4096]))
        XCTAssertEqual(next[0].segment, 0)
        XCTAssertEqual(next[0].sequence, 42)
    }

    func testGeometryRejectsUnusableSizes() {
        XCTAssertThrowsError(try FlashRegionGeometry(capacity: 1 << 30, segmentSize: 1_000_000))
        XCTAssertThrowsError(try FlashRegionGeometry(capacity: 1 << 30, segmentSize: 4096))
        XCTAssertThrowsError(try FlashRegionGeometry(capacity: 1 << 20, segmentSize: 1 << 20)) {
            XCTAssertTrue("\($0)".contains("--flash-capacity"))
        }
        XCTAssertEqual(try FlashRegionGeometry(capacity: (1 << 20) + 3 * (1 << 20) + 5, segmentSize: 1 << 20).segmentCount, 3)
    }
}
