import Foundation
import HiFCCore

#if canImport(Glibc)
    import Glibc
#endif

/// One path's region, opened for direct I/O: a preallocated file (`hifc-flash.region`, or the
/// store's `regionName`) inside a directory, or a raw block device. Opening checks that the path exists, is writable, takes
/// O_DIRECT and has room for the whole region, and says which of these failed.
final class FlashRegionFile: @unchecked Sendable {
    /// The path as configured.
    let path: String
    /// The file or device opened.
    let regionFile: String
    /// The descriptor, opened O_RDWR | O_DIRECT.
    let fd: Int32
    /// Whether a region file was created by this open.
    let created: Bool

    init(path: String, capacity: Int64, fileName: String = FlashStoreConfiguration.regionFileName) throws(FlashStoreError) {
        self.path = path
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { throw .missingPath(path) }
            throw .cannotOpen(path: path, errno: errno, message: DirectIO.message(errno))
        }
        let type = info.st_mode & S_IFMT
        let flags = O_RDWR | O_CLOEXEC | DirectIO.directFlag
        if type == S_IFDIR {
            regionFile = (path as NSString).appendingPathComponent(fileName)
            let existed = access(regionFile, F_OK) == 0
            let fd = open(regionFile, flags | O_CREAT, 0o644)
            guard fd >= 0 else { throw Self.openError(errno, regionFile) }
            self.fd = fd
            created = !existed
            do throws(FlashStoreError) {
                try Self.preallocate(fd: fd, file: regionFile, directory: path, capacity: capacity)
                try Self.probeDirectIO(fd: fd, file: regionFile)
            } catch {
                Glibc.close(fd)
                if created { unlink(regionFile) }
                throw error
            }
        } else if type == S_IFBLK {
            regionFile = path
            let fd = open(path, flags)
            guard fd >= 0 else { throw Self.openError(errno, path) }
            self.fd = fd
            created = false
            let size = Int64(lseek(fd, 0, SEEK_END))
            if size < capacity {
                Glibc.close(fd)
                throw .deviceTooSmall(path: path, deviceSize: size, capacity: capacity)
            }
            do throws(FlashStoreError) { try Self.probeDirectIO(fd: fd, file: path) } catch {
                Glibc.close(fd)
                throw error
            }
        } else {
            throw .notADirectoryOrDevice(path)
        }
    }

    private static func openError(_ code: Int32, _ file: String) -> FlashStoreError {
        if code == EINVAL { return .directIONotSupported(path: file, message: DirectIO.message(code)) }
        return .cannotOpen(path: file, errno: code, message: DirectIO.message(code))
    }

    /// Reserves every byte of the region now, so later writes never allocate and never fail for
    /// lack of space on the file system.
    private static func preallocate(fd: Int32, file: String, directory: String, capacity: Int64) throws(FlashStoreError) {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .cannotOpen(path: file, errno: errno, message: DirectIO.message(errno)) }
        // A file already as large but sparse would still allocate on write, so always fallocate.
        let rc = posix_fallocate(fd, 0, off_t(capacity))
        guard rc == 0 else {
            if rc == ENOSPC || rc == EFBIG {
                var fs = statvfs()
                let available = statvfs(directory, &fs) == 0 ? Int64(fs.f_bavail) * Int64(fs.f_frsize) : nil
                throw .insufficientSpace(path: file, needed: capacity, available: available)
            }
            throw .cannotOpen(path: file, errno: rc, message: "preallocation failed: " + DirectIO.message(rc))
        }
    }

    /// Some file systems accept O_DIRECT at open and refuse it at the first read.
    private static func probeDirectIO(fd: Int32, file: String) throws(FlashStoreError) {
        let page = AlignedBuffer(count: FlashLayout.pageSize)
        let rc = DirectIO.readFully(fd: fd, vectors: [DirectIO.vector(page.bytes.baseAddress!, page.bytes.count)], offset: 0)
        if rc == EINVAL { throw .directIONotSupported(path: file, message: DirectIO.message(rc)) }
        if rc != 0 { throw .ioFailed(path: file, operation: "read", offset: 0, errno: rc, message: DirectIO.message(rc)) }
    }

    /// The newer valid superblock copy, if any.
    func readSuperblock() throws(FlashStoreError) -> RegionSuperblock? {
        try Self.newestSuperblock(fd: fd, file: regionFile)
    }

    /// Reads both superblock copies through `fd` and returns the valid one updated last.
    static func newestSuperblock(fd: Int32, file: String) throws(FlashStoreError) -> RegionSuperblock? {
        let page = AlignedBuffer(count: FlashLayout.pageSize)
        var best: RegionSuperblock?
        for offset in RegionSuperblock.copyOffsets {
            let rc = DirectIO.readFully(fd: fd, vectors: [DirectIO.vector(page.bytes.baseAddress!, page.bytes.count)], offset: offset)
            guard rc == 0 else { throw .ioFailed(path: file, operation: "read", offset: offset, errno: rc, message: DirectIO.message(rc)) }
            if let copy = RegionSuperblock(decoding: UnsafeRawBufferPointer(page.bytes)), copy.updateCount >= (best?.updateCount ?? 0) {
                best = copy
            }
        }
        return best
    }

    /// Writes `superblock` to the copy its update count selects; 0 or an errno.
    func writeSuperblock(_ superblock: RegionSuperblock) -> Int32 {
        let page = AlignedBuffer(count: FlashLayout.pageSize)
        superblock.encode(into: page.bytes)
        return DirectIO.writeFully(fd: fd, vectors: [DirectIO.vector(page.bytes.baseAddress!, page.bytes.count)], offset: superblock.nextCopyOffset)
    }

    func close() { Glibc.close(fd) }
}

extension FlashStore {
    /// The capacity and segment size recorded in the region at `path` (a directory holding a
    /// region file named `fileName`, or a block device), read without changing anything; nil when
    /// there is no region there yet. `hifc inspect` uses it to open a region with its own settings.
    public static func existingGeometry(at path: String, fileName: String = FlashStoreConfiguration.regionFileName) throws -> FlashRegionGeometry? {
        var info = stat()
        guard stat(path, &info) == 0 else { throw FlashStoreError.missingPath(path) }
        let file =
            (info.st_mode & S_IFMT) == S_IFDIR
            ? (path as NSString).appendingPathComponent(fileName) : path
        guard access(file, F_OK) == 0 else { return nil }
        let fd = open(file, O_RDONLY | O_CLOEXEC | DirectIO.directFlag)
        guard fd >= 0 else { throw FlashStoreError.cannotOpen(path: file, errno: errno, message: DirectIO.message(errno)) }
        defer { Glibc.close(fd) }
        let best = try FlashRegionFile.newestSuperblock(fd: fd, file: file)
        guard let best else { return nil }
        return try FlashRegionGeometry(capacity: best.capacity, segmentSize: best.segmentSize)
    }
}
