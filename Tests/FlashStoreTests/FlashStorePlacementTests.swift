import Foundation
import HiFCCore
import XCTest

@testable import FlashStore

/// Several paths in one store: swarm placement's spreading, extra copies and reads; and several
/// stores (the replicas of a data-parallel server) sharing one directory.
final class FlashStorePlacementTests: XCTestCase {
    private let length = 64 << 10

    /// A store over two scratch paths under swarm placement; `prepare` first runs on a store of
    /// the same paths under affinity placement (everything on the first path).
    private func withSwarmStore(prepare: (FlashStore) async throws -> Void = { _ in }, _ body: (FlashStore) async throws -> Void) async throws {
        let dirs = [try makeFlashDirectory("swarm-a"), try makeFlashDirectory("swarm-b")]
        defer { dirs.forEach(removeFlashDirectory) }
        let before = try FlashStore(configuration: testConfiguration(dirs, placement: .affinity))
        try await prepare(before)
        before.close()
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

    /// Reads `keys` in one batch; returns each one's bytes (empty on a miss).
    private func readBatch(_ store: FlashStore, _ keys: [BlockKey]) async -> [[UInt8]] {
        let buffers = keys.map { _ in AlignedBuffer(count: length) }
        let results = await store.get(keys, into: buffers.map { FlashReadTarget($0.bytes) })
        return zip(results, buffers).map { result, buffer in result.isHit ? Array(buffer.bytes[0..<length]) : [] }
    }

    func testSwarmSpreadsANewBatchOverThePaths() async throws {
        try await withSwarmStore { store in
            let keys = (0..<4).map { BlockKey.content(high: 3, low: UInt64($0)) }
            try await put(store, keys.map { ($0, expectedPayload($0, length: length)) })
            XCTAssertEqual(store.stats.paths.map(\.liveSlots), [2, 2], "a batch of four lands two per path")
        }
    }

    func testACrowdedPrefixReadTwiceIsCopiedToTheIdlePathAndItsReadsThenSpread() async throws {
        let keys = (0..<4).map { BlockKey.content(high: 4, low: UInt64($0)) }
        try await withSwarmStore(prepare: { try await put($0, keys.map { ($0, expectedPayload($0, length: length)) }) }) { store in
            XCTAssertEqual(store.stats.paths.map(\.liveSlots), [4, 0], "written under affinity: all on the first path")
            for _ in 0..<2 { _ = await readBatch(store, keys) }
            try await eventually({ store.copyStats.copies == 2 }, "two blocks should be copied to the idle path: \(store.copyStats)")
            let before = store.copyStats.bytesReadPerPath
            let read = await readBatch(store, keys)
            XCTAssertEqual(read, keys.map { expectedPayload($0, length: length) }, "copies and primaries hold the right bytes")
            let after = store.copyStats.bytesReadPerPath
            XCTAssertEqual(zip(after, before).map { $0 - $1 }, [2, 2].map { Int64($0 * FlashLayout.slotFootprint(payloadLength: length)) })

            // Replacing a block drops its copy; the new bytes come back. Deleting drops the other.
            let replacement = [UInt8](repeating: 0xAB, count: length)
            let copied = [keys[0], keys[1]]  // the first blocks the busy path served
            try await put(store, [(copied[0], replacement)])
            XCTAssertEqual(store.copyStats.copies, 1)
            let replaced = await readBatch(store, [copied[0]])
            XCTAssertEqual(replaced, [replacement])
            store.delete([copied[1]])
            XCTAssertEqual(store.copyStats.copies, 0)
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
