import Foundation
import HiFCCore

#if canImport(Glibc)
    import Glibc
#endif

/// What this machine offers the flash tier, for `hifc doctor`: O_DIRECT on a path and io_uring
/// (the NVIDIA libraries are probed by the CUDA target's `CUDAProbe`).
public enum SystemProbe {
    /// The outcome of one check: whether it passed and what was found or why not.
    public struct Finding: Hashable, Sendable {
        /// Whether the thing is there and usable.
        public var available: Bool
        /// What was found, or why not (with the path tried).
        public var detail: String

        /// A finding.
        public init(available: Bool, detail: String) {
            self.available = available
            self.detail = detail
        }
    }

    /// Writes and reads back one aligned page with O_DIRECT in a scratch file inside `directory`,
    /// then removes it.
    public static func directIO(in directory: String) -> Finding {
        let file = (directory as NSString).appendingPathComponent(".hifc-doctor-\(getpid())")
        let fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | DirectIO.directFlag, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == EINVAL { return Finding(available: false, detail: "\(directory): the file system refuses O_DIRECT") }
            return Finding(available: false, detail: "\(directory): cannot create a file: \(DirectIO.message(code))")
        }
        defer {
            close(fd)
            unlink(file)
        }
        let page = AlignedBuffer(count: FlashLayout.pageSize)
        page.bytes.storeBytes(of: 0xC0FFEE, as: UInt32.self)
        let vector = [DirectIO.vector(page.bytes.baseAddress!, page.bytes.count)]
        let written = DirectIO.writeFully(fd: fd, vectors: vector, offset: 0)
        if written != 0 {
            return Finding(available: false, detail: "\(directory): O_DIRECT write failed: \(DirectIO.message(written))")
        }
        page.bytes.storeBytes(of: 0, as: UInt32.self)
        let read = DirectIO.readFully(fd: fd, vectors: vector, offset: 0)
        if read != 0 {
            return Finding(available: false, detail: "\(directory): O_DIRECT read failed: \(DirectIO.message(read))")
        }
        guard page.bytes.load(as: UInt32.self) == 0xC0FFEE else {
            return Finding(available: false, detail: "\(directory): O_DIRECT read returned other bytes than written")
        }
        return Finding(available: true, detail: "\(directory): 4 KiB-aligned O_DIRECT write and read work")
    }

    /// Whether the kernel lets this process create an io_uring (one `io_uring_setup` call, the
    /// ring closed at once). The store does not use io_uring: its thread pool of pread/pwrite is
    /// the data path either way; this only reports what the machine would allow.
    public static func ioUring() -> Finding {
        #if os(Linux)
            let disabled = (try? String(contentsOfFile: "/proc/sys/kernel/io_uring_disabled", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let sysctl = disabled.map { " (kernel.io_uring_disabled = \($0))" } ?? ""
            // Glibc's syscall() is variadic, which Swift cannot call; on x86_64 and arm64 calling it
            // through a fixed prototype passes the same registers.
            typealias Syscall = @convention(c) (Int, Int, UnsafeMutableRawPointer?) -> Int
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "syscall") else {
                return Finding(available: false, detail: "syscall() not found; io_uring not probed")
            }
            let syscall = unsafeBitCast(symbol, to: Syscall.self)
            let ioUringSetup = 425  // the same number on x86_64 and arm64
            var params = [UInt8](repeating: 0, count: 120)  // struct io_uring_params
            let fd = params.withUnsafeMutableBytes { syscall(ioUringSetup, 4, $0.baseAddress) }
            if fd >= 0 {
                close(Int32(fd))
                return Finding(available: true, detail: "io_uring_setup works\(sysctl); not used: the store's I/O runs on a pread/pwrite thread pool")
            }
            let code = errno
            let why = code == ENOSYS ? "the kernel has no io_uring" : code == EPERM ? "io_uring is disabled for this process" : DirectIO.message(code)
            return Finding(available: false, detail: "io_uring_setup failed: \(why)\(sysctl); the store uses its pread/pwrite thread pool")
        #else
            return Finding(available: false, detail: "io_uring exists only on Linux; the store uses its pread/pwrite thread pool")
        #endif
    }
}
