import Foundation

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
    /// The share of each multiprocessor's L1/shared memory (percent) that every kernel taking at
    /// most 48 KiB of shared memory prefers for shared memory, nil for the driver's own choice
    /// (`sharedMemoryCarveout`).
    public let preferredCarveout: Int?
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
        let memoryKHz = try attribute(36, "MEMORY_CLOCK_RATE")
        let busBits = try attribute(37, "GLOBAL_MEMORY_BUS_WIDTH")
        info = CUDADeviceInfo(
            ordinal: ordinal, name: String(nulTerminated: nameBuf), computeCapability: (major, minor),
            totalMemory: total, multiprocessors: sms, maxSharedMemoryPerBlock: smem,
            memoryBandwidth: CUDADeviceInfo.peakBandwidth(memoryClockKHz: memoryKHz, busBits: busBits))
        overlapsDependentLaunches =
            major >= 9 && api.cuLaunchKernelEx != nil
            && ProcessInfo.processInfo.environment["HIFC_CUDA_PDL"] != "0"
        preferredCarveout = try CUDADevice.sharedMemoryCarveout(
            computeCapability: (major, minor), environment: ProcessInfo.processInfo.environment)
        var ctx: CUcontext?
        try api.check(api.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain(\(ordinal))")
        guard let ctx else { throw CUDAError.driver(call: "cuDevicePrimaryCtxRetain", code: 0, message: "null context") }
        context = ctx
        try makeCurrent()
    }

    /// The carveout the kernels prefer on a device of `computeCapability`: 44% on Hopper (100 KiB
    /// of the 228, which the driver rounds up to its 132 KiB shared / 124 KiB L1 configuration),
    /// nil elsewhere (not measured). `HIFC_CUDA_CARVEOUT` = 0-100 sets it, `default` leaves it to the driver.
    ///
    /// Why (our reading of the timings, not observed directly): left to itself the driver sizes
    /// each kernel's split by that kernel's needs, so a decode layer's kernels (products of one to
    /// four 33 KiB CTAs a multiprocessor, norms of almost none) get different splits, and a
    /// multiprocessor can switch only once it is empty; a kernel let in early (programmatic
    /// dependent launch) then finds few multiprocessors it may start on. One split for all: 8B
    /// decode steps 1.7% shorter at batches 4 and 8 on an H100, batches 1, 2, 16 and 32 within
    /// 0.2%; and without the norm kernels between products the batch-16 step is 4.1% shorter
    /// instead of 15% longer (bench/results/cuda-graphs-h200.md, 2026-12-07). At 32% (rounded to
    /// 100 KiB) the batch-16 gate|up product's four 33 KiB CTAs no longer fit a multiprocessor:
    /// 8% slower.
    static func sharedMemoryCarveout(computeCapability: (major: Int, minor: Int), environment: [String: String]) throws -> Int? {
        if environment["HIFC_CUDA_CARVEOUT"]?.lowercased() == "default" { return nil }
        if let percent = try wholeNumberSetting(
            "HIFC_CUDA_CARVEOUT", in: environment, range: 0...100, expected: "a percentage, 0 to 100, or default")
        {
            return percent
        }
        return computeCapability.major == 9 ? 44 : nil
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
