import Foundation

/// Facts about one GPU, as the driver reports them.
public struct CUDADeviceInfo: Sendable, CustomStringConvertible {
    /// Device ordinal.
    public var ordinal: Int
    /// Marketing name ("NVIDIA H100 80GB HBM3").
    public var name: String
    /// Compute capability, major and minor (9.0 for Hopper).
    public var computeCapability: (major: Int, minor: Int)
    /// Total device memory in bytes.
    public var totalMemory: Int
    /// Streaming multiprocessors.
    public var multiprocessors: Int
    /// Shared memory a block may opt into, bytes.
    public var maxSharedMemoryPerBlock: Int

    /// The NVRTC architecture flag for this device ("sm_90").
    public var architecture: String { "sm_\(computeCapability.major)\(computeCapability.minor)" }

    public var description: String {
        let gib = Double(totalMemory) / Double(1 << 30)
        return "cuda:\(ordinal) \(name), compute capability \(computeCapability.major).\(computeCapability.minor), "
            + "\(String(format: "%.1f", gib)) GiB, \(multiprocessors) SMs"
    }
}

/// One GPU with its primary context: memory, streams, events, modules, launches.
///
/// The primary context is made current on the calling thread before every call, since Swift
/// concurrency moves work between threads.
public final class CUDADevice: @unchecked Sendable {
    // The context handle is immutable after init; the driver API itself is thread-safe.
    /// Driver entry points.
    public let api: DriverAPI
    /// What the driver reports about the device.
    public let info: CUDADeviceInfo
    /// Whether kernels launch with programmatic stream serialization, so that each may start
    /// while the one before it finishes (Hopper and later, with `cuLaunchKernelEx`; the kernels
    /// wait for their inputs themselves, see common.cuh). `HIFC_CUDA_PDL=0` turns it off, for
    /// comparing the two in one run.
    public let overlapsDependentLaunches: Bool
    let context: CUcontext

    /// Number of CUDA devices, or an error when the driver cannot be loaded.
    public static func count() throws -> Int {
        let api = try DriverAPI.shared()
        var n: Int32 = 0
        try api.check(api.cuDeviceGetCount(&n), "cuDeviceGetCount")
        return Int(n)
    }

    /// The CUDA driver's version as "13.0".
    public static func driverVersion() throws -> String {
        let api = try DriverAPI.shared()
        var v: Int32 = 0
        try api.check(api.cuDriverGetVersion(&v), "cuDriverGetVersion")
        return "\(v / 1000).\((v % 1000) / 10)"
    }

