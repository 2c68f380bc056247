/// A read-only view of tensor bytes in host memory, typically inside a memory-mapped safetensors
/// file, as handed to `ComputeBackend.upload`.
///
/// `owner` keeps the memory alive (the mapping) for as long as the view, or a device tensor that
/// a backend made from it without copying, exists.
public struct HostTensor: @unchecked Sendable {
    /// First byte of the data, row-major.
    public let bytes: UnsafeRawPointer
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// Element type of the bytes.
    public let dtype: TensorDType
    /// What keeps `bytes` valid (a file mapping, an array box); nil when the caller guarantees it.
    public let owner: AnyObject?
    /// A name for messages (the safetensors tensor name).
    public let name: String

    /// A view of `shape` elements of `dtype` at `bytes`.
    public init(bytes: UnsafeRawPointer, shape: [Int], dtype: TensorDType, owner: AnyObject?, name: String) {
        self.bytes = bytes
        self.shape = shape
        self.dtype = dtype
        self.owner = owner
        self.name = name
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }

    /// Converts element `i` to Float.
    @inline(__always)
    public func float(at i: Int) -> Float {
        switch dtype {
        case .float32: return bytes.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
        case .bfloat16:
            let raw = bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)
            return Float(bitPattern: UInt32(raw) << 16)
        case .float16:
            let raw = bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)
            return Float(Float16(bitPattern: raw))
        }
    }

    /// Converts all elements to f32 into `destination`, which holds at least `count` floats.
    public func convert(into destination: UnsafeMutablePointer<Float>) {
        let n = count
        switch dtype {
        case .float32:
            UnsafeMutableRawPointer(destination).copyMemory(from: bytes, byteCount: n * 4)
        case .bfloat16:
            for i in 0..<n {
                let raw = bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)
                destination[i] = Float(bitPattern: UInt32(raw) << 16)
            }
        case .float16:
            for i in 0..<n {
                let raw = bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)
                destination[i] = Float(Float16(bitPattern: raw))
            }
        }
    }
}

extension HostTensor {
    /// The rows of `parts` stacked into one `[Σ rows, columns]` tensor (1-D parts: one vector)
    /// in newly owned memory: how a model fuses projections that read the same input (q/k/v,
    /// gate/up) into one product. Parts of different dtypes are stacked as f32.
    public static func stackingRows(_ parts: [HostTensor], name: String) throws(BackendError) -> HostTensor {
        guard let first = parts.first else { throw .shapeMismatch(op: "stackingRows", detail: "no tensors to stack for \(name)") }
        let vectors = first.shape.count == 1
        for p in parts where vectors ? p.shape.count != 1 : (p.shape.count != 2 || p.shape[1] != first.shape[1]) {
            throw .shapeMismatch(op: "stackingRows", detail: "\(p.name) \(p.shape) cannot stack with \(first.name) \(first.shape)")
        }
        let total = parts.reduce(0) { $0 + $1.count }
        let shape = vectors ? [total] : [total / first.shape[1], first.shape[1]]
        let dtype = parts.allSatisfy({ $0.dtype == first.dtype }) ? first.dtype : .float32
        let storage = HostBytes(count: total * dtype.size)
        var offset = 0
        for p in parts {
            if p.dtype == dtype {
                (storage.pointer + offset).copyMemory(from: p.bytes, byteCount: p.count * dtype.size)
            } else {
                p.convert(into: (storage.pointer + offset).bindMemory(to: Float.self, capacity: p.count))
            }
            offset += p.count * dtype.size
        }
        return HostTensor(bytes: UnsafeRawPointer(storage.pointer), shape: shape, dtype: dtype, owner: storage, name: name)
    }
}

extension HostTensor {
    /// `values` (`shape.reduce(1, *)` of them) as an f32 tensor in newly owned memory: a weight a
    /// model derives at load (Gemma's `1 + w` norm scales).
    public static func float32(_ values: [Float], shape: [Int], name: String) -> HostTensor {
        precondition(shape.reduce(1, *) == values.count, "\(name): \(values.count) values for shape \(shape)")
        let storage = HostBytes(count: values.count * 4)
        values.withUnsafeBytes { storage.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return HostTensor(bytes: UnsafeRawPointer(storage.pointer), shape: shape, dtype: .float32, owner: storage, name: name)
    }

    /// Every element as f32, in a new array.
    public func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            convert(into: buffer.baseAddress!)
            initialized = count
        }
    }
}

/// Host memory owned by the tensor views made from it (see `HostTensor.owner`).
final class HostBytes: @unchecked Sendable {
    // Written once while the owning tensor is built, read-only afterwards.
    let pointer: UnsafeMutableRawPointer

    init(count: Int) { pointer = .allocate(byteCount: max(1, count), alignment: 64) }
    deinit { pointer.deallocate() }
}
