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
