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

/// A skinny GEMM residual form's `normed` rows (bf16), each still to be multiplied by its norm
/// factor (`CUDAKernels.skinnyResidualLinear`): the skinny products take them with the row scale;
/// for any other op `CUDABackend.whole` applies it first.
final class CUDARowScaledStorage: TensorStorage, @unchecked Sendable {
    // Immutable, like CUDAStorage.
    let values: DeviceTensor
    let squares: DeviceTensor
    let rowScale: SkinnyRowScale

    init(values: DeviceTensor, squares: DeviceTensor, rowScale: SkinnyRowScale) {
        self.values = values
        self.squares = squares
        self.rowScale = rowScale
    }
}

extension DeviceTensor {
    /// The device address of a tensor made by the CUDA backend.
    func cudaAddress(_ op: String) throws -> CUdeviceptr {
        guard let s = storage as? CUDAStorage else {
            if storage is CUDARowScaledStorage {
                throw BackendError.shapeMismatch(op: op, detail: "rows still to be scaled by their norm factor (CUDABackend.whole makes them whole)")
            }
            throw BackendError.foreignObject("a tensor passed to \(op)")
        }
        return s.address
    }
}
