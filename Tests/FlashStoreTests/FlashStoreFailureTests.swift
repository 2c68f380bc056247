import Foundation
import HiFCCore
import Logging
import XCTest

@testable import FlashStore

final class FlashStoreFailureTests: XCTestCase {
    func testAFlippedPayloadByteOnDiskIsAChecksumMiss() async throws {
        try await withScratchStore { store, dir in
            let key = BlockKey.content(high: 2, low: 2)
            try await put(store, [(key, expectedPayload(key, length: 10_000))])
            let locator = try XCTUnwrap(store.locate(key))
            try flipByte(in: locator.regionFile, at: locator.payloadOffset + 1234)
            let (result, _) = await getBytes(store, key, capacity: 10_000)
            guard case .miss(.checksumMismatch) = result else { return XCTFail("expected a checksum miss, got \(result)") }
            XCTAssertEqual(store.stats.corruptOrFailedReads, 1)
        }
    }

    func testAFlippedHeaderByteIsAHeaderMiss() async throws {
        try await withScratchStore { store, dir in
            let key = BlockKey.content(high: 2, low: 3)
            try await put(store, [(key, expectedPayload(key, length: 10_000))])
            let locator = try XCTUnwrap(store.locate(key))
            try flipByte(in: locator.regionFile, at: locator.payloadOffset - 4096 + 10)
            let (result, _) = await getBytes(store, key, capacity: 10_000)
            guard case .miss(.headerMismatch) = result else { return XCTFail("expected a header miss, got \(result)") }
        }
    }

    func testInjectedCorruptionAndReadErrorsAreMissesWithReasons() async throws {
        let faults = ScriptedFaults()
        try await withScratchStore(faults: faults) { store, dir in
            let key = BlockKey.sequence(1, block: 1)
            try await put(store, [(key, expectedPayload(key, length: 5000))])
            faults.corruptReads(true)
            let (corrupt, _) = await getBytes(store, key, capacity: 5000)
            guard case .miss(.checksumMismatch) = corrupt else { return XCTFail("got \(corrupt)") }
            faults.corruptReads(false)
            faults.failReads(EIO)
            let (failed, _) = await getBytes(store, key, capacity: 5000)
            guard case .miss(.ioError(let why)) = failed else { return XCTFail("got \(failed)") }
            XCTAssertTrue(why.contains(FlashStoreConfiguration.regionFileName), why)
            faults.failReads(nil)
            let (healed, got) = await getBytes(store, key, capacity: 5000)
            XCTAssertTrue(healed.isHit)
            XCTAssertEqual(got, expectedPayload(key, length: 5000))
        }
    }

    func testENOSPCAndEIOOnWriteNameThePathAndKeepEarlierBlocks() async throws {
        let faults = ScriptedFaults()
        try await withScratchStore(faults: faults) { store, dir in
            let key = BlockKey.content(high: 8, low: 8)
            try await put(store, [(key, expectedPayload(key, length: 70_000))])
            for code in [ENOSPC, EIO] {
                faults.failWrites(code)
                do {
                    try await put(store, [(key, [9, 9, 9]), (.content(high: 8, low: 9), [1])])
                    XCTFail("the write must fail")
                } catch let error as FlashStoreError {
                    XCTAssertTrue(error.description.contains(dir), error.description)
                    XCTAssertTrue(error.description.contains(String(cString: strerror(code))), error.description)
                }
            }
            faults.failWrites(nil)
            let (result, got) = await getBytes(store, key, capacity: 70_000)
            XCTAssertEqual(result, .hit(length: 70_000), "the failed batch did not replace the stored block")
            XCTAssertEqual(got, expectedPayload(key, length: 70_000))
            XCTAssertFalse(store.contains(.content(high: 8, low: 9)))
            XCTAssertEqual(store.stats.paths[0].liveSlots, 1, "the failed slots were released")
        }
    }

