import Foundation
import HiFCCore
import XCTest

@testable import FlashStore

final class FlashStoreRoundTripTests: XCTestCase {
    private let sizes = [0, 1, 100, 4095, 4096, 4097, 65_539, 1 << 20, 3 * (1 << 20) + 5]

    func testRandomPayloadsOfManySizesComeBackExactly() async throws {
        try await withScratchStore { store, dir in
            let blocks = sizes.enumerated().map { i, n in
                (BlockKey.content(high: 7, low: UInt64(i)), expectedPayload(.content(high: 7, low: UInt64(i)), length: n))
            }
            try await put(store, blocks)
            for (key, bytes) in blocks {
                let (result, got) = await getBytes(store, key, capacity: bytes.count + 3)
                XCTAssertEqual(result, .hit(length: bytes.count), "\(key)")
                XCTAssertEqual(got, bytes, "\(key)")
            }
            let (missing, _) = await getBytes(store, .content(high: 9, low: 9), capacity: 10)
            XCTAssertEqual(missing, .miss(.absent))
            let (small, _) = await getBytes(store, blocks[7].0, capacity: 10)
            XCTAssertEqual(small, .miss(.bufferTooSmall(needed: 1 << 20, given: 10)))
        }
    }

    func testAlignedBuffersRoundTripWithoutStaging() async throws {
        try await withScratchStore { store, dir in
            let source = AlignedBuffer(count: 1 << 20)
            let sink = AlignedBuffer(count: 1 << 20)
            let key = BlockKey.sequence(1, block: 0)
            source.bytes.copyBytes(from: expectedPayload(key, length: 1 << 20))
            try await store.put([FlashPutItem(key: key, bytes: UnsafeRawBufferPointer(source.bytes))])
            let result = await store.get([key], into: [FlashReadTarget(sink.bytes)])
            XCTAssertEqual(result, [.hit(length: 1 << 20)])
            XCTAssertTrue(sink.bytes.elementsEqual(source.bytes))
        }
    }

    func testABatchIsWrittenSequentiallyWithLowWriteAmplification() async throws {
        try await withScratchStore { store, dir in
            try await put(store, (0..<8).map { (BlockKey.sequence(2, block: $0), expectedPayload(.sequence(2, block: $0), length: 1 << 20)) })
            let stats = store.stats
            XCTAssertGreaterThanOrEqual(stats.sequentialFraction, 0.99)
            XCTAssertLessThan(try XCTUnwrap(stats.writeAmplification), 1.01)
            XCTAssertEqual(stats.liveSlots, 8)
            XCTAssertGreaterThan(stats.paths[0].bytesWrittenSinceCreation, 8 << 20)
            XCTAssertNotNil(stats.paths[0].lifetimeYears)
        }
    }

    func testWritesBeyondTheDailyBudgetAreReported() async throws {
        let config = { (dir: String) -> FlashStoreConfiguration in
            var c = testConfiguration([dir])
            c.dailyWriteBudget = .mib(1)
            return c
        }
        try await withScratchStore(configuration: config) { store, _ in
            try await put(store, [(.sequence(9, block: 0), [UInt8](repeating: 7, count: 512 << 10))])
            XCTAssertFalse(store.stats.paths[0].overDailyBudget)
            try await put(store, [(.sequence(9, block: 1), [UInt8](repeating: 7, count: 600 << 10))])
            XCTAssertTrue(store.stats.paths[0].overDailyBudget)
            XCTAssertGreaterThan(store.stats.paths[0].bytesWrittenToday, 1 << 20)
        }
    }

    func testAPutReplacesAndADeleteRemoves() async throws {
        try await withScratchStore { store, dir in
            let key = BlockKey.content(high: 1, low: 1)
            try await put(store, [(key, [1, 2, 3])])
            try await put(store, [(key, [4, 5, 6, 7])])
            let (_, got) = await getBytes(store, key, capacity: 16)
            XCTAssertEqual(got, [4, 5, 6, 7])
            store.delete([key])
            XCTAssertFalse(store.contains(key))
            let (result, _) = await getBytes(store, key, capacity: 16)
            XCTAssertEqual(result, .miss(.absent))
            XCTAssertEqual(store.stats.paths[0].liveBytes, 0, "both slots are dead")
        }
    }

