import Backend

/// The device memory behind a CUDA `DeviceTensor`; goes back to the backend's cache when the
/// last tensor using it goes.
final class CUDAStorage: TensorStorage, @unchecked Sendable {
    // Immutable; the memory's contents are ordered by the compute stream.
    let buffer: DeviceBuffer
    private let cache: DeviceMemoryCache?

    init(buffer: DeviceBuffer, cache: DeviceMemoryCache?) {
        self.buffer = buffer
        self.cache = cache
    }

    deinit { cache?.give(buffer) }

    var address: CUdeviceptr { buffer.address }
}

extension DeviceTensor {
    /// The device address of a tensor made by the CUDA backend.
    func cudaAddress(_ op: String) throws -> CUdeviceptr {
        guard let s = storage as? CUDAStorage else { throw BackendError.foreignObject("a tensor passed to \(op)") }
        return s.address
    }
}