    /// Opens device `ordinal` and retains its primary context.
    public init(ordinal: Int = 0) throws {
        let api = try DriverAPI.shared()
        self.api = api
        let count = try CUDADevice.count()
        guard ordinal >= 0 && ordinal < count else { throw CUDAError.noSuchDevice(ordinal: ordinal, count: count) }
        var dev: Int32 = 0
        try api.check(api.cuDeviceGet(&dev, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        var nameBuf = [CChar](repeating: 0, count: 256)
        try api.check(api.cuDeviceGetName(&nameBuf, 256, dev), "cuDeviceGetName")
        var total = 0
        try api.check(api.cuDeviceTotalMem(&total, dev), "cuDeviceTotalMem")
        func attribute(_ attr: Int32, _ what: String) throws -> Int {
            var v: Int32 = 0
            try api.check(api.cuDeviceGetAttribute(&v, attr, dev), "cuDeviceGetAttribute(\(what))")
            return Int(v)
        }
        // Attribute numbers from cuda.h (CUdevice_attribute).
        let major = try attribute(75, "COMPUTE_CAPABILITY_MAJOR")
        let minor = try attribute(76, "COMPUTE_CAPABILITY_MINOR")
        let sms = try attribute(16, "MULTIPROCESSOR_COUNT")
        let smem = try attribute(97, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN")
        info = CUDADeviceInfo(
            ordinal: ordinal, name: String(nulTerminated: nameBuf), computeCapability: (major, minor),
            totalMemory: total, multiprocessors: sms, maxSharedMemoryPerBlock: smem)
        overlapsDependentLaunches =
            major >= 9 && api.cuLaunchKernelEx != nil
            && ProcessInfo.processInfo.environment["HIFC_CUDA_PDL"] != "0"
        var ctx: CUcontext?
        try api.check(api.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain(\(ordinal))")
        guard let ctx else { throw CUDAError.driver(call: "cuDevicePrimaryCtxRetain", code: 0, message: "null context") }
        context = ctx
        try makeCurrent()
    }

    /// Makes this device's context current on the calling thread.
    public func makeCurrent() throws {
        try api.check(api.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    }

    /// Free and total device memory in bytes.
    public func memoryInfo() throws -> (free: Int, total: Int) {
        try makeCurrent()
        var free = 0
        var total = 0
        try api.check(api.cuMemGetInfo(&free, &total), "cuMemGetInfo")
        return (free, total)
    }

    /// Waits for all work on the device.
    public func synchronize() throws {
        try makeCurrent()
        try api.check(api.cuCtxSynchronize(), "cuCtxSynchronize")
    }

    /// Allocates `bytes` of device memory.
    public func allocate(_ bytes: Int) throws -> DeviceBuffer {
        try DeviceBuffer(device: self, bytes: bytes)
    }

    /// Allocates `bytes` of page-locked host memory (for asynchronous copies).
    public func allocatePinned(_ bytes: Int) throws -> PinnedBuffer {
        try PinnedBuffer(device: self, bytes: bytes)
    }

    /// A new non-blocking stream.
    public func makeStream() throws -> CUDAStream { try CUDAStream(device: self) }

    /// A new event; `timing` events can measure elapsed time.
    public func makeEvent(timing: Bool = false) throws -> CUDAEvent { try CUDAEvent(device: self, timing: timing) }

    /// Copies host bytes to device memory, synchronously.
    public func copy(from host: UnsafeRawPointer, to dst: CUdeviceptr, bytes: Int) throws {
        try makeCurrent()
        try api.check(api.cuMemcpyHtoD(dst, host, bytes), "cuMemcpyHtoD(\(bytes) bytes)")
    }

    /// Copies device bytes to host memory, synchronously.
    public func copy(from src: CUdeviceptr, to host: UnsafeMutableRawPointer, bytes: Int) throws {
        try makeCurrent()
        try api.check(api.cuMemcpyDtoH(host, src, bytes), "cuMemcpyDtoH(\(bytes) bytes)")
    }

    /// Loads a compiled module (cubin or PTX image).
    public func loadModule(image: [UInt8]) throws -> CUDAModule {
        try makeCurrent()
        var module: CUmodule?
        try image.withUnsafeBytes { raw in
            try api.check(api.cuModuleLoadData(&module, raw.baseAddress!), "cuModuleLoadData")
        }
        return CUDAModule(device: self, module: module!)
    }
}

/// Device memory that is freed when the last reference goes.
public final class DeviceBuffer: @unchecked Sendable {
    // The address is immutable; what lives there is ordered by streams, not by Swift.
    /// The device address.
    public let address: CUdeviceptr
    /// Size in bytes.
    public let bytes: Int
    let device: CUDADevice

    init(device: CUDADevice, bytes: Int) throws {
        guard bytes > 0 else { throw CUDAError.invalidArgument("allocation of \(bytes) bytes") }
        self.device = device
        self.bytes = bytes
        try device.makeCurrent()
        var p: CUdeviceptr = 0
        try device.api.check(device.api.cuMemAlloc(&p, bytes), "cuMemAlloc(\(bytes) bytes)")
        address = p
    }

    deinit {
        _ = device.api.cuCtxSetCurrent(device.context)
        _ = device.api.cuMemFree(address)
    }

    /// Copies `values` into the start of this buffer, synchronously.
    public func upload<T>(_ values: [T]) throws {
        let n = values.count * MemoryLayout<T>.stride
        guard n <= bytes else { throw CUDAError.invalidArgument("upload of \(n) bytes into a \(bytes)-byte buffer") }
        try values.withUnsafeBytes { try device.copy(from: $0.baseAddress!, to: address, bytes: n) }
    }

    /// Reads `count` values of type `T` from the start of this buffer, synchronously.
    public func download<T>(_ type: T.Type, count: Int) throws -> [T] {
        let n = count * MemoryLayout<T>.stride
        guard n <= bytes else { throw CUDAError.invalidArgument("download of \(n) bytes from a \(bytes)-byte buffer") }
        return try [T](unsafeUninitializedCapacity: count) { buf, initialized in
            try device.copy(from: address, to: UnsafeMutableRawPointer(buf.baseAddress!), bytes: n)
            initialized = count
        }
    }
}

/// Page-locked host memory, freed when the last reference goes.
public final class PinnedBuffer: @unchecked Sendable {
    // The pointer is immutable; accesses are ordered by the streams and events that use it.
    /// The host address.
    public let pointer: UnsafeMutableRawPointer
    /// Size in bytes.
    public let bytes: Int
    let device: CUDADevice

    init(device: CUDADevice, bytes: Int) throws {
        guard bytes > 0 else { throw CUDAError.invalidArgument("pinned allocation of \(bytes) bytes") }
        self.device = device
        self.bytes = bytes
        try device.makeCurrent()
        var p: UnsafeMutableRawPointer?
        // CU_MEMHOSTALLOC_PORTABLE: usable from every context.
        try device.api.check(device.api.cuMemHostAlloc(&p, bytes, 1), "cuMemHostAlloc(\(bytes) bytes)")
        pointer = p!
    }

    deinit {
        _ = device.api.cuCtxSetCurrent(device.context)
        _ = device.api.cuMemFreeHost(pointer)
    }
}

/// A CUDA stream: work on it runs in order, and overlaps other streams.
public final class CUDAStream: @unchecked Sendable {
    // The handle is immutable; the driver orders the work submitted to it.
    /// The driver handle.
    public let handle: CUstream
    let device: CUDADevice

    init(device: CUDADevice) throws {
        self.device = device
        try device.makeCurrent()
        var s: CUstream?
        // CU_STREAM_NON_BLOCKING: no implicit ordering with the legacy default stream.
        try device.api.check(device.api.cuStreamCreate(&s, 1), "cuStreamCreate")
        handle = s!
    }

    deinit {
        _ = device.api.cuCtxSetCurrent(device.context)
        _ = device.api.cuStreamDestroy(handle)
    }

    /// Waits until everything on this stream has finished.
    public func synchronize() throws {
        try device.makeCurrent()
        try device.api.check(device.api.cuStreamSynchronize(handle), "cuStreamSynchronize")
    }

    /// Makes later work on this stream wait for `event`.
    public func wait(for event: CUDAEvent) throws {
        try device.makeCurrent()
        try device.api.check(device.api.cuStreamWaitEvent(handle, event.handle, 0), "cuStreamWaitEvent")
    }

    /// Asynchronous host-to-device copy (host memory should be pinned for real overlap).
    public func copy(from host: UnsafeRawPointer, to dst: CUdeviceptr, bytes: Int) throws {
        try device.makeCurrent()
        try device.api.check(device.api.cuMemcpyHtoDAsync(dst, host, bytes, handle), "cuMemcpyHtoDAsync(\(bytes) bytes)")
    }

    /// Asynchronous device-to-host copy.
    public func copy(from src: CUdeviceptr, to host: UnsafeMutableRawPointer, bytes: Int) throws {
        try device.makeCurrent()
        try device.api.check(device.api.cuMemcpyDtoHAsync(host, src, bytes, handle), "cuMemcpyDtoHAsync(\(bytes) bytes)")
    }

    /// Asynchronous device-to-device copy.
    public func copy(from src: CUdeviceptr, to dst: CUdeviceptr, bytes: Int) throws {
        try device.makeCurrent()
        try device.api.check(device.api.cuMemcpyDtoDAsync(dst, src, bytes, handle), "cuMemcpyDtoDAsync(\(bytes) bytes)")
    }

    /// Asynchronously sets `bytes` bytes at `dst` to `value`.
    public func fill(_ dst: CUdeviceptr, value: UInt8, bytes: Int) throws {
        try device.makeCurrent()
        try device.api.check(device.api.cuMemsetD8Async(dst, value, bytes, handle), "cuMemsetD8Async(\(bytes) bytes)")
    }
}

/// A CUDA event: a point in a stream that other streams and the host can wait for.
public final class CUDAEvent: @unchecked Sendable {
    // The handle is immutable; the driver synchronises its use.
    /// The driver handle.
    public let handle: CUevent
    let device: CUDADevice

    init(device: CUDADevice, timing: Bool) throws {
        self.device = device
        try device.makeCurrent()
        var e: CUevent?
        // CU_EVENT_DISABLE_TIMING (2) makes cross-stream waits cheaper when no timing is needed.
        try device.api.check(device.api.cuEventCreate(&e, timing ? 0 : 2), "cuEventCreate")
        handle = e!
    }

    deinit {
        _ = device.api.cuCtxSetCurrent(device.context)
        _ = device.api.cuEventDestroy(handle)
    }

    /// Records this event at the current end of `stream`.
    public func record(on stream: CUDAStream) throws {
        try device.makeCurrent()
        try device.api.check(device.api.cuEventRecord(handle, stream.handle), "cuEventRecord")
    }

    /// Blocks the calling thread until the event has happened.
    public func synchronize() throws {
        try device.makeCurrent()
        try device.api.check(device.api.cuEventSynchronize(handle), "cuEventSynchronize")
    }

    /// Milliseconds between `start` and this event (both recorded with timing enabled).
    public func milliseconds(since start: CUDAEvent) throws -> Double {
        var ms: Float = 0
        try device.api.check(device.api.cuEventElapsedTime(&ms, start.handle, handle), "cuEventElapsedTime")
        return Double(ms)
    }
}

/// A loaded module of compiled kernels.
public final class CUDAModule: @unchecked Sendable {
    // Module and function handles are immutable once loaded.
    let device: CUDADevice
    let module: CUmodule

    init(device: CUDADevice, module: CUmodule) {
        self.device = device
        self.module = module
    }

    deinit {
        _ = device.api.cuCtxSetCurrent(device.context)
        _ = device.api.cuModuleUnload(module)
    }

    /// The kernel `name` (an `extern "C"` function of the module).
    public func function(_ name: String) throws -> CUDAFunction {
        try device.makeCurrent()
        var f: CUfunction?
        let status = device.api.cuModuleGetFunction(&f, module, name)
        // CUDA_ERROR_NOT_FOUND (500)
        if status == 500 { throw CUDAError.missingKernel(name: name) }
        try device.api.check(status, "cuModuleGetFunction(\(name))")
        return CUDAFunction(module: self, name: name, handle: f!)
    }
}

/// One kernel of a loaded module.
public struct CUDAFunction: @unchecked Sendable {
    // The handle is immutable; the module it belongs to is kept alive by `module`.
    let module: CUDAModule
    /// The kernel's name.
    public let name: String
    let handle: CUfunction

    /// How many blocks of `threads` threads (and `sharedBytes` of dynamic shared memory) fit on
    /// one multiprocessor at once, as the driver computes it from the kernel's registers and
    /// shared memory.
    public func residentBlocksPerMultiprocessor(threads: Int, sharedBytes: Int = 0) throws -> Int {
        let device = module.device
        try device.makeCurrent()
        var blocks: Int32 = 0
        try device.api.check(
            device.api.cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, handle, Int32(threads), sharedBytes),
            "cuOccupancyMaxActiveBlocksPerMultiprocessor(\(name), \(threads) threads)")
        return Int(blocks)
    }

    /// Launches the kernel on `stream` with `grid` blocks of `block` threads.
    public func launch(
        grid: (Int, Int, Int), block: (Int, Int, Int), sharedBytes: Int = 0,
        stream: CUDAStream, arguments: KernelArguments
    ) throws {
        let device = module.device
        try device.makeCurrent()
        if sharedBytes > 48 * 1024 {
            // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: beyond 48 KiB a block must opt in.
            try device.api.check(device.api.cuFuncSetAttribute(handle, 8, Int32(sharedBytes)), "cuFuncSetAttribute(\(name))")
        }
        guard grid.0 > 0, grid.1 > 0, grid.2 > 0 else {
            throw CUDAError.invalidArgument("\(name): empty grid \(grid)")
        }
        try arguments.withPointers { params in
            if device.overlapsDependentLaunches, let launchEx = device.api.cuLaunchKernelEx {
                try withDependentLaunchConfig(grid: grid, block: block, sharedBytes: sharedBytes, stream: stream) { config in
                    try device.api.check(launchEx(config, handle, params, nil), "cuLaunchKernelEx(\(name), grid \(grid), block \(block))")
                }
            } else {
                try device.api.check(
                    device.api.cuLaunchKernel(
                        handle, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2),
                        UInt32(block.0), UInt32(block.1), UInt32(block.2), UInt32(sharedBytes),
                        stream.handle, params, nil),
                    "cuLaunchKernel(\(name), grid \(grid), block \(block))")
            }
        }
    }
}

/// Calls `body` with a `CUlaunchConfig` that carries one attribute,
/// CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 1. The structs are written at the
/// offsets cuda.h gives them on 64-bit Linux: `CUlaunchConfig` is seven 32-bit dimensions and
/// sizes, the stream at 32, the attribute pointer at 40 and the count at 48 (56 bytes);
/// `CUlaunchAttribute` is a 32-bit id padded to 8 and a 64-byte value union (72 bytes).
private func withDependentLaunchConfig<R>(
    grid: (Int, Int, Int), block: (Int, Int, Int), sharedBytes: Int, stream: CUDAStream,
    _ body: (UnsafeRawPointer) throws -> R
) throws -> R {
    try withUnsafeTemporaryAllocation(byteCount: 72, alignment: 8) { attribute in
        attribute.initializeMemory(as: UInt8.self, repeating: 0)
        attribute.storeBytes(of: Int32(6), toByteOffset: 0, as: Int32.self)  // ..._PROGRAMMATIC_STREAM_SERIALIZATION
        attribute.storeBytes(of: Int32(1), toByteOffset: 8, as: Int32.self)  // programmaticStreamSerializationAllowed
        return try withUnsafeTemporaryAllocation(byteCount: 56, alignment: 8) { config in
            config.initializeMemory(as: UInt8.self, repeating: 0)
            for (i, v) in [grid.0, grid.1, grid.2, block.0, block.1, block.2, sharedBytes].enumerated() {
                config.storeBytes(of: UInt32(v), toByteOffset: 4 * i, as: UInt32.self)
            }
            config.storeBytes(of: UnsafeRawPointer(stream.handle), toByteOffset: 32, as: UnsafeRawPointer?.self)
            config.storeBytes(of: UnsafeRawPointer(attribute.baseAddress!), toByteOffset: 40, as: UnsafeRawPointer.self)
            config.storeBytes(of: UInt32(1), toByteOffset: 48, as: UInt32.self)
            return try body(UnsafeRawPointer(config.baseAddress!))
        }
    }
}

/// The parameter list of a kernel launch: each value is copied into storage the launch points at.
public struct KernelArguments {
    // Every kernel parameter is a pointer, an int, a long or a float: each gets one 8-byte slot,
    // so building the list costs one small array rather than an allocation per argument (a
    // decode step launches several hundred kernels).
    private var slots: [UInt64] = []

    public init() { slots.reserveCapacity(20) }

    /// Appends a device pointer.
    public mutating func add(_ p: CUdeviceptr) { append(p) }
    /// Appends a 32-bit integer (C `int`).
    public mutating func add(_ v: Int32) { append(v) }
    /// Appends an `int` from a Swift `Int`.
    public mutating func add(int v: Int) { append(Int32(truncatingIfNeeded: v)) }
    /// Appends a `float`.
    public mutating func add(_ v: Float) { append(v) }

    /// Appends any plain value of at most 8 bytes, byte for byte.
    public mutating func add<T>(raw v: T) { append(v) }

    private mutating func append<T>(_ v: T) {
        precondition(MemoryLayout<T>.size <= 8, "a kernel argument of \(MemoryLayout<T>.size) bytes")
        var slot: UInt64 = 0
        withUnsafeMutableBytes(of: &slot) { $0.storeBytes(of: v, as: T.self) }
        slots.append(slot)
    }

    func withPointers<R>(_ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) throws -> R) throws -> R {
        var values = slots
        return try values.withUnsafeMutableBufferPointer { v in
            try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(1, v.count)) { pointers in
                for i in 0..<v.count { pointers[i] = UnsafeMutableRawPointer(v.baseAddress! + i) }
                return try body(pointers.baseAddress!)
            }
        }
    }
}
