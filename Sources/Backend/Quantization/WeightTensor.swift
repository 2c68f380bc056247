/// A model weight as a weight file holds it: plain floats (safetensors, GGUF F32/F16/BF16) or GGML
/// blocks (GGUF quantized types). `ComputeBackend.upload(_:WeightTensor)` hands each kind to the
/// backend's matching upload.
public enum WeightTensor: Sendable {
    /// Floats in a `TensorDType`.
    case dense(HostTensor)
    /// GGML blocks.
    case quantized(QuantizedTensor)
    /// The rows of GGML block tensors of different formats, one after another (see `stackingRows`).
    case stackedQuantized([QuantizedTensor])

    /// Dimensions, outermost first.
    public var shape: [Int] {
        switch self {
        case .dense(let t): return t.shape
        case .quantized(let t): return t.shape
        case .stackedQuantized(let parts): return [parts.reduce(0) { $0 + $1.rows }, parts.first?.columns ?? 0]
        }
    }

    /// The tensor's name, for messages.
    public var name: String {
        switch self {
        case .dense(let t): return t.name
        case .quantized(let t): return t.name
        case .stackedQuantized(let parts): return parts.map(\.name).joined(separator: "|")
        }
    }

    /// The tensor as floats: itself when dense, decoded to f32 when quantized.
    public func dense() throws -> HostTensor {
        switch self {
        case .dense(let t): return t
        case .quantized(let t): return try t.dequantized()
        case .stackedQuantized(let parts): return try HostTensor.stackingRows(try parts.map { try $0.dequantized() }, name: name)
        }
    }

    /// The tensor with its rows reordered (row `i` of the result is row `order[i]`), in new
    /// memory; quantized rows are moved without decoding.
    public func permutingRows(_ order: [Int]) throws -> WeightTensor {
        switch self {
        case .quantized(let t): return .quantized(try t.permutingRows(order))
        case .stackedQuantized: return try WeightTensor.dense(try dense()).permutingRows(order)
        case .dense(let t):
            let columns = t.shape.count == 1 ? 1 : t.shape.last ?? 1
            guard order.count * columns == t.count, Set(order) == Set(0..<order.count) else {
                throw QuantizationError.badShape(tensor: t.name, detail: "a row order of \(order.count) rows for shape \(t.shape)")
            }
            let storage = permuteRows(t.bytes, rowBytes: columns * t.dtype.size, order: order)
            return .dense(HostTensor(bytes: UnsafeRawPointer(storage.pointer), shape: t.shape, dtype: t.dtype, owner: storage, name: t.name))
        }
    }

    /// The rows of `parts` stacked into one `[Σ rows, columns]` tensor (1-D parts: one vector):
    /// still quantized when every part is of one GGML type and row length, kept as its parts when
    /// quantized matrices of one row length differ in type, otherwise as floats (see
    /// `HostTensor.stackingRows`).
    public static func stackingRows(_ parts: [WeightTensor], name: String) throws -> WeightTensor {
        let quantized = parts.compactMap { if case .quantized(let t) = $0 { t } else { nil } }
        if quantized.count == parts.count, let stacked = QuantizedTensor.stackingRows(quantized, name: name) {
            return .quantized(stacked)
        }
        if quantized.count == parts.count, let first = quantized.first,
            quantized.allSatisfy({ $0.shape.count == 2 && $0.columns == first.columns })
        {
            return .stackedQuantized(quantized)
        }
        return .dense(try HostTensor.stackingRows(try parts.map { try $0.dense() }, name: name))
    }
}

extension ComputeBackend {
    /// Uploads a weight through the upload for its kind.
    public func upload(_ weight: WeightTensor) throws -> DeviceTensor {
        switch weight {
        case .dense(let t): return try upload(t)
        case .quantized(let t): return try upload(t)
        case .stackedQuantized(let parts): return try upload(stackedRows: parts)
        }
    }
}