    func testAfterRestartContentBlocksAreFoundAndSequenceBlocksReclaimed() async throws {
        let dir = try makeFlashDirectory()
        defer { removeFlashDirectory(dir) }
        let content = (0..<5).map { BlockKey.content(high: 3, low: UInt64($0)) }
        let swapped = (0..<5).map { BlockKey.sequence(11, block: $0) }
        do {
            let store = try FlashStore(configuration: testConfiguration([dir]))
            try await put(store, (content + swapped).map { ($0, expectedPayload($0, length: 300_000)) })
            try await put(store, [(content[0], expectedPayload(content[0], length: 5000))])  // a newer copy
            store.close()
        }
        let store = try FlashStore(configuration: testConfiguration([dir]))
        defer { store.close() }
        let recovery = store.stats.recovery
        XCTAssertEqual(recovery.contentSlotsRecovered, 5)
        XCTAssertEqual(recovery.sequenceSlotsReclaimed, 5)
        XCTAssertEqual(recovery.supersededCopies, 1)
        XCTAssertFalse(store.contains(swapped[0]))
        let (result, got) = await getBytes(store, content[0], capacity: 300_000)
        XCTAssertEqual(result, .hit(length: 5000), "the newer generation wins")
        XCTAssertEqual(got, expectedPayload(content[0], length: 5000))
        for key in content.dropFirst() {
            let (_, bytes) = await getBytes(store, key, capacity: 300_000)
            XCTAssertEqual(bytes, expectedPayload(key, length: 300_000))
        }
        XCTAssertGreaterThan(store.stats.paths[0].bytesWrittenSinceCreation, 5 * 300_000 * 2, "wear persists across restarts")
    }

    func testStripeSpreadsABatchOverAllPathsAndAffinityKeepsItOnOne() async throws {
        let a = try makeFlashDirectory("a")
        let b = try makeFlashDirectory("b")
        defer {
            removeFlashDirectory(a)
            removeFlashDirectory(b)
        }
        let keys = (0..<6).map { BlockKey.sequence(4, block: $0) }
        do {
            let store = try FlashStore(configuration: testConfiguration([a, b], placement: .stripe))
            try await put(store, keys.map { ($0, expectedPayload($0, length: 10_000)) })
            XCTAssertEqual(store.stats.paths.map(\.liveSlots), [3, 3])
            for key in keys {
                let (_, got) = await getBytes(store, key, capacity: 10_000)
                XCTAssertEqual(got, expectedPayload(key, length: 10_000))
            }
            store.close()
        }
        var config = testConfiguration([a, b], placement: .affinity)
        config.gpuIndex = 3
        let store = try FlashStore(configuration: config)
        defer { store.close() }
        try await put(store, keys.map { ($0, expectedPayload($0, length: 10_000)) })
        XCTAssertEqual(store.stats.paths.map(\.liveSlots), [0, 6])
    }

