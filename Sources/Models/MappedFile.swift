import Backend
import Foundation

/// A whole file mapped read-only into memory; unmapped when the last reference goes away.
public final class MappedFile: @unchecked Sendable {
    /// The file's path, for messages.
    public let path: String
    /// First byte of the mapping.
    public let bytes: UnsafeRawPointer
    /// Length of the file.
    public let count: Int

    /// Maps `path`; a missing or unreadable file is an error naming it.
    public init(path: String) throws(ModelError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            if errno == ENOENT { throw .missingFile(path) }
            throw .unreadable(path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(path, reason: String(cString: strerror(errno))) }
        let size = Int(info.st_size)
        guard size > 0 else { throw .badSafetensors(path, reason: "the file is empty") }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw .unreadable(path, reason: "mmap: \(String(cString: strerror(errno)))")
        }
        self.path = path
        bytes = UnsafeRawPointer(mapped)
        count = size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: bytes), count) }
}

extension MappedFile: ReloadableMemory {
    /// Drops the pages that lie wholly inside the range from this process (`MADV_DONTNEED`): the
    /// mapping is private and never written, so the next read maps them again from the file.
    public func releasePages(at start: UnsafeRawPointer, count: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let begin = max(Int(bitPattern: start), Int(bitPattern: bytes))
        let end = min(Int(bitPattern: start) + count, Int(bitPattern: bytes) + self.count)
        let first = (begin + page - 1) / page * page
        let last = end / page * page
        guard last > first, let at = UnsafeMutableRawPointer(bitPattern: first) else { return }
        madvise(at, last - first, MADV_DONTNEED)
    }
}
