/// A weight tensor kept as GGML blocks, as a GGUF file stores it: the seam through which a
/// backend may take quantized weights as they are (`ComputeBackend.upload(_:QuantizedTensor)`)
/// instead of dequantized floats.
///
/// Rows are the last dimension, so a row is a whole number of blocks and row `r` starts at byte
/// `r * rowBytes`: rows can be stacked and reordered without decoding.
public struct QuantizedTensor: @unchecked Sendable {
    /// The block format.
    public let type: GGMLType
    /// Dimensions, outermost first (row-major, as `HostTensor`; GGUF lists them innermost first).
    public let shape: [Int]
    /// First byte of the blocks.
    public let bytes: UnsafeRawPointer
    /// What keeps `bytes` valid (the file mapping, or memory made by `stackingRows`).
    public let owner: AnyObject?
    /// A name for messages.
    public let name: String

    /// A view of `shape` elements of `type` at `bytes`; the row length must be whole blocks.
    public init(type: GGMLType, shape: [Int], bytes: UnsafeRawPointer, owner: AnyObject?, name: String) throws(QuantizationError) {
        guard let columns = shape.last, columns > 0, columns % type.blockElements == 0 else {
            throw .badShape(tensor: name, detail: "rows of \(shape.last ?? 0) elements are not whole \(type) blocks of \(type.blockElements)")
        }
        self.type = type
        self.shape = shape
        self.bytes = bytes
        self.owner = owner
        self.name = name
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Elements per row (the last dimension).
    public var columns: Int { shape.last ?? 1 }
    /// Number of rows (all dimensions but the last).
    public var rows: Int { count / columns }
    /// Bytes of one row.
    public var rowBytes: Int { columns / type.blockElements * type.blockBytes }
    /// Bytes of the whole tensor.
    public var byteCount: Int { rows * rowBytes }

    /// The tensor decoded into f32, in new memory, with the same shape.
    public func dequantized() throws(QuantizationError) -> HostTensor {
        let storage = HostBytes(count: count * 4)
        try GGMLDequantizer.dequantize(
            type, elements: count, from: bytes, into: storage.pointer.bindMemory(to: Float.self, capacity: count), tensor: name)
        return HostTensor(bytes: UnsafeRawPointer(storage.pointer), shape: shape, dtype: .float32, owner: storage, name: name)
    }

    /// The rows of `parts` (all of one type and row length) stacked into one tensor in new memory,
    /// still quantized; nil when the parts differ in type or row length. Q5_0 parts stack with
    /// Q8_0 ones as Q8_0 (the same values: llama.cpp's Q4_K_M files mix the two in q|k|v).
    public static func stackingRows(_ parts: [QuantizedTensor], name: String) -> QuantizedTensor? {
        var parts = parts
        if Set(parts.map(\.type)) == [.q5_0, .q8_0] {
            guard let widened = try? parts.map({ $0.type == .q5_0 ? try $0.widenedQ5_0ToQ8_0() : $0 }) else { return nil }
            parts = widened
        }
        guard let first = parts.first,
            parts.allSatisfy({ $0.type == first.type && $0.columns == first.columns && $0.shape.count == first.shape.count })
        else { return nil }
        let rows = parts.reduce(0) { $0 + $1.rows }
        let storage = HostBytes(count: rows * first.rowBytes)
        var offset = 0
        for p in parts {
            (storage.pointer + offset).copyMemory(from: p.bytes, byteCount: p.byteCount)
            offset += p.byteCount
        }
        let shape = first.shape.count == 1 ? [rows * first.columns] : [rows, first.columns]
        return try? QuantizedTensor(type: first.type, shape: shape, bytes: UnsafeRawPointer(storage.pointer), owner: storage, name: name)
    }

    /// A Q5_0 tensor as Q8_0, in new memory, with the same values: a Q5_0 element is
    /// `d · (q - 16)` with q in 0...31, so the same `d` and the int8 `q - 16` are a Q8_0 block.
    /// 34 bytes a block instead of 22: for stacking with Q8_0 rows (f32 would take 128).
    public func widenedQ5_0ToQ8_0() throws(QuantizationError) -> QuantizedTensor {
        guard type == .q5_0 else { throw .badShape(tensor: name, detail: "\(type) is not Q5_0") }
        let blocks = count / 32
        let storage = HostBytes(count: blocks * GGMLType.q8_0.blockBytes)
        for block in 0..<blocks {
            let q5 = bytes.assumingMemoryBound(to: UInt8.self) + block * GGMLType.q5_0.blockBytes
            let q8 = storage.pointer.assumingMemoryBound(to: UInt8.self) + block * GGMLType.q8_0.blockBytes
            q8[0] = q5[0]  // d, f16
            q8[1] = q5[1]
            for j in 0..<16 {
                let (low, high) = GGMLDequantizer.q5_0Quants(q5, j)
                q8[2 + j] = UInt8(bitPattern: Int8(low - 16))
                q8[2 + j + 16] = UInt8(bitPattern: Int8(high - 16))
            }
        }
        return try QuantizedTensor(type: .q8_0, shape: shape, bytes: UnsafeRawPointer(storage.pointer), owner: storage, name: name)
    }

    /// The tensor with its rows reordered, in new memory: row `i` of the result is row `order[i]`.
    public func permutingRows(_ order: [Int]) throws(QuantizationError) -> QuantizedTensor {
        guard order.count == rows, Set(order) == Set(0..<rows) else {
            throw .badShape(tensor: name, detail: "a row order of \(order.count) rows for a tensor of \(rows)")
        }
        let storage = permuteRows(bytes, rowBytes: rowBytes, order: order)
        return try QuantizedTensor(type: type, shape: shape, bytes: UnsafeRawPointer(storage.pointer), owner: storage, name: name)
    }
}

/// Rows of `rowBytes` bytes at `source`, copied in `order` into new memory.
func permuteRows(_ source: UnsafeRawPointer, rowBytes: Int, order: [Int]) -> HostBytes {
    let storage = HostBytes(count: order.count * rowBytes)
    for (i, row) in order.enumerated() {
        (storage.pointer + i * rowBytes).copyMemory(from: source + row * rowBytes, byteCount: rowBytes)
    }
    return storage
}
