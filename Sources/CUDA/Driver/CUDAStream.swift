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
