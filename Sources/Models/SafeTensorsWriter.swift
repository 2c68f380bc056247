import Backend
import Foundation

/// Writes a `.safetensors` file tensor by tensor, so a model far larger than memory can be written.
public struct SafeTensorsWriter {
    /// A tensor to write: its name, shape, and a function that fills its values in row-major
    /// order, a slice at a time (`fill(buffer, firstElement)`).
    public struct Tensor {
        public var name: String
        public var shape: [Int]
        public var fill: (UnsafeMutableBufferPointer<Float>, Int) -> Void

        public init(name: String, shape: [Int], fill: @escaping (UnsafeMutableBufferPointer<Float>, Int) -> Void) {
            self.name = name
            self.shape = shape
            self.fill = fill
        }
    }

    /// Writes `tensors` in `dtype` to `path`.
    public static func write(_ tensors: [Tensor], dtype: TensorDType, to path: String) throws(ModelError) {
        var header: [String: Any] = ["__metadata__": ["format": "pt"]]
        var offset = 0
        for tensor in tensors {
            let bytes = tensor.shape.reduce(1, *) * dtype.size
            header[tensor.name] =
                [
                    "dtype": dtype.rawValue, "shape": tensor.shape, "data_offsets": [offset, offset + bytes],
                ] as [String: Any]
            offset += bytes
        }
        guard var json = try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]) else {
            throw .unreadable(path, reason: "could not encode the safetensors header")
        }
        // Pad the header so the data starts 8-byte aligned, as the reference writer does.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let handle = FileHandle(forWritingAtPath: path)
        else {
            throw .unreadable(path, reason: "cannot create the file")
        }
        defer { try? handle.close() }
        do {
            var length = UInt64(json.count).littleEndian
            try handle.write(contentsOf: Data(bytes: &length, count: 8))
            try handle.write(contentsOf: json)
            let chunk = 1 << 20
            let floats = UnsafeMutableBufferPointer<Float>.allocate(capacity: chunk)
            defer { floats.deallocate() }
            var out = Data(count: chunk * dtype.size)
            for tensor in tensors {
                let total = tensor.shape.reduce(1, *)
                var start = 0
                while start < total {
                    let n = min(chunk, total - start)
                    let slice = UnsafeMutableBufferPointer(rebasing: floats[0..<n])
                    tensor.fill(slice, start)
                    out.withUnsafeMutableBytes { raw in
                        switch dtype {
                        case .float32:
                            raw.baseAddress!.copyMemory(from: slice.baseAddress!, byteCount: n * 4)
                        case .bfloat16:
                            for i in 0..<n { raw.storeBytes(of: bfloat16Bits(slice[i]), toByteOffset: i * 2, as: UInt16.self) }
                        case .float16:
                            for i in 0..<n { raw.storeBytes(of: Float16(slice[i]).bitPattern, toByteOffset: i * 2, as: UInt16.self) }
                        }
                    }
                    try handle.write(contentsOf: out.prefix(n * dtype.size))
                    start += n
                }
            }
        } catch {
            throw .unreadable(path, reason: "write failed: \(error)")
        }
    }

    /// The bfloat16 nearest to `x` (round to nearest even), as bits.
    static func bfloat16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return 0x7FC0 }
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16((bits &+ rounding) >> 16)
    }
}
