/// The memory behind a `DeviceTensor`, owned by the backend that made it: host memory for the CPU
/// backend, a device allocation for a GPU backend. Only that backend looks inside.
public protocol TensorStorage: AnyObject, Sendable {
    /// Bytes of a tensor kept in a packed format (a quantized weight's blocks), whose dtype is
    /// that of its products' results; nil for a plain array of `dtype` elements.
    var packedBytes: Int? { get }
}

extension TensorStorage {
    public var packedBytes: Int? { nil }
}

/// A tensor living where its backend computes, so that a chain of ops never visits the host.
///
/// Shapes are row-major, outermost first; activations are `[tokens, features]`. The dtype is the
/// backend's storage choice (the CPU backend keeps f32, a GPU backend bf16).
public struct DeviceTensor: Sendable {
    /// The backend's handle to the memory.
    public let storage: any TensorStorage
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// Element type as stored.
    public let dtype: TensorDType

    /// A tensor of `shape` in `storage`.
    public init(storage: any TensorStorage, shape: [Int], dtype: TensorDType) {
        self.storage = storage
        self.shape = shape
        self.dtype = dtype
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Rows of a 2-D tensor (its first dimension).
    public var rows: Int { shape.first ?? 1 }
    /// Elements per row of a 2-D tensor (its last dimension).
    public var columns: Int { shape.last ?? 1 }
    /// Bytes the tensor takes where it lives: its packed blocks, or `count` elements of `dtype`.
    public var bytes: Int { storage.packedBytes ?? count * dtype.size }
}
