import Foundation
import HiFCCore
import XCTest

@testable import FlashStore

/// A scratch directory on a file system that takes O_DIRECT: the system temporary directory when
/// it does, else `.build-tmp` in the package (ignored by git); removed by `cleanUp`.
func makeFlashDirectory(_ name: String = #function) throws -> String {
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidates = [FileManager.default.temporaryDirectory, packageRoot.appendingPathComponent(".build-tmp")]
    for base in candidates {
        let dir = base.appendingPathComponent("hifc-flash-\(name.filter { $0.isLetter || $0.isNumber })-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let probe = dir.appendingPathComponent("probe").path
        let fd = open(probe, O_RDWR | O_CREAT | DirectIO.directFlag, 0o644)
        if fd >= 0 {
            close(fd)
            unlink(probe)
            return dir.path
        }
        try? FileManager.default.removeItem(at: dir)
    }
    throw XCTSkip("no scratch directory here supports O_DIRECT")
}

func removeFlashDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// A configuration of small segments for tests.
func testConfiguration(
    _ paths: [String], capacity: ByteSize = .mib(64), segment: ByteSize = .mib(4),
    placement: FlashPlacementPolicy = .stripe
) -> FlashStoreConfiguration {
    FlashStoreConfiguration(
        paths: paths, capacityPerPath: capacity, segmentSize: segment, placement: placement,
        enduranceTBW: ByteSize(6_000_000_000_000_000), queueDepth: 8)
}

/// Bytes that depend only on the key and the length, so a reader can tell right bytes from wrong.
func expectedPayload(_ key: BlockKey, length: Int) -> [UInt8] {
    var state = key.high &* 0x9E37_79B9_7F4A_7C15 ^ key.low &+ UInt64(length) &+ 1
    return (0..<length).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: state >> 56)
    }
}

/// Puts blocks from ordinary (unaligned) arrays.
func put(_ store: FlashStore, _ blocks: [(BlockKey, [UInt8])]) async throws {
    let buffers = blocks.map { $0.1 }
    try await withUnsafeByteArrays(buffers) { pointers in
        try await store.put(zip(blocks, pointers).map { FlashPutItem(key: $0.0.0, bytes: $0.1) })
    }
}

private func withUnsafeByteArrays<R>(_ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) async throws -> R) async throws -> R {
    let copies = arrays.map { bytes -> UnsafeMutableRawBufferPointer in
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        p.copyBytes(from: bytes)
        return UnsafeMutableRawBufferPointer(rebasing: p[0..<bytes.count])
    }
    defer { copies.forEach { UnsafeMutableRawBufferPointer(start: $0.baseAddress, count: 1).deallocate() } }
    return try await body(copies.map { UnsafeRawBufferPointer($0) })
}

/// Gets one key into a fresh buffer; the bytes on a hit.
func getBytes(_ store: FlashStore, _ key: BlockKey, capacity: Int) async -> (FlashReadResult, [UInt8]) {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(capacity, 1), alignment: 1)
    defer { buffer.deallocate() }
    let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<capacity])
    let result = await store.get([key], into: [FlashReadTarget(target)])[0]
    if case .hit(let n) = result { return (result, Array(target[0..<n])) }
    return (result, [])
}

/// Fails writes and reads with chosen errnos, and can corrupt reads.
final class ScriptedFaults: IOFaultInjector, @unchecked Sendable {
    private let lock = NSLock()
    private var writeErrno: Int32?
    private var readErrno: Int32?
    private var corrupt = false

    func failWrites(_ code: Int32?) {
        lock.lock()
        writeErrno = code
        lock.unlock()
    }
    func failReads(_ code: Int32?) {
        lock.lock()
        readErrno = code
        lock.unlock()
    }
    func corruptReads(_ on: Bool) {
        lock.lock()
        corrupt = on
        lock.unlock()
    }

    func faultBeforeWrite(path: String, offset: Int64, length: Int) -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        return writeErrno
    }
    func faultBeforeRead(path: String, offset: Int64, length: Int) -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        return readErrno
    }
    func corruptRead(path: String, offset: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return corrupt
    }
}

/// Opens a store on a fresh scratch directory, runs `body` with it, then closes the store and
/// removes the directory.
func withScratchStore(
    _ name: String = #function, faults: (any IOFaultInjector)? = nil,
    configuration: (String) -> FlashStoreConfiguration = { testConfiguration([$0]) },
    _ body: (FlashStore, String) async throws -> Void
) async throws {
    let dir = try makeFlashDirectory(name)
    defer { removeFlashDirectory(dir) }
    let store = try FlashStore(configuration: configuration(dir), faultInjector: faults)
    defer { store.close() }
    try await body(store, dir)
}
