import FlashStore
import Foundation
import HiFCCore

#if canImport(Glibc)
    import Glibc
#endif

/// The raw O_DIRECT bandwidth of a directory's file system: sequential writes, then reads, of one
/// request size with a number of requests in flight, through the same thread pool the store
/// uses. The yardstick `hifc bench flash` holds the store against.
public enum DirectIOBenchmark {
    /// Bandwidths in decimal gigabytes per second.
    public struct Result: Hashable, Sendable {
        /// Write bandwidth.
        public var writeGBps: Double
        /// Read bandwidth.
        public var readGBps: Double
    }

    /// Writes `totalBytes` sequentially in requests of `requestSize` into a preallocated scratch
    /// file in `directory`, reads them back, and removes the file.
    public static func run(directory: String, totalBytes: Int64, requestSize: Int, queueDepth: Int) throws -> Result {
        let file = (directory as NSString).appendingPathComponent("hifc-raw-bench.dat")
        let fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | DirectIO.directFlag, 0o644)
        guard fd >= 0 else {
            let code = errno
            if code == EINVAL { throw FlashStoreError.directIONotSupported(path: file, message: DirectIO.message(code)) }
            throw FlashStoreError.cannotOpen(path: file, errno: code, message: DirectIO.message(code))
        }
        defer {
            close(fd)
            unlink(file)
        }
        let requests = Int(totalBytes / Int64(requestSize))
        let rc = posix_fallocate(fd, 0, off_t(Int64(requests) * Int64(requestSize)))
        guard rc == 0 else { throw FlashStoreError.insufficientSpace(path: file, needed: totalBytes, available: nil) }
        let pool = IOThreadPool(width: queueDepth, name: "hifc-raw-bench")
        defer { pool.shutdown() }
        let buffers = (0..<queueDepth).map { _ in randomBuffer(requestSize) }
        func pass(write: Bool) throws -> Double {
            let started = DispatchTime.now().uptimeNanoseconds
            let codes = pool.runBlocking(
                (0..<requests).map { i in
                    let buffer = buffers[i % buffers.count]
                    return {
                        let vector = [DirectIO.vector(buffer.bytes.baseAddress!, requestSize)]
                        let offset = Int64(i) * Int64(requestSize)
                        return write
                            ? DirectIO.writeFully(fd: fd, vectors: vector, offset: offset)
                            : DirectIO.readFully(fd: fd, vectors: vector, offset: offset)
                    }
                })
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            if let bad = codes.first(where: { $0 != 0 }) {
                throw FlashStoreError.ioFailed(path: file, operation: write ? "write" : "read", offset: 0, errno: bad, message: DirectIO.message(bad))
            }
            return Double(requests) * Double(requestSize) / seconds / 1e9
        }
        let write = try pass(write: true)
        let read = try pass(write: false)
        return Result(writeGBps: write, readGBps: read)
    }

    /// An aligned buffer of random bytes (so no layer below can compress it away).
    public static func randomBuffer(_ count: Int) -> AlignedBuffer {
        let buffer = AlignedBuffer(count: count, zeroed: false)
        var generator = SystemRandomNumberGenerator()
        let words = buffer.bytes.bindMemory(to: UInt64.self)
        for i in words.indices { words[i] = generator.next() }
        return buffer
    }
}
