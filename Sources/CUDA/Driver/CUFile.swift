/// NVIDIA GPUDirect Storage (`libcufile.so.0`), loaded by `dlopen`: reads and writes between
/// files and GPU memory with no host bounce buffer when the platform allows it (in "compat mode"
/// cuFile itself falls back to POSIX I/O through its own buffers).
public final class CUFile: @unchecked Sendable {
    // The driver is opened once per process; the entry points are immutable addresses.
    // CUfileError_t is a struct of two ints returned by value, which the C ABI returns in one
    // 64-bit register: the low half is the cuFile status, the high half a CUDA driver status.
    typealias Status = UInt64
    private let cuFileDriverOpen: @convention(c) () -> Status
    private let cuFileHandleRegister: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeMutableRawPointer) -> Status
    private let cuFileHandleDeregister: @convention(c) (OpaquePointer?) -> Void
    private let cuFileBufRegister: @convention(c) (UnsafeRawPointer, Int, Int32) -> Status
    private let cuFileBufDeregister: @convention(c) (UnsafeRawPointer) -> Status
    private let cuFileRead: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer, Int, Int, Int) -> Int
    private let cuFileWrite: @convention(c) (OpaquePointer?, UnsafeRawPointer, Int, Int, Int) -> Int
    private let cuFileGetVersion: (@convention(c) (UnsafeMutablePointer<Int32>) -> Status)?

    /// The library the entry points came from.
    public let library: DynamicLibrary

    /// Opens libcufile and its driver (`cuFileDriverOpen`), once per process.
    public static func shared() throws -> CUFile { try loaded.get() }

    private static let loaded: Result<CUFile, Error> = Result { try CUFile() }

    private init() throws {
        let l = try DynamicLibrary.open(anyOf: ["libcufile.so.0", "libcufile.so"])
        library = l
        cuFileDriverOpen = try l.function("cuFileDriverOpen")
        cuFileHandleRegister = try l.function("cuFileHandleRegister")
        cuFileHandleDeregister = try l.function("cuFileHandleDeregister")
        cuFileBufRegister = try l.function("cuFileBufRegister")
        cuFileBufDeregister = try l.function("cuFileBufDeregister")
        cuFileRead = try l.function("cuFileRead")
        cuFileWrite = try l.function("cuFileWrite")
        cuFileGetVersion = l.optionalFunction("cuFileGetVersion")
        // cuFile needs the CUDA driver initialised first.
        _ = try DriverAPI.shared()
        try check(cuFileDriverOpen(), "cuFileDriverOpen")
    }

    /// The library's version ("1.15.0"), where it can say.
    public var version: String? {
        guard let f = cuFileGetVersion else { return nil }
        var v: Int32 = 0
        guard f(&v) & 0xffff_ffff == 0 else { return nil }
        return "\(v / 1000).\((v % 1000) / 10).\(v % 10)"
    }

    func check(_ status: Status, _ call: @autoclosure () -> String) throws {
        let code = Int32(truncatingIfNeeded: status & 0xffff_ffff)
        guard code != 0 else { return }
        let cudaCode = Int32(truncatingIfNeeded: status >> 32)
        var text = CUFile.errorText(code)
        if cudaCode != 0, let api = try? DriverAPI.shared() { text += "; CUDA: " + api.errorText(cudaCode) }
        throw CUDAError.cufile(call: call(), code: code, message: text)
    }

    /// The meaning of a cuFile status (cufile.h's CUfileOpError; 5000 plus a small number).
    static func errorText(_ code: Int32) -> String {
        let names: [Int32: String] = [
            5001: "driver not initialized", 5002: "invalid driver properties", 5003: "driver limit unsupported",
            5004: "driver version mismatch", 5005: "driver version read error", 5006: "driver closing",
            5007: "platform not supported", 5008: "I/O not supported", 5009: "device not supported",
            5010: "nvidia-fs driver error", 5011: "CUDA driver error", 5012: "invalid CUDA pointer",
            5013: "invalid CUDA memory type", 5014: "CUDA pointer range error", 5015: "CUDA context mismatch",
            5016: "invalid mapping size", 5017: "invalid mapping range", 5018: "invalid file type",
            5019: "invalid file open flags (O_DIRECT needed)", 5020: "O_DIRECT not set", 5022: "invalid value",
            5023: "memory already registered", 5024: "memory not registered", 5025: "permission denied",
            5026: "driver already open", 5027: "handle not registered", 5028: "handle already registered",
            5029: "device not found", 5030: "internal error", 5031: "getnewfd failed",
            5033: "nvidia-fs setup error", 5034: "I/O disabled by configuration",
        ]
        return names[code] ?? "cuFile error"
    }

    /// Registers an open file descriptor (opened with O_DIRECT) for cuFile I/O.
    public func register(fd: Int32, path: String) throws -> CUFileHandle {
        // CUfileDescr_t: { int type; (pad); union { int fd; void *handle; }; const void *fs_ops; }
        let descr = UnsafeMutableRawPointer.allocate(byteCount: 32, alignment: 8)
        defer { descr.deallocate() }
        descr.initializeMemory(as: UInt8.self, repeating: 0, count: 32)
        descr.storeBytes(of: Int32(1) /* CU_FILE_HANDLE_TYPE_OPAQUE_FD */, toByteOffset: 0, as: Int32.self)
        descr.storeBytes(of: fd, toByteOffset: 8, as: Int32.self)
        var handle: OpaquePointer?
        try check(cuFileHandleRegister(&handle, descr), "cuFileHandleRegister(\(path))")
        return CUFileHandle(cufile: self, handle: handle!, path: path)
    }

    /// Registers device memory as a cuFile buffer (pinned for DMA), so I/O into it needs no
    /// per-call pinning.
    public func registerBuffer(_ address: CUdeviceptr, bytes: Int) throws {
        let p = UnsafeRawPointer(bitPattern: UInt(address))!
        try check(cuFileBufRegister(p, bytes, 0), "cuFileBufRegister(\(bytes) bytes)")
    }

    /// Undoes `registerBuffer`.
    public func deregisterBuffer(_ address: CUdeviceptr) throws {
        let p = UnsafeRawPointer(bitPattern: UInt(address))!
        try check(cuFileBufDeregister(p), "cuFileBufDeregister")
    }

    fileprivate func read(_ h: OpaquePointer, into buffer: CUdeviceptr, bufferOffset: Int, bytes: Int, fileOffset: Int, path: String) throws {
        let p = UnsafeMutableRawPointer(bitPattern: UInt(buffer))!
        let n = cuFileRead(h, p, bytes, fileOffset, bufferOffset)
        try checkTransfer(n, expected: bytes, call: "cuFileRead(\(path), offset \(fileOffset), \(bytes) bytes)")
    }

    fileprivate func write(_ h: OpaquePointer, from buffer: CUdeviceptr, bufferOffset: Int, bytes: Int, fileOffset: Int, path: String) throws {
        let p = UnsafeRawPointer(bitPattern: UInt(buffer))!
        let n = cuFileWrite(h, p, bytes, fileOffset, bufferOffset)
        try checkTransfer(n, expected: bytes, call: "cuFileWrite(\(path), offset \(fileOffset), \(bytes) bytes)")
    }

    private func checkTransfer(_ n: Int, expected: Int, call: String) throws {
        if n == expected { return }
        if n == -1 { throw CUDAError.cufile(call: call, code: -1, message: String(cString: strerror(errno))) }
        if n < 0 { throw CUDAError.cufile(call: call, code: Int32(-n), message: CUFile.errorText(Int32(-n))) }
        throw CUDAError.cufile(call: call, code: 0, message: "short transfer: \(n) of \(expected) bytes")
    }

    fileprivate func deregister(_ h: OpaquePointer) { cuFileHandleDeregister(h) }
}