    func testReservedSlotsWrittenByTheCallerAreCommittedAndLocated() async throws {
        try await withScratchStore { store, dir in
            let keys = [BlockKey.sequence(5, block: 0), .sequence(5, block: 1)]
            let reservation = try await store.reserve(keys.map { (key: $0, length: 8192 + 17) })
            XCTAssertFalse(store.contains(keys[0]), "nothing is mapped before commit")
            var checksums: [UInt32] = []
            for slot in reservation.slots {
                XCTAssertEqual(slot.payloadOffset % 4096, 0)
                let buffer = AlignedBuffer(count: slot.paddedLength)
                buffer.bytes.copyBytes(from: expectedPayload(slot.key, length: slot.length))
                XCTAssertEqual(pwrite(slot.fileDescriptor, buffer.bytes.baseAddress, slot.paddedLength, off_t(slot.payloadOffset)), slot.paddedLength)
                checksums.append(CRC32C.checksum(of: UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<slot.length])))
            }
            try await store.commit(reservation, checksums: checksums)
            do {
                try await store.commit(reservation, checksums: checksums)
                XCTFail("a reservation commits once")
            } catch let error as FlashStoreError {
                XCTAssertTrue(error.description.contains("already committed"))
            }
            for key in keys {
                let (result, got) = await getBytes(store, key, capacity: 9000)
                XCTAssertEqual(result, .hit(length: 8209))
                XCTAssertEqual(got, expectedPayload(key, length: 8209))
                let locator = try XCTUnwrap(store.locate(key))
                let buffer = AlignedBuffer(count: locator.paddedLength)
                XCTAssertEqual(
                    pread(locator.fileDescriptor, buffer.bytes.baseAddress, locator.paddedLength, off_t(locator.payloadOffset)), locator.paddedLength)
                XCTAssertEqual(CRC32C.checksum(of: UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<locator.length])), locator.checksum)
            }
            let aborted = try await store.reserve([(key: .sequence(6, block: 0), length: 4096)])
            store.abort(aborted)
            XCTAssertFalse(store.contains(.sequence(6, block: 0)))
        }
    }

    func testConcurrentPutsAndGetsFromManyTasksAllSucceed() async throws {
        try await withScratchStore(configuration: { testConfiguration([$0], capacity: .mib(128)) }) { store, dir in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<16 {
                    group.addTask {
                        for round in 0..<4 {
                            let keys = (0..<3).map { BlockKey.sequence(UInt64(task), block: round * 3 + $0) }
                            try await put(store, keys.map { ($0, expectedPayload($0, length: 50_000 + task * 100)) })
                            for key in keys {
                                let (result, got) = await getBytes(store, key, capacity: 60_000)
                                XCTAssertTrue(result.isHit, "\(key): \(result)")
                                XCTAssertEqual(got, expectedPayload(key, length: 50_000 + task * 100))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            XCTAssertEqual(store.stats.liveSlots, 16 * 12)
        }
    }

    func testCompactionMovesLiveSlotsSoTheRegionKeepsAcceptingWrites() async throws {
        let dir = try makeFlashDirectory()
        defer { removeFlashDirectory(dir) }
        // Six 1 MiB segments (30 slots); 12 rounds write 48 slots and keep 12.
        var config = testConfiguration([dir], capacity: ByteSize(Int64(FlashLayout.superblockAreaSize + 6 << 20)), segment: .mib(1))
        config.compactionThreshold = 0.5
        let store = try FlashStore(configuration: config)
        defer { store.close() }
        var kept: [BlockKey] = []
        for round in 0..<12 {
            let keys = (0..<4).map { BlockKey.content(high: UInt64(round), low: UInt64($0)) }
            try await put(store, keys.map { ($0, expectedPayload($0, length: 200_000)) })
            store.delete(Array(keys.dropFirst()))
            kept.append(keys[0])
        }
        XCTAssertGreaterThan(store.stats.compactedSlots, 0)
        for key in kept {
            let (result, got) = await getBytes(store, key, capacity: 200_000)
            XCTAssertEqual(result, .hit(length: 200_000), "\(key)")
            XCTAssertEqual(got, expectedPayload(key, length: 200_000))
        }
    }

    func testAOneSegmentRegionKeepsTakingSwapsOnceEarlierOnesAreReadBack() async throws {
        // --flash-capacity 2MiB --flash-segment-size 1MiB: the superblock area and one segment.
        try await withScratchStore(configuration: { testConfiguration([$0], capacity: .mib(2), segment: .mib(1)) }) { store, _ in
            // Swaps of 2 to 9 blocks of 28 KiB (32 KiB slots), each read back and deleted before the
            // next, as a sequence's blocks are: the segment's frontier passes its end many times.
            for round in 0..<24 {
                let keys = (0..<(2 + round % 8)).map { BlockKey.sequence(UInt64(round), block: $0) }
                try await put(store, keys.map { ($0, expectedPayload($0, length: 28 << 10)) })
                for key in keys {
                    let (result, got) = await getBytes(store, key, capacity: 28 << 10)
                    XCTAssertEqual(result, .hit(length: 28 << 10))
                    XCTAssertEqual(got, expectedPayload(key, length: 28 << 10))
                }
                store.delete(keys)
            }
            XCTAssertEqual(store.stats.liveSlots, 0)
        }
    }
}
