/// Block I/O straight between GPU memory and the file through cuFile (GPUDirect Storage).
///
/// The whole pool is registered with `cuFileBufRegister` once, so no call pins memory; when the
/// registration is refused cuFile still works through its own bounce buffers, and the reason is
/// kept in `registrationNote`. `depth` blocks move at once (one cuFile call per block on each of
/// `depth` threads): one request at a time leaves the disk idle between requests. On the GPU
/// machine's virtual disk 8 in flight and 4 moved alike within its noise over 16 checks (8 read
/// faster in 9 of them; bench/results/cuda-h200.md); the swapper uses 8.
/// Each call is made with the pool's CUDA context current on its thread: cuFile pushes and pops
/// the caller's context around its copies, and on a worker thread with none it fails inside
/// (`cuCtxPopCurrent` returning INVALID_CONTEXT under compute-sanitizer).
public final class CUFileBlockIO: BlockFileIO, @unchecked Sendable {
    // cuFile calls are thread-safe; the pool and handle are immutable after init.
    public var path: String { depth > 1 ? "cuFile, \(depth) requests in flight" : "cuFile" }
    /// Blocks in flight at once.
    public let depth: Int
    let pool: DeviceBlockPool
    let handle: CUFileHandle
    let cufile: CUFile
    /// Why the pool could not be registered, if it could not.
    public let registrationNote: String?
    private let registered: Bool

    /// Registers `fd` (opened with O_DIRECT; `filePath` for messages) and the pool with cuFile.
    public init(pool: DeviceBlockPool, fd: Int32, filePath: String, depth: Int = 8) throws {
        self.depth = max(1, depth)
        try pool.buffer.device.makeCurrent()
        cufile = try CUFile.shared()
        self.pool = pool
        handle = try cufile.register(fd: fd, path: filePath)
        do {
            try cufile.registerBuffer(pool.buffer.address, bytes: pool.buffer.bytes)
            registered = true
            registrationNote = nil
        } catch CUDAError.cufile(_, 5023, _) {
            // Already registered by another user of the same pool (who deregisters it).
            registered = false
            registrationNote = nil
        } catch {
            registered = false
            registrationNote = "\(error)"
        }
    }

    deinit {
        if registered { try? cufile.deregisterBuffer(pool.buffer.address) }
    }

    public func write(_ extents: [BlockFileExtent], after: CUDAEvent?) throws {
        try after?.synchronize()
        let bytes = pool.layout.blockStride
        try concurrentlyForEach(extents.count, depth: depth) { _, i in
            let e = extents[i]
            _ = try pool.address(of: e.block)
            try pool.buffer.device.makeCurrent()
            try handle.write(from: pool.buffer.address, bufferOffset: e.block * pool.blockStride, bytes: bytes, fileOffset: e.fileOffset)
        }
    }

    public func read(_ extents: [BlockFileExtent]) throws -> CUDAEvent? {
        let bytes = pool.layout.blockStride
        try concurrentlyForEach(extents.count, depth: depth) { _, i in
            let e = extents[i]
            _ = try pool.address(of: e.block)
            try pool.buffer.device.makeCurrent()
            try handle.read(into: pool.buffer.address, bufferOffset: e.block * pool.blockStride, bytes: bytes, fileOffset: e.fileOffset)
        }
        // cuFileRead returns once the bytes are in device memory.
        return nil
    }
}