/// A file registered with cuFile; deregistered when the last reference goes (the descriptor
/// itself belongs to the caller).
public final class CUFileHandle: @unchecked Sendable {
    // cuFile handles may be used from several threads at once (cuFile is thread-safe).
    let cufile: CUFile
    let handle: OpaquePointer
    /// The registered file's path (for messages).
    public let path: String

    init(cufile: CUFile, handle: OpaquePointer, path: String) {
        self.cufile = cufile
        self.handle = handle
        self.path = path
    }

    deinit { cufile.deregister(handle) }

    /// Reads `bytes` at `fileOffset` into device memory `buffer + bufferOffset`.
    public func read(into buffer: CUdeviceptr, bufferOffset: Int = 0, bytes: Int, fileOffset: Int) throws {
        try cufile.read(handle, into: buffer, bufferOffset: bufferOffset, bytes: bytes, fileOffset: fileOffset, path: path)
    }

    /// Writes `bytes` from device memory `buffer + bufferOffset` at `fileOffset`.
    public func write(from buffer: CUdeviceptr, bufferOffset: Int = 0, bytes: Int, fileOffset: Int) throws {
        try cufile.write(handle, from: buffer, bufferOffset: bufferOffset, bytes: bytes, fileOffset: fileOffset, path: path)
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
