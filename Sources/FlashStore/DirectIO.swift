import HiFCCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The POSIX calls of the direct-I/O data path, each returning the errno of a failure so that the
/// caller can name the path and the cause. The CUDA fallback path moves its blocks with them too.
public enum DirectIO {
    /// The O_DIRECT open flag (not exported to Swift by Glibc; its value depends on the CPU).
    public static var directFlag: Int32 {
        #if os(Linux) && arch(x86_64)
            return 0o40000
        #elseif os(Linux) && (arch(arm64) || arch(arm))
            return 0o200000
        #else
            return 0
        #endif
    }

    /// The text of an errno value ("No space left on device").
    public static func message(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Writes all of `vectors` at `offset`, continuing after short writes; 0 or an errno.
    public static func writeFully(fd: Int32, vectors: [iovec], offset: Int64) -> Int32 {
        transferFully(vectors: vectors, offset: offset) { pwritev(fd, $0, $1, $2) }
    }

    /// Reads all of `vectors` from `offset`, continuing after short reads; 0 or an errno (EIO
    /// when the file ends first).
    public static func readFully(fd: Int32, vectors: [iovec], offset: Int64) -> Int32 {
        transferFully(vectors: vectors, offset: offset) { preadv(fd, $0, $1, $2) }
    }

    /// Runs `call` (preadv or pwritev) until every byte of `vectors` has moved, retrying EINTR.
    private static func transferFully(
        vectors: [iovec], offset: Int64,
        _ call: (UnsafePointer<iovec>?, Int32, off_t) -> Int
    ) -> Int32 {
        var vectors = vectors
        var offset = offset
        var first = 0
        while first < vectors.count {
            let count = min(vectors.count - first, 1024)
            let n = vectors[first...].withUnsafeBufferPointer { call($0.baseAddress, Int32(count), off_t(offset)) }
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return EIO }
            offset += Int64(n)
            first = advance(&vectors, from: first, by: n)
        }
        return 0
    }

    /// Drops `n` transferred bytes from the front of `vectors[first...]`; returns the new first.
    private static func advance(_ vectors: inout [iovec], from first: Int, by n: Int) -> Int {
        var remaining = n
        var i = first
        while i < vectors.count, remaining >= vectors[i].iov_len {
            remaining -= vectors[i].iov_len
            i += 1
        }
        if i < vectors.count, remaining > 0 {
            vectors[i].iov_base = vectors[i].iov_base! + remaining
            vectors[i].iov_len -= remaining
        }
        return i
    }

    /// One I/O vector over `count` bytes at `pointer`.
    package static func vector(_ pointer: UnsafeRawPointer, _ count: Int) -> iovec {
        iovec(iov_base: UnsafeMutableRawPointer(mutating: pointer), iov_len: count)
    }
}