    func testAFullRegionIsAClearErrorAndLosesNothing() async throws {
        let capacity = ByteSize(Int64(FlashLayout.superblockAreaSize + 2 << 20))
        try await withScratchStore(configuration: { testConfiguration([$0], capacity: capacity, segment: .mib(1)) }) { store, dir in
            let kept = (0..<3).map { BlockKey.content(high: 1, low: UInt64($0)) }
            try await put(store, kept.map { ($0, expectedPayload($0, length: 500_000)) })
            do {
                try await put(store, [(.content(high: 2, low: 0), expectedPayload(.content(high: 2, low: 0), length: 900_000))])
                XCTFail("the region cannot hold it")
            } catch let error as FlashStoreError {
                guard case .regionFull = error else { return XCTFail("\(error)") }
                XCTAssertTrue(error.description.contains(dir), error.description)
            }
            do {
                try await put(store, [(.content(high: 2, low: 1), [UInt8](repeating: 1, count: 2 << 20))])
                XCTFail("a block larger than a segment")
            } catch let error as FlashStoreError {
                guard case .blockTooLarge = error else { return XCTFail("\(error)") }
            }
            for key in kept {
                let (_, got) = await getBytes(store, key, capacity: 500_000)
                XCTAssertEqual(got, expectedPayload(key, length: 500_000))
            }
        }
    }

