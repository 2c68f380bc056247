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
