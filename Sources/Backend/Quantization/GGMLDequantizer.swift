import Foundation

/// Why GGML blocks could not be turned into floats.
public enum QuantizationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A type `GGMLDequantizer` does not decode.
    case unsupportedType(GGMLType, tensor: String)
    /// An element count that is not a whole number of blocks, or rows that do not fit.
    case badShape(tensor: String, detail: String)

    public var description: String {
        switch self {
        case .unsupportedType(let type, let tensor):
            let supported = GGMLType.allCases.filter(\.isDequantizable).map(\.description).joined(separator: ", ")
            return "tensor '\(tensor)' is stored as \(type), which HiFC does not read (supported: \(supported))"
        case .badShape(let tensor, let detail): return "tensor '\(tensor)': \(detail)"
        }
    }
}

/// Decodes GGML blocks into f32: the float types (F32, F16, BF16), the legacy 32-element quants
/// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) and the 256-element k-quants (Q2_K ... Q6_K).
///
/// Byte layouts and formulas are ggml's (`dequantize_row_*` in ggml-quants.c); the arithmetic is
/// done in the same order (scale × quant − min, in f32) so that results equal ggml's and gguf-py's
/// bit for bit. Pure functions over memory, no I/O; `dequantize` spreads blocks over the cores.
public enum GGMLDequantizer {
    /// Decodes `elements` elements of `type` at `source` into `destination`, in parallel over
    /// blocks. `elements` must be whole blocks; `tensor` names the data in errors.
    public static func dequantize(
        _ type: GGMLType, elements: Int, from source: UnsafeRawPointer, into destination: UnsafeMutablePointer<Float>,
        tensor: String = "tensor"
    ) throws(QuantizationError) {
        guard type.isDequantizable else { throw .unsupportedType(type, tensor: tensor) }
        guard elements % type.blockElements == 0 else {
            throw .badShape(tensor: tensor, detail: "\(elements) elements are not whole \(type) blocks of \(type.blockElements)")
        }
        let blocks = elements / type.blockElements
        // About 64K elements a task: enough work to outweigh the dispatch.
        let minimumBlocks = max(1, (1 << 16) / type.blockElements)
        let source = UnsafeSendablePointer(source)
        let destination = UnsafeSendablePointer(UnsafeRawPointer(destination))
        parallelRanges(blocks, minimumPerTask: minimumBlocks) { range in
            decodeBlocks(
                type, range, from: source.pointer,
                into: UnsafeMutablePointer(mutating: destination.pointer.assumingMemoryBound(to: Float.self)))
        }
    }

    /// Decodes blocks `range` (in units of blocks) one after another on this thread.
    static func decodeBlocks(_ type: GGMLType, _ range: Range<Int>, from source: UnsafeRawPointer, into destination: UnsafeMutablePointer<Float>) {
        let bytes = source.assumingMemoryBound(to: UInt8.self)
        let n = type.blockElements
        let size = type.blockBytes
        if type == .f32 {
            UnsafeMutableRawPointer(destination + range.lowerBound).copyMemory(from: bytes + range.lowerBound * 4, byteCount: range.count * 4)
            return
        }
        for block in range {
            let b = bytes + block * size
            let y = destination + block * n
            switch type {
            case .f16: y[0] = half(b)
            case .bf16: y[0] = Float(bitPattern: UInt32(b[0]) << 16 | UInt32(b[1]) << 24)
            case .q4_0: q4_0(b, y)
            case .q4_1: q4_1(b, y)
            case .q5_0: q5_0(b, y)
            case .q5_1: q5_1(b, y)
            case .q8_0: q8_0(b, y)
            case .q2_K: q2_K(b, y)
            case .q3_K: q3_K(b, y)
            case .q4_K: q4_K(b, y)
            case .q5_K: q5_K(b, y)
            case .q6_K: q6_K(b, y)
            default: preconditionFailure("\(type) passed the isDequantizable check")
            }
        }
    }

    /// The little-endian f16 at `p`, widened.
    @inline(__always)
    static func half(_ p: UnsafePointer<UInt8>) -> Float {
        Float(Float16(bitPattern: UInt16(p[0]) | UInt16(p[1]) << 8))
    }

    // MARK: 32-element blocks

