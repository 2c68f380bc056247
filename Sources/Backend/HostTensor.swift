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
