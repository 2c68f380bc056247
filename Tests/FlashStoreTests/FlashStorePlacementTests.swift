import Foundation
import HiFCCore
import XCTest

@testable import FlashStore

/// Several paths in one store: swarm placement's spreading, extra copies and reads; and several
/// stores (the replicas of a data-parallel server) sharing one directory.
final class FlashStorePlacementTests: XCTestCase {
    private let length = 64 << 10

    /// A store over two scratch paths under swarm placement.
    private func withSwarmStore(_ body: (FlashStore) async throws -> Void) async throws {
        let dirs = [try makeFlashDirectory("swarm-a"), try makeFlashDirectory("swarm-b")]
        defer { dirs.forEach(removeFlashDirectory) }
        var configuration = testConfiguration(dirs, placement: .swarm)
        configuration.replicationBudget = .mib(1)
        let store = try FlashStore(configuration: configuration)
        defer { store.close() }
        try await body(store)
    }

    /// Waits until `condition` holds: extra copies are written after `get` returns.
    private func eventually(_ condition: () -> Bool, _ message: @autoclosure () -> String) async throws {
        for _ in 0..<400 where !condition() { try await Task.sleep(for: .milliseconds(5)) }
        XCTAssertTrue(condition(), message())
    }

    func testSwarmSpreadsABatchOverThePathsAndCopiesAHotBlockThatStaysIntact() async throws {
        try await withSwarmStore { store in
            let keys = (0..<4).map { BlockKey.content(high: 3, low: UInt64($0)) }
            try await put(store, keys.map { ($0, expectedPayload($0, length: length)) })
            XCTAssertEqual(store.stats.paths.map(\.liveSlots), [2, 2], "a batch of four lands two per path")

            // Block 0, read again and again (a shared prefix), gets a copy on the other path.
            for _ in 0..<4 {
                let (result, bytes) = await getBytes(store, keys[0], capacity: length)
                XCTAssertEqual(result, .hit(length: length))
                XCTAssertEqual(bytes, expectedPayload(keys[0], length: length))
            }
            try await eventually({ store.copyStats.copies == 1 }, "no copy after four reads: \(store.copyStats)")
            // Two reads of it in one batch go to the two paths, and both copies hold the right bytes.
            let before = store.copyStats.bytesReadPerPath
            let buffers = [AlignedBuffer(count: length), AlignedBuffer(count: length)]
            let results = await store.get([keys[0], keys[0]], into: buffers.map { FlashReadTarget($0.bytes) })
            XCTAssertEqual(results, [.hit(length: length), .hit(length: length)])
            for buffer in buffers { XCTAssertEqual(Array(buffer.bytes), expectedPayload(keys[0], length: length)) }
            let after = store.copyStats.bytesReadPerPath
            XCTAssertTrue(zip(after, before).allSatisfy { $0 > $1 }, "both copies serve reads: \(before) -> \(after)")

            // Replacing the block drops its copy; the new bytes come back, from the only copy.
            let replacement = [UInt8](repeating: 0xAB, count: length)
            try await put(store, [(keys[0], replacement)])
            XCTAssertEqual(store.copyStats.copies, 0)
            let (_, bytes) = await getBytes(store, keys[0], capacity: length)
            XCTAssertEqual(bytes, replacement)
            store.delete([keys[0]])
            XCTAssertEqual(store.copyStats.copyBytes, 0)
        }
    }

    func testSwappedSequenceBlocksAreNeverCopied() async throws {
        try await withSwarmStore { store in
            let key = BlockKey.sequence(5, block: 0)
            try await put(store, [(key, expectedPayload(key, length: length))])
            for _ in 0..<8 { _ = await getBytes(store, key, capacity: length) }
            try await Task.sleep(for: .milliseconds(50))
            XCTAssertEqual(store.copyStats.copies, 0)
        }
    }

    func testStoresWithTheirOwnRegionNameShareADirectory() async throws {
        let dir = try makeFlashDirectory()
        defer { removeFlashDirectory(dir) }
        let stores = try (0..<2).map { replica in
            var configuration = testConfiguration([dir], capacity: .mib(16))
            configuration.regionName = "hifc-flash-\(replica).region"
            return try FlashStore(configuration: configuration)
        }
        defer { stores.forEach { $0.close() } }
        let key = BlockKey.sequence(1, block: 0)  // the same key in both: each replica numbers its own sequences
        for (n, store) in stores.enumerated() { try await put(store, [(key, [UInt8](repeating: UInt8(n + 1), count: length))]) }
        for (n, store) in stores.enumerated() {
            let (_, bytes) = await getBytes(store, key, capacity: length)
            XCTAssertEqual(bytes, [UInt8](repeating: UInt8(n + 1), count: length))
            XCTAssertEqual(store.stats.paths[0].regionFile, dir + "/hifc-flash-\(n).region")
        }
    }
}