    /// `d`, then 16 bytes whose low nibbles are elements 0-15 and high nibbles 16-31, offset by 8.
    @inline(__always)
    static func q4_0(_ b: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b)
        let qs = b + 2
        for j in 0..<16 {
            y[j] = Float(Int(qs[j] & 0x0F) - 8) * d
            y[j + 16] = Float(Int(qs[j] >> 4) - 8) * d
        }
    }

    /// `d`, `m`, then nibbles as Q4_0 without the offset: `q·d + m`.
    @inline(__always)
    static func q4_1(_ b: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b)
        let m = half(b + 2)
        let qs = b + 4
        for j in 0..<16 {
            y[j] = d * Float(qs[j] & 0x0F) + m
            y[j + 16] = d * Float(qs[j] >> 4) + m
        }
    }

    /// The 32 fifth bits of a Q5 block (bit `i` belongs to element `i`).
    @inline(__always)
    static func highBits(_ p: UnsafePointer<UInt8>) -> UInt32 {
        UInt32(p[0]) | UInt32(p[1]) << 8 | UInt32(p[2]) << 16 | UInt32(p[3]) << 24
    }

    /// `d`, 32 fifth bits, nibbles as Q4_0; offset by 16.
    @inline(__always)
    static func q5_0(_ b: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b)
        for j in 0..<16 {
            let (low, high) = q5_0Quants(b, j)
            y[j] = d * Float(low - 16)
            y[j + 16] = d * Float(high - 16)
        }
    }

    /// The 5-bit quants (0...31) of elements `j` and `j + 16` (j < 16) of the Q5_0 block at `b`.
    @inline(__always)
    static func q5_0Quants(_ b: UnsafePointer<UInt8>, _ j: Int) -> (low: Int, high: Int) {
        let qh = highBits(b + 2)
        let qs = b + 6
        return (Int(qs[j] & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4, Int(qs[j] >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4)
    }

    /// `d`, `m`, 32 fifth bits, nibbles; `q·d + m`.
    @inline(__always)
    static func q5_1(_ b: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b)
        let m = half(b + 2)
        let qh = highBits(b + 4)
        let qs = b + 8
        for j in 0..<16 {
            let low = UInt32(qs[j] & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
            let high = UInt32(qs[j] >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = d * Float(low) + m
            y[j + 16] = d * Float(high) + m
        }
    }

    /// `d`, then 32 signed bytes.
    @inline(__always)
    static func q8_0(_ b: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b)
        let qs = b + 2
        for j in 0..<32 { y[j] = Float(Int8(bitPattern: qs[j])) * d }
    }

    // MARK: 256-element k-quant super-blocks

    /// 16 scale bytes (low nibble: scale, high: min, per 16 elements), 64 bytes of 2-bit quants
    /// (per 128 elements, 32 bytes holding four 2-bit planes), `d`, `dmin`.
    @inline(__always)
    static func q2_K(_ b: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let scales = b
        var q = b + 16
        let d = half(b + 80)
        let dmin = half(b + 82)
        var out = y
        var s = 0
        for _ in 0..<2 {
            for shift in stride(from: 0, to: 8, by: 2) {
                for part in 0..<2 {
                    let sc = scales[s]
                    s += 1
                    let dl = d * Float(sc & 0x0F)
                    let ml = dmin * Float(sc >> 4)
                    let quants = q + 16 * part
                    for l in 0..<16 { out[l] = dl * Float((quants[l] >> UInt8(shift)) & 3) - ml }
                    out += 16
                }
            }
            q += 32
        }
    }

    /// 32 bytes of third bits (set: no offset, clear: minus 4), 64 bytes of 2-bit quants, 12 bytes
    /// packing sixteen 6-bit scales (offset by 32), `d`.
    @inline(__always)
    static func q3_K(_ b: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let hmask = b
        var q = b + 32
        let packed = b + 96
        let d = half(b + 108)
        var out = y
        var s = 0
        var mask: UInt8 = 1
        for _ in 0..<2 {
            for shift in stride(from: 0, to: 8, by: 2) {
                for part in 0..<2 {
                    let dl = d * Float(q3Scale(s, packed))
                    s += 1
                    let quants = q + 16 * part
                    let high = hmask + 16 * part
                    for l in 0..<16 {
                        let value = Int8((quants[l] >> UInt8(shift)) & 3) - (high[l] & mask != 0 ? 0 : 4)
                        out[l] = dl * Float(value)
                    }
                    out += 16
                }
                mask <<= 1
            }
            q += 32
        }
    }

    /// Scale `i` (of 16) of a Q3_K block: its low 4 bits are a nibble of byte `i % 8` (the low one
    /// for i < 8), its high 2 bits sit in byte `8 + i % 4` at bit `2·(i / 4)`; offset by 32.
    @inline(__always)
    static func q3Scale(_ i: Int, _ packed: UnsafePointer<UInt8>) -> Int8 {
        let low = i < 8 ? packed[i] & 0x0F : packed[i - 8] >> 4
        let high = (packed[8 + i % 4] >> UInt8(2 * (i / 4))) & 0x03
        return Int8(bitPattern: low | high << 4) &- 32
    }

    /// Scale and min `j` (of 8, 6 bits each) of the 12 packed bytes of a Q4_K or Q5_K block.
    @inline(__always)
    static func scaleAndMin(_ j: Int, _ p: UnsafePointer<UInt8>) -> (scale: UInt8, min: UInt8) {
        if j < 4 { return (p[j] & 63, p[j + 4] & 63) }
        return ((p[j + 4] & 0x0F) | (p[j - 4] >> 6) << 4, (p[j + 4] >> 4) | (p[j] >> 6) << 4)
    }

    /// `d`, `dmin`, 12 bytes of 6-bit scales and mins (one pair per 32 elements), 128 bytes of
    /// nibbles (per 64 elements: low nibbles first 32, high nibbles next 32).
    @inline(__always)
    static func q4_K(_ b: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b)
        let dmin = half(b + 2)
        let packed = b + 4
        var q = b + 16
        var out = y
        for pair in 0..<4 {
            let (s1, m1) = scaleAndMin(2 * pair, packed)
            let (s2, m2) = scaleAndMin(2 * pair + 1, packed)
            let d1 = d * Float(s1)
            let min1 = dmin * Float(m1)
            let d2 = d * Float(s2)
            let min2 = dmin * Float(m2)
            for l in 0..<32 { out[l] = d1 * Float(q[l] & 0x0F) - min1 }
            for l in 0..<32 { out[l + 32] = d2 * Float(q[l] >> 4) - min2 }
            out += 64
            q += 32
        }
    }

    /// Q4_K's layout plus 32 bytes of fifth bits (bit `2·pair` for the low nibbles of a 64-element
    /// group, `2·pair + 1` for the high ones).
    @inline(__always)
    static func q5_K(_ b: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b)
        let dmin = half(b + 2)
        let packed = b + 4
        let qh = b + 16
        var ql = b + 48
        var out = y
        for pair in 0..<4 {
            let (s1, m1) = scaleAndMin(2 * pair, packed)
            let (s2, m2) = scaleAndMin(2 * pair + 1, packed)
            let d1 = d * Float(s1)
            let min1 = dmin * Float(m1)
            let d2 = d * Float(s2)
            let min2 = dmin * Float(m2)
            let lowBit = UInt8(1) << UInt8(2 * pair)
            let highBit = UInt8(2) << UInt8(2 * pair)
            for l in 0..<32 { out[l] = d1 * Float((ql[l] & 0x0F) + (qh[l] & lowBit != 0 ? 16 : 0)) - min1 }
            for l in 0..<32 { out[l + 32] = d2 * Float((ql[l] >> 4) + (qh[l] & highBit != 0 ? 16 : 0)) - min2 }
            out += 64
            ql += 32
        }
    }

    /// 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 signed 8-bit scales (one per 16
    /// elements), `d`; quants offset by 32.
    @inline(__always)
    static func q6_K(_ b: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        var ql = b
        var qh = b + 128
        var sc = UnsafeRawPointer(b + 192).assumingMemoryBound(to: Int8.self)
        let d = half(b + 208)
        var out = y
        for _ in 0..<2 {
            for l in 0..<32 {
                let s = l / 16
                let q1 = Int8(bitPattern: (ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4) - 32
                let q2 = Int8(bitPattern: (ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) - 32
                let q3 = Int8(bitPattern: (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32
                let q4 = Int8(bitPattern: (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32
                out[l] = d * Float(sc[s]) * Float(q1)
                out[l + 32] = d * Float(sc[s + 2]) * Float(q2)
                out[l + 64] = d * Float(sc[s + 4]) * Float(q3)
                out[l + 96] = d * Float(sc[s + 6]) * Float(q4)
            }
            out += 128
            ql += 64
            qh += 32
            sc += 8
        }
    }
}

/// A pointer handed to the threads of `parallelRanges`, each of which touches its own blocks.
struct UnsafeSendablePointer: @unchecked Sendable {
    let pointer: UnsafeRawPointer
    init(_ pointer: UnsafeRawPointer) { self.pointer = pointer }
}
