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
    /// Peak memory bandwidth, bytes per second: the memory clock's two transfers a cycle over the
    /// bus width (H100 SXM 3.35e12, H200 4.9e12); 0 where the driver does not say.
    public var memoryBandwidth: Double = 0

    /// Peak memory bandwidth, bytes per second, of memory clocked at `memoryClockKHz` (as the driver
    /// reports it) on a bus of `busBits`: two transfers a cycle.
    public static func peakBandwidth(memoryClockKHz: Int, busBits: Int) -> Double {
        2 * Double(memoryClockKHz) * 1000 * Double(busBits) / 8
    }

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
        // A driver that reports no memory clock leaves the bandwidth at 0: say so rather than "0.00 TB/s".
        let bandwidth = memoryBandwidth > 0 ? "\(String(format: "%.2f", memoryBandwidth / 1e12)) TB/s" : "unreported"
        return "cuda:\(ordinal) \(name), compute capability \(computeCapability.major).\(computeCapability.minor), "
            + "\(String(format: "%.1f", gib)) GiB, \(multiprocessors) SMs, \(bandwidth) peak memory bandwidth"
    }
}
