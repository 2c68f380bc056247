import Foundation
import HiFCCore

#if canImport(Glibc)
    import Glibc
#endif

/// One path's region, opened for direct I/O: a preallocated file (`hifc-flash.region`, or the
/// store's `regionName`) inside a directory, or a raw block device. Opening checks that the path exists, is writable, takes
/// O_DIRECT and has room for the whole region, and says which of these failed.
///
/// A region has one writer at a time: opening takes an exclusive `flock` on the region (held
/// until `close`, or until the process dies, since the kernel drops it with the descriptor) and
/// writes who holds it to `hifc-flash.region.lock` beside a region file, so a second writer
/// (another server, `hifc inspect`) is refused with an error naming the holder. Readers that only
/// read another writer's region (the shared prefix cache, `init(readingOnly:)`) take no lock:
/// every slot they read is checked against its header and CRC32C, and a lock of theirs would keep
/// the region's own writer from restarting.
///
/// In a shared directory (`FlashStoreConfiguration.sharedDirectory`) each instance writes the
/// first region file no other instance holds: `hifc-flash.region`, then `hifc-flash-2.region`,
/// and so on, so several servers can point at one directory and read each other's blocks.
final class FlashRegionFile: @unchecked Sendable {
    /// The path as configured.
    let path: String
    /// The file or device opened.
    let regionFile: String
    /// The descriptor, opened O_RDWR | O_DIRECT.
    let fd: Int32
    /// Whether a region file was created by this open.
    let created: Bool
    /// The file naming this region's writer while it holds the lock (none for block devices).
    let holderFile: String?

    /// Opens the region at `path` for writing: the region file `fileName` in a directory, or, with
    /// `shared`, the first region file that no other instance holds (at most
    /// `FlashStoreConfiguration.maxSharedInstances`).
    static func open(
        path: String, capacity: Int64, shared: Bool, fileName: String = FlashStoreConfiguration.regionFileName
    ) throws(FlashStoreError) -> FlashRegionFile {
        guard shared, isDirectory(path) else {
            return try FlashRegionFile(path: path, capacity: capacity, fileName: fileName)
        }
        var lastRefusal: FlashStoreError?
        for instance in 1...FlashStoreConfiguration.maxSharedInstances {
            do throws(FlashStoreError) {
                return try FlashRegionFile(path: path, capacity: capacity, fileName: FlashStoreConfiguration.regionFileName(instance: instance))
            } catch {
                guard case .regionInUse = error else { throw error }
                lastRefusal = error
            }
        }
        throw lastRefusal!
    }