    func testBadPathsAndSettingsFailWithTheirCause() throws {
        XCTAssertThrowsError(try FlashStore(configuration: testConfiguration([]))) {
            XCTAssertEqual($0 as? FlashStoreError, .noPaths)
        }
        XCTAssertThrowsError(try FlashStore(configuration: testConfiguration(["/nonexistent/hifc"]))) {
            XCTAssertEqual($0 as? FlashStoreError, .missingPath("/nonexistent/hifc"))
            XCTAssertTrue("\($0)".contains("/nonexistent/hifc"))
        }
        let dir = try makeFlashDirectory()
        defer { removeFlashDirectory(dir) }
        let file = dir + "/plain"
        _ = FileManager.default.createFile(atPath: file, contents: Data([1]))
        XCTAssertThrowsError(try FlashStore(configuration: testConfiguration([file]))) {
            XCTAssertEqual($0 as? FlashStoreError, .notADirectoryOrDevice(file))
        }
        XCTAssertThrowsError(try FlashStore(configuration: testConfiguration([dir], capacity: ByteSize(1 << 60)))) {
            guard case .insufficientSpace(let path, _, _)? = $0 as? FlashStoreError else { return XCTFail("\($0)") }
            XCTAssertTrue(path.hasPrefix(dir))
        }
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: dir + "/" + FlashStoreConfiguration.regionFileName),
            "a region that could not be preallocated is not left behind")
        XCTAssertThrowsError(try FlashStore(configuration: testConfiguration([dir], segment: ByteSize(5000)))) {
            guard case .badGeometry? = $0 as? FlashStoreError else { return XCTFail("\($0)") }
        }
    }

    func testReopeningWithAnotherCapacityIsRefusedAndTheRegionKept() async throws {
        let dir = try makeFlashDirectory()
        defer { removeFlashDirectory(dir) }
        let key = BlockKey.content(high: 4, low: 4)
        do {
            let store = try FlashStore(configuration: testConfiguration([dir]))
            try await put(store, [(key, [1, 2, 3])])
            store.close()
        }
        XCTAssertThrowsError(try FlashStore(configuration: testConfiguration([dir], capacity: .mib(32)))) {
            guard case .regionMismatch? = $0 as? FlashStoreError else { return XCTFail("\($0)") }
        }
        let store = try FlashStore(configuration: testConfiguration([dir]))
        defer { store.close() }
        let (_, got) = await getBytes(store, key, capacity: 3)
        XCTAssertEqual(got, [1, 2, 3])
    }

    func testBothSuperblockCopiesDamagedIsALoggedCountedRebuildNeverASilentReset() async throws {
        let dir = try makeFlashDirectory()
        defer { removeFlashDirectory(dir) }
        let key = BlockKey.content(high: 5, low: 5)
        do {
            let store = try FlashStore(configuration: testConfiguration([dir]))
            try await put(store, [(key, [1, 2, 3])])
            store.close()
        }
        let file = dir + "/" + FlashStoreConfiguration.regionFileName
        for copy in RegionSuperblock.copyOffsets { try flipByte(in: file, at: copy + 20) }
        XCTAssertThrowsError(try FlashStore.existingGeometry(at: dir), "inspect must not call a damaged region absent") {
            XCTAssertEqual($0 as? FlashStoreError, .corruptSuperblocks(path: file))
            XCTAssertTrue("\($0)".contains(file))
        }
        let logs = LogLines()
        let store = try FlashStore(configuration: testConfiguration([dir]), logger: Logger(label: "test") { _ in logs })
        defer { store.close() }
        XCTAssertEqual(store.stats.recovery.regionsRebuilt, 1)
        XCTAssertEqual(store.stats.recovery.regionsCreated, 0)
        XCTAssertTrue(logs.lines.contains { $0.contains(file) && $0.contains("both superblock copies are damaged") }, "\(logs.lines)")
        let (result, _) = await getBytes(store, key, capacity: 3)
        XCTAssertEqual(result, .miss(.absent), "the region started afresh")
        XCTAssertNotNil(try FlashStore.existingGeometry(at: dir), "and has valid superblocks again")
    }

    func testARegionWhoseSuperblocksWereNeverWrittenIsNewNotDamaged() throws {
        let dir = try makeFlashDirectory()
        defer { removeFlashDirectory(dir) }
        // A first start killed between creating the file and writing its first superblock.
        let file = dir + "/" + FlashStoreConfiguration.regionFileName
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data(count: 1 << 20)))
        XCTAssertNil(try FlashStore.existingGeometry(at: dir))
        let store = try FlashStore(configuration: testConfiguration([dir]))
        defer { store.close() }
        XCTAssertEqual(store.stats.recovery.regionsCreated, 1)
        XCTAssertEqual(store.stats.recovery.regionsRebuilt, 0)
    }

    func testASecondWriterOfARegionIsRefusedNamingTheHolder() throws {
        let dir = try makeFlashDirectory()
        defer { removeFlashDirectory(dir) }
        let file = dir + "/" + FlashStoreConfiguration.regionFileName
        let first = try FlashStore(configuration: testConfiguration([dir]))
        XCTAssertThrowsError(try FlashStore(configuration: testConfiguration([dir]))) {
            guard case .regionInUse(let path, let holder)? = $0 as? FlashStoreError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, file)
            XCTAssertTrue(holder?.contains("pid \(getpid())") == true, "\(String(describing: holder))")
            XCTAssertTrue("\($0)".contains(file))
        }
        XCTAssertNotNil(try FlashStore.existingGeometry(at: dir), "reading the region needs no lock")
        first.close()
        XCTAssertFalse(FileManager.default.fileExists(atPath: file + ".lock"), "the holder file goes with the lock")
        let second = try FlashStore(configuration: testConfiguration([dir]))
        second.close()
    }

    func testAFileSystemThatRefusesDirectIOIsNamed() throws {
        // tmpfs refused O_DIRECT before Linux 6.6; newer kernels accept it, and then there is
        // nothing to test here.
        let shm = "/dev/shm/hifc-flash-test-\(UUID().uuidString.prefix(8))"
        guard (try? FileManager.default.createDirectory(atPath: shm, withIntermediateDirectories: true)) != nil else {
            throw XCTSkip("no /dev/shm")
        }
        defer { removeFlashDirectory(shm) }
        do {
            let store = try FlashStore(configuration: testConfiguration([shm], capacity: .mib(8), segment: .mib(1)))
            store.close()
            throw XCTSkip("this kernel's tmpfs accepts O_DIRECT")
        } catch let error as FlashStoreError {
            guard case .directIONotSupported(let path, _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(path.hasPrefix(shm))
            XCTAssertTrue(error.description.contains("O_DIRECT"))
        }
    }

    private func flipByte(in file: String, at offset: Int64) throws {
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: file))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        let byte = try XCTUnwrap(handle.readData(ofLength: 1).first)
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: Data([byte ^ 0x5A]))
        try handle.synchronize()
    }
}

/// A log handler that keeps the lines it is given, for checking what a store logged.
private final class LogLines: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var held: [String] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lock.lock()
        held.append("\(event.level) \(event.message)")
        lock.unlock()
    }

    var lines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return held
    }
}
