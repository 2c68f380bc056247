import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The fallback when cuFile is missing or refuses the file: O_DIRECT `pread`/`pwrite` through a
/// small ring of pinned host buffers, with the device copies on a stream of their own, so the
/// copy of one block overlaps the disk I/O of the next (the fallback LMCache's GDS backend has).
public final class StagedBlockIO: BlockFileIO, @unchecked Sendable {
    // The ring is shared by every call: `lock` lets one transfer use it at a time.
    public var path: String { "O_DIRECT staging ring (\(ring.count) x \(slotBytes >> 10) KiB pinned)" }
    let pool: DeviceBlockPool
    let fd: Int32
    let filePath: String
    let stream: CUDAStream
    private let staging: PinnedBuffer
    private let ring: [CUDAEvent]
    private let slotBytes: Int
    private let lock = NSLock()

    /// A ring of `depth` pinned block buffers for I/O on `fd` (opened with O_DIRECT).
    public init(pool: DeviceBlockPool, fd: Int32, filePath: String, device: CUDADevice, depth: Int = 4) throws {
        self.pool = pool
        self.fd = fd
        self.filePath = filePath
        slotBytes = directIOLength(pool.layout.blockBytes)
        // Pinned memory from the driver is page-aligned, as O_DIRECT requires.
        staging = try device.allocatePinned(slotBytes * max(2, depth))
        ring = try (0..<max(2, depth)).map { _ in try device.makeEvent() }
        stream = try device.makeStream()
    }

    private func slot(_ i: Int) -> UnsafeMutableRawPointer { staging.pointer + (i % ring.count) * slotBytes }

    public func write(_ extents: [BlockFileExtent], after: CUDAEvent?) throws {
        lock.lock()
        defer { lock.unlock() }
        if let after { try stream.wait(for: after) }
        let bytes = pool.layout.blockBytes
        func stage(_ i: Int) throws {
            try stream.copy(from: try pool.address(of: extents[i].block), to: slot(i), bytes: bytes)
            try ring[i % ring.count].record(on: stream)
        }
        for i in 0..<min(ring.count, extents.count) { try stage(i) }
        for i in extents.indices {
            try ring[i % ring.count].synchronize()
            try pwriteAll(slot(i), count: directIOLength(bytes), offset: extents[i].fileOffset)
            if i + ring.count < extents.count { try stage(i + ring.count) }
        }
    }

    public func read(_ extents: [BlockFileExtent]) throws -> CUDAEvent? {
        lock.lock()
        defer { lock.unlock() }
        let bytes = pool.layout.blockBytes
        for (i, e) in extents.enumerated() {
            // The slot is free once the copy that last used it has finished.
            if i >= ring.count { try ring[i % ring.count].synchronize() }
            try preadAll(slot(i), count: directIOLength(bytes), minimum: bytes, offset: e.fileOffset)
            try stream.copy(from: UnsafeRawPointer(slot(i)), to: try pool.address(of: e.block), bytes: bytes)
            try ring[i % ring.count].record(on: stream)
        }
        let done = try pool.buffer.device.makeEvent()
        try done.record(on: stream)
        return done
    }

    private func pwriteAll(_ p: UnsafeMutableRawPointer, count: Int, offset: Int) throws {
        var done = 0
        while done < count {
            let n = pwrite(fd, p + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw CUDAError.io(call: "pwrite(O_DIRECT, \(count) bytes at \(offset))", path: filePath, errno: errno)
            }
            done += n
        }
    }

    private func preadAll(_ p: UnsafeMutableRawPointer, count: Int, minimum: Int, offset: Int) throws {
        var done = 0
        while done < count {
            let n = pread(fd, p + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw CUDAError.io(call: "pread(O_DIRECT, \(count) bytes at \(offset))", path: filePath, errno: errno)
            }
            if n == 0 { break }
            done += n
        }
        if done < minimum {
            throw CUDAError.io(call: "pread: \(done) of \(minimum) bytes at \(offset) (end of file)", path: filePath, errno: EIO)
        }
    }
}
