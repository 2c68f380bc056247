import Foundation
import HiFCCore
import XCTest

@testable import FlashStore

/// Several instances on one shared flash directory: each writes its own region file and reads
/// the others' content blocks, checked like its own.
final class SharedDirectoryTests: XCTestCase {
    private func sharedConfiguration(_ directory: String) -> FlashStoreConfiguration {
        var configuration = testConfiguration([directory], capacity: .mib(16), segment: .mib(1))
        configuration.sharedDirectory = true
        return configuration
    }

    private func contentKeys(_ range: Range<UInt64>) -> [BlockKey] {
        range.map { BlockKey(kind: .content, high: 0xC0FFEE, low: $0) }
    }

    func testSecondInstanceWritesItsOwnRegionAndReadsTheFirstsBlocks() async throws {
        let directory = try makeFlashDirectory()
        defer { removeFlashDirectory(directory) }
        let first = try FlashStore(configuration: sharedConfiguration(directory))
        defer { first.close() }
        let early = contentKeys(0..<8)
        try await put(first, early.map { ($0, expectedPayload($0, length: 12_000)) })

        let second = try FlashStore(configuration: sharedConfiguration(directory))
        defer { second.close() }
        XCTAssertEqual(second.stats.paths[0].regionFile, directory + "/hifc-flash-2.region")
        XCTAssertEqual(Set(second.refreshSharedRegions().found), Set(early))
        for key in early {
            let (result, bytes) = await getBytes(second, key, capacity: 12_000)
            XCTAssertEqual(result, .hit(length: 12_000))
            XCTAssertEqual(bytes, expectedPayload(key, length: 12_000))
        }
        // What the first writes later is found by the next refresh, and nothing twice.
        let later = contentKeys(8..<12)
        try await put(first, later.map { ($0, expectedPayload($0, length: 5_000)) })
        XCTAssertEqual(Set(second.refreshSharedRegions().found), Set(later))
        XCTAssertEqual(second.refreshSharedRegions(), FlashSharedChange(found: [], gone: []))
        // The first reads the second's blocks the same way.
        let own = contentKeys(100..<103)
        try await put(second, own.map { ($0, expectedPayload($0, length: 4_096)) })
        XCTAssertEqual(Set(first.refreshSharedRegions().found), Set(own))
        let ownBytes = await getBytes(first, own[1], capacity: 4_096).1
        XCTAssertEqual(ownBytes, expectedPayload(own[1], length: 4_096))
        XCTAssertNotNil(second.locate(early[0]), "the cuFile path finds other instances' blocks too")
    }

    func testADamagedBlockOfAnotherInstanceIsAMissAndNotOfferedAgain() async throws {
        let directory = try makeFlashDirectory()
        defer { removeFlashDirectory(directory) }
        let first = try FlashStore(configuration: sharedConfiguration(directory))
        defer { first.close() }
        let keys = contentKeys(0..<2)
        try await put(first, keys.map { ($0, expectedPayload($0, length: 8_192)) })
        let second = try FlashStore(configuration: sharedConfiguration(directory))
        defer { second.close() }
        _ = second.refreshSharedRegions()

        // Flip a payload byte of the first key's slot behind the first instance's back.
        let location = try XCTUnwrap(first.locate(keys[0]))
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: directory + "/hifc-flash.region"))
        try handle.seek(toOffset: UInt64(location.payloadOffset + 100))
        let byte = try XCTUnwrap(handle.readData(ofLength: 1).first)
        try handle.seek(toOffset: UInt64(location.payloadOffset + 100))
        handle.write(Data([byte ^ 0xFF]))
        try handle.close()

        let (result, _) = await getBytes(second, keys[0], capacity: 8_192)
        guard case .miss(.checksumMismatch) = result else { return XCTFail("a flipped byte is a checksum miss, got \(result)") }
        XCTAssertEqual(second.sharedStats.failedReads, 1)
        XCTAssertEqual(second.refreshSharedRegions().found, [], "the damaged slot is not offered again")
        let intact = await getBytes(second, keys[1], capacity: 8_192).1
        XCTAssertEqual(intact, expectedPayload(keys[1], length: 8_192))
    }

    func testWithoutSharingASecondInstanceIsRefusedWithTheWayToShare() throws {
        let directory = try makeFlashDirectory()
        defer { removeFlashDirectory(directory) }
        let first = try FlashStore(configuration: testConfiguration([directory], capacity: .mib(16), segment: .mib(1)))
        defer { first.close() }
        XCTAssertThrowsError(try FlashStore(configuration: testConfiguration([directory], capacity: .mib(16), segment: .mib(1)))) {
            XCTAssertTrue("\($0)".contains("--flash-shared"), "\($0)")
        }
    }

    func testInspectCountsEveryInstancesPrefixBlocksPerNamespace() async throws {
        let directory = try makeFlashDirectory()
        defer { removeFlashDirectory(directory) }
        let first = try FlashStore(configuration: sharedConfiguration(directory))
        defer { first.close() }
        first.setContentNamespace(tag: 0xAB, summary: "model a")
        try await put(first, contentKeys(0..<3).map { ($0, expectedPayload($0, length: 4_096)) })
        first.setContentNamespace(tag: 0xCD, summary: "model b")
        try await put(first, contentKeys(3..<4).map { ($0, expectedPayload($0, length: 4_096)) })
        let second = try FlashStore(configuration: sharedConfiguration(directory))
        defer { second.close() }
        second.setContentNamespace(tag: 0xAB, summary: "model a")
        try await put(second, contentKeys(10..<12).map { ($0, expectedPayload($0, length: 4_096)) })

        let census = try FlashStore.prefixCensus(directory: directory)
        XCTAssertEqual(census.map { ($0.regionFile as NSString).lastPathComponent }, ["hifc-flash-2.region", "hifc-flash.region"])
        XCTAssertEqual(census[1].namespaces.map(\.tag), [0xAB, 0xCD])
        XCTAssertEqual(census[1].namespaces.map(\.blocks), [3, 1])
        XCTAssertEqual(census[1].namespaces.map(\.summary), ["model a", "model b"])
        XCTAssertEqual(census[0].namespaces.map(\.blocks), [2])
    }
}

/// The read-bandwidth measurement the engine's cost model starts from.
final class ReadProbeTests: XCTestCase {
    func testReadBandwidthIsMeasuredOnStoredBlocksOnlyWhenThereAreEnough() async throws {
        let directory = try makeFlashDirectory()
        defer { removeFlashDirectory(directory) }
        let store = try FlashStore(configuration: testConfiguration([directory], capacity: .mib(64), segment: .mib(4)))
        defer { store.close() }
        let keys = (0..<5).map { BlockKey(kind: .content, high: 7, low: UInt64($0)) }
        try await put(store, keys.prefix(1).map { ($0, expectedPayload($0, length: 1 << 20)) })
        XCTAssertNil(store.measureReadBandwidth(maxBytes: 8 << 20, minimumBytes: 4 << 20), "1 MiB is too little to judge")
        try await put(store, keys.dropFirst().map { ($0, expectedPayload($0, length: 1 << 20)) })
        let bandwidth = try XCTUnwrap(store.measureReadBandwidth(maxBytes: 8 << 20, minimumBytes: 4 << 20))
        XCTAssertGreaterThan(bandwidth, 0)
        XCTAssertEqual(store.stats.corruptOrFailedReads, 0)
    }
}
