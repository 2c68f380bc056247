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

    /// The NVRTC architecture flag for this device ("sm_89"; "sm_90a" on Hopper, whose
    /// architecture-specific instructions, warpgroup MMAs and `setmaxnreg`, the prefill attention's
    /// Hopper kernel uses: an sm_90a cubin runs on compute capability 9.0 only, this device).
    public var architecture: String {
        "sm_\(computeCapability.major)\(computeCapability.minor)" + (hasWarpgroupMMA ? "a" : "")
    }

    /// Whether the device has Hopper's warpgroup MMAs (`wgmma`): compute capability 9.0.
    public var hasWarpgroupMMA: Bool { computeCapability.major == 9 && computeCapability.minor == 0 }

    /// Whether the device runs thread block clusters (distributed shared memory): compute
    /// capability 9.0 and later.
    public var hasClusters: Bool { computeCapability.major >= 9 }

    public var description: String {
        let gib = Double(totalMemory) / Double(1 << 30)
        return "cuda:\(ordinal) \(name), compute capability \(computeCapability.major).\(computeCapability.minor), "
            + "\(String(format: "%.1f", gib)) GiB, \(multiprocessors) SMs"
    }
}
