import FlashStore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The fallback when cuFile is missing or refuses the file: O_DIRECT `pwrite`/`pread` through
/// pinned host buffers (the fallback LMCache's GDS backend has). `depth` workers each own one
/// pinned block buffer and a copy stream, so the device copy of one block overlaps the disk I/O
/// of the others and the disk sees `depth` requests in flight.
public final class StagedBlockIO: BlockFileIO, @unchecked Sendable {
    // The buffers are shared by every call: `lock` lets one transfer use them at a time.
    public var path: String { "O_DIRECT staging ring (\(streams.count) x \(slotBytes >> 10) KiB pinned)" }
    let pool: DeviceBlockPool
    let fd: Int32
    let filePath: String
    private let staging: PinnedBuffer
    private let streams: [CUDAStream]
    private let slotBytes: Int
    private let lock = NSLock()

    /// `depth` pinned block buffers and copy streams for I/O on `fd` (opened with O_DIRECT).
    public init(pool: DeviceBlockPool, fd: Int32, filePath: String, device: CUDADevice, depth: Int = 8) throws {
        self.pool = pool
        self.fd = fd
        self.filePath = filePath
        slotBytes = pool.layout.blockStride
        // Pinned memory from the driver is page-aligned, as O_DIRECT requires.
        staging = try device.allocatePinned(slotBytes * max(1, depth))
        streams = try (0..<max(1, depth)).map { _ in try device.makeStream() }
    }

    private func slot(_ worker: Int) -> UnsafeMutableRawPointer { staging.pointer + worker * slotBytes }

    public func write(_ extents: [BlockFileExtent], after: CUDAEvent?) throws {
        lock.lock()
        defer { lock.unlock() }
        if let after { for s in streams { try s.wait(for: after) } }
        let bytes = pool.layout.blockBytes
        try concurrentlyForEach(extents.count, depth: streams.count) { w, i in
            try streams[w].copy(from: try pool.address(of: extents[i].block), to: slot(w), bytes: bytes)
            try streams[w].synchronize()
            try transfer(DirectIO.writeFully, "pwrite", slot(w), offset: extents[i].fileOffset)
        }
    }

    public func read(_ extents: [BlockFileExtent]) throws -> CUDAEvent? {
        lock.lock()
        defer { lock.unlock() }
        let bytes = pool.layout.blockBytes
        try concurrentlyForEach(extents.count, depth: streams.count) { w, i in
            // The buffer is free once the copy that last used it has finished.
            try streams[w].synchronize()
            try transfer(DirectIO.readFully, "pread", slot(w), offset: extents[i].fileOffset)
            try streams[w].copy(from: UnsafeRawPointer(slot(w)), to: try pool.address(of: extents[i].block), bytes: bytes)
        }
        for s in streams { try s.synchronize() }
        return nil
    }

    /// One whole block between `buffer` and the file at `offset`.
    private func transfer(_ call: (Int32, [iovec], Int64) -> Int32, _ name: String, _ buffer: UnsafeMutableRawPointer, offset: Int) throws {
        let code = call(fd, [iovec(iov_base: buffer, iov_len: slotBytes)], Int64(offset))
        if code != 0 {
            throw CUDAError.io(call: "\(name)(O_DIRECT, \(slotBytes) bytes at \(offset))", path: filePath, errno: code)
        }
    }
}