    private static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    private init(path: String, capacity: Int64, fileName: String) throws(FlashStoreError) {
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
            let fd = Glibc.open(regionFile, flags | O_CREAT, 0o644)
            guard fd >= 0 else { throw Self.openError(errno, regionFile) }
            self.fd = fd
            created = !existed
            holderFile = regionFile + ".lock"
            do throws(FlashStoreError) {
                try Self.lockExclusively(fd: fd, file: regionFile, holderFile: holderFile)
            } catch {
                Glibc.close(fd)
                throw error
            }
            do throws(FlashStoreError) {
                try Self.preallocate(fd: fd, file: regionFile, directory: path, capacity: capacity)
                try Self.probeDirectIO(fd: fd, file: regionFile)
            } catch {
                if let holderFile { unlink(holderFile) }
                if created { unlink(regionFile) }
                Glibc.close(fd)
                throw error
            }
        } else if type == S_IFBLK {
            regionFile = path
            let fd = Glibc.open(path, flags)
            guard fd >= 0 else { throw Self.openError(errno, path) }
            self.fd = fd
            created = false
            holderFile = nil
            do throws(FlashStoreError) {
                try Self.lockExclusively(fd: fd, file: path, holderFile: nil)
            } catch {
                Glibc.close(fd)
                throw error
            }
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

    /// Opens another instance's region file for reading only, without its lock (see above).
    init(readingOnly file: String) throws(FlashStoreError) {
        path = (file as NSString).deletingLastPathComponent
        regionFile = file
        let fd = Glibc.open(file, O_RDONLY | O_CLOEXEC | DirectIO.directFlag)
        guard fd >= 0 else { throw Self.openError(errno, file) }
        self.fd = fd
        created = false
        holderFile = nil
    }

    /// Takes the region's exclusive lock without waiting and records this process in
    /// `holderFile`; when another open of the region holds it, throws `regionInUse` with what
    /// that writer recorded. File systems without `flock` (some network ones) go unlocked.
    private static func lockExclusively(fd: Int32, file: String, holderFile: String?) throws(FlashStoreError) {
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == ENOLCK || code == EOPNOTSUPP { return }
            guard code == EWOULDBLOCK else { throw .cannotOpen(path: file, errno: code, message: "flock: " + DirectIO.message(code)) }
            let holder = holderFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw .regionInUse(path: file, holder: holder.flatMap { $0.isEmpty ? nil : "\($0) (says \(holderFile!))" })
        }
        guard let holderFile else { return }
        let command = ProcessInfo.processInfo.arguments.joined(separator: " ")
        let since = ISO8601DateFormatter().string(from: Date())
        // Best effort: the lock is what keeps a second writer out; this only names the holder.
        try? "pid \(getpid()) (\(command.prefix(300))), since \(since)\n".write(toFile: holderFile, atomically: true, encoding: .utf8)
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

    /// What the two superblock copies hold.
    func readSuperblock() throws(FlashStoreError) -> RegionSuperblock.Found {
        try Self.newestSuperblock(fd: fd, file: regionFile)
    }

    /// Reads both superblock copies through `fd`: the valid one updated last, or whether the two
    /// pages were never written (all zeros) or hold something else.
    static func newestSuperblock(fd: Int32, file: String) throws(FlashStoreError) -> RegionSuperblock.Found {
        let page = AlignedBuffer(count: FlashLayout.pageSize)
        var best: RegionSuperblock?
        var blank = true
        for offset in RegionSuperblock.copyOffsets {
            let rc = DirectIO.readFully(fd: fd, vectors: [DirectIO.vector(page.bytes.baseAddress!, page.bytes.count)], offset: offset)
            guard rc == 0 else { throw .ioFailed(path: file, operation: "read", offset: offset, errno: rc, message: DirectIO.message(rc)) }
            if let copy = RegionSuperblock(decoding: UnsafeRawBufferPointer(page.bytes)) {
                if copy.updateCount >= (best?.updateCount ?? 0) { best = copy }
            } else if page.bytes.contains(where: { $0 != 0 }) {
                blank = false
            }
        }
        if let best { return .valid(best) }
        return blank ? .blank : .corrupt
    }

    /// Writes `superblock` to the copy its update count selects; 0 or an errno.
    func writeSuperblock(_ superblock: RegionSuperblock) -> Int32 {
        let page = AlignedBuffer(count: FlashLayout.pageSize)
        superblock.encode(into: page.bytes)
        return DirectIO.writeFully(fd: fd, vectors: [DirectIO.vector(page.bytes.baseAddress!, page.bytes.count)], offset: superblock.nextCopyOffset)
    }

    /// Removes the holder file (while the lock is still held, so it is this process's) and closes
    /// the region, which releases the lock.
    func close() {
        if let holderFile { unlink(holderFile) }
        Glibc.close(fd)
    }
}

extension FlashStore {
    /// The capacity and segment size recorded in the region at `path` (a directory holding a
    /// region file named `fileName`, or a block device), read without changing anything and
    /// without the region's lock; nil when there is no region there yet (no file, or one whose
    /// superblocks were never written). Throws `corruptSuperblocks` when both copies are damaged.
    /// `hifc inspect` uses it to open a region with its own settings.
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
        switch try FlashRegionFile.newestSuperblock(fd: fd, file: file) {
        case .valid(let superblock): return try FlashRegionGeometry(capacity: superblock.capacity, segmentSize: superblock.segmentSize)
        case .blank: return nil
        case .corrupt: throw FlashStoreError.corruptSuperblocks(path: file)
        }
    }
}
