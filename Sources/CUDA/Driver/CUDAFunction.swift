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
        try optInToSharedMemory(sharedBytes)
        var blocks: Int32 = 0
        try device.api.check(
            device.api.cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, handle, Int32(threads), sharedBytes),
            "cuOccupancyMaxActiveBlocksPerMultiprocessor(\(name), \(threads) threads)")
        return Int(blocks)
    }

    /// CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT.
    static let preferredCarveoutAttribute: Int32 = 9

    /// Beyond 48 KiB of dynamic shared memory a block must opt in
    /// (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), for a launch and for the driver's
    /// occupancy figure alike (CUTLASS sets it before the occupancy query for this reason,
    /// NVIDIA/cutlass#532). Such a kernel (the attention kernels) goes back to the driver's own
    /// carveout (-1): the device's preferred one could leave room for fewer of its blocks.
    private func optInToSharedMemory(_ sharedBytes: Int) throws {
        guard sharedBytes > 48 * 1024 else { return }
        let api = module.device.api
        try api.check(api.cuFuncSetAttribute(handle, 8, Int32(sharedBytes)), "cuFuncSetAttribute(\(name))")
        if module.device.preferredCarveout != nil {
            try api.check(api.cuFuncSetAttribute(handle, Self.preferredCarveoutAttribute, -1), "cuFuncSetAttribute(\(name), carveout)")
        }
    }

    /// Launches the kernel on `stream` with `grid` blocks of `block` threads.
    public func launch(
        grid: (Int, Int, Int), block: (Int, Int, Int), sharedBytes: Int = 0,
        stream: CUDAStream, arguments: KernelArguments
    ) throws {
        let device = module.device
        try device.makeCurrent()
        try optInToSharedMemory(sharedBytes)
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
