import CPUKernels
import HiFCCore
import XCTest

@testable import Backend

/// The CPU backend's FP8 KV cache: the E4M3 codes, the quantizing KV write, and attention reading
/// fp8 blocks directly, against the f32 pool on fresh random inputs each run.
final class FP8KVCacheTests: XCTestCase {
    private let heads = 4
    private let layout = KVBlockLayout(layers: 2, kvHeads: 2, headDim: 64, blockTokens: 16, dtype: .float32)
    private var fp8Layout: KVBlockLayout {
        var layout = layout
        layout.dtype = .fp8e4m3
        return layout
    }

    func testE4M3CodesRoundToNearestEvenAndSaturate() {
        XCTAssertEqual(hifc_fp8_e4m3_from_float(1), 0x38)
        XCTAssertEqual(hifc_fp8_e4m3_from_float(-2), 0xc0)
        XCTAssertEqual(hifc_fp8_e4m3_from_float(448), 0x7e)
        XCTAssertEqual(hifc_fp8_e4m3_from_float(1e6), 0x7e, "saturates, never NaN")
        XCTAssertEqual(hifc_fp8_e4m3_from_float(-1e6), 0xfe)
        XCTAssertEqual(hifc_fp8_e4m3_from_float(0x1p-9), 0x01, "the smallest subnormal")
        XCTAssertEqual(hifc_fp8_e4m3_from_float(0x1p-10), 0x00, "a tie goes to the even code")
        XCTAssertEqual(hifc_fp8_e4m3_from_float(0x1.8p-9), 0x02)
        XCTAssertEqual(hifc_fp8_e4m3_from_float(1.0625), 0x38)
        XCTAssertEqual(hifc_fp8_e4m3_from_float(1.1875), 0x3a)
        XCTAssertEqual(hifc_fp8_e4m3_to_float(0x7e), 448)
        XCTAssertEqual(hifc_fp8_e4m3_to_float(0x08), 0x1p-6)
        XCTAssertTrue(hifc_fp8_e4m3_to_float(0x7f).isNaN)
        for byte in 0...255 where byte & 0x7f != 0x7f {
            XCTAssertEqual(hifc_fp8_e4m3_from_float(hifc_fp8_e4m3_to_float(UInt8(byte))), UInt8(byte), "code \(byte)")
            XCTAssertEqual(FP8E4M3.decode(UInt8(byte)), hifc_fp8_e4m3_to_float(UInt8(byte)), "the host reference decodes code \(byte) alike")
        }
        for bits in stride(from: UInt32(0), to: UInt32.max, by: 4099) where !Float(bitPattern: bits).isNaN {
            let x = Float(bitPattern: bits)  // every sign, exponent and rounding case, infinities included
            XCTAssertEqual(hifc_fp8_e4m3_from_float(x), FP8E4M3.encode(x), "\(x) (bits \(String(bits, radix: 16)))")
        }
        for _ in 0..<10_000 {
            let x = Float.random(in: -448...448) * (Bool.random() ? 1 : 0x1p-8)
            let error = abs(hifc_fp8_e4m3_to_float(hifc_fp8_e4m3_from_float(x)) - x)
            XCTAssertLessThanOrEqual(error, abs(x) / 16 + 0x1p-10, "\(x)")
            XCTAssertEqual(FP8E4M3.encode(x), hifc_fp8_e4m3_from_float(x), "the host reference encodes \(x) alike")
        }
    }

    /// K and V of a 40-token and a 300-token prefill, then a decode of the second: fp8 attention
    /// equals attention over the dequantized values (it reads what was stored, scales included)
    /// and stays within E4M3's rounding of the f32 pool's.
    func testFP8AttentionReadsItsBlocksAndStaysCloseToTheF32Pool() throws {
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2))
        let f32 = try backend.makeKVCachePool(layout: layout, blocks: 25)
        let fp8 = try backend.makeKVCachePool(layout: fp8Layout, blocks: 25)
        let prefill = try backend.prepare(
            try StepBatch.make(
                chunks: [
                    (tokens: Array(repeating: 0, count: 40), startPosition: 0, blockTable: [3, 0, 5], wantsLogits: true),
                    (tokens: Array(repeating: 0, count: 300), startPosition: 0, blockTable: (6..<25).map { Int32($0) }, wantsLogits: true),
                ], blockTokens: 16))
        let decode = try backend.prepare(
            try StepBatch.make(
                chunks: [(tokens: [0], startPosition: 300, blockTable: (6..<25).map { Int32($0) }, wantsLogits: true)], blockTokens: 16))
        var outputs: [[Float]] = []  // f32, fp8, dequantized: prefill layer 1, then decode layer 1
        for step in [prefill, decode] {
            let rows = step.batch.tokenCount
            let k = try backend.uploadFloat32(randomHeads(rows: rows, decades: -1...0.5), shape: [rows, layout.tokenElements])
            let v = try backend.uploadFloat32(randomHeads(rows: rows, decades: -2...2), shape: [rows, layout.tokenElements])
            let q = try backend.uploadFloat32((0..<rows * heads * 64).map { _ in Float.random(in: -1...1) }, shape: [rows, heads * 64])
            let dequantized = try backend.makeKVCachePool(layout: layout, blocks: 25)
            for pool in [f32, fp8] { try backend.writeKV(k: k, v: v, layer: 1, pool: pool, step: step) }
            try copyDequantized(fp8, into: dequantized)
            for pool in [f32, fp8, dequantized] {
                outputs.append(try backend.download(try backend.pagedAttention(q: q, heads: heads, layer: 1, scale: 0.125, pool: pool, step: step)))
            }
        }
        for (name, base) in [("prefill", 0), ("decode", 3)] {
            let (exact, quantized, reference) = (outputs[base], outputs[base + 1], outputs[base + 2])
            XCTAssertLessThanOrEqual(maxRelativeError(quantized, reference), 1e-6, "\(name): fp8 attention reads the stored codes and scales")
            // E4M3 keeps 3 mantissa bits: each stored value is off by up to 2^-4 (6.25%) of itself,
            // and K's errors move the softmax weights too. Fresh random inputs reached 5.6% here,
            // so the bound is 10%: a wrong scale or code is off by far more.
            let error = maxRelativeError(quantized, exact)
            XCTAssertLessThan(error, 0.1, "\(name): fp8 against f32 KV")
            XCTAssertGreaterThan(error, 0, "\(name): the fp8 pool is quantized")
        }
    }

    func testEveryInstructionSetAgreesOnFP8Attention() throws {
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2))
        let pool = try backend.makeKVCachePool(layout: fp8Layout, blocks: 20)
        let step = try backend.prepare(
            try StepBatch.make(
                chunks: [
                    (tokens: Array(repeating: 0, count: 5), startPosition: 0, blockTable: [0], wantsLogits: true),
                    (tokens: Array(repeating: 0, count: 290), startPosition: 0, blockTable: (1..<20).map { Int32($0) }, wantsLogits: true),
                ], blockTokens: 16))
        let rows = step.batch.tokenCount
        let k = try backend.uploadFloat32(randomHeads(rows: rows, decades: -1...0.5), shape: [rows, layout.tokenElements])
        let v = try backend.uploadFloat32(randomHeads(rows: rows, decades: -2...2), shape: [rows, layout.tokenElements])
        try backend.writeKV(k: k, v: v, layer: 0, pool: pool, step: step)
        let q = try backend.uploadFloat32((0..<rows * heads * 64).map { _ in Float.random(in: -1...1) }, shape: [rows, heads * 64])
        let sets = [HIFC_ISA_PORTABLE, HIFC_ISA_AVX2, HIFC_ISA_AVX512, HIFC_ISA_AMX].filter { $0.rawValue <= hifc_isa_detected().rawValue }
        defer { hifc_isa_select(hifc_isa_detected()) }
        let results = try sets.map { isa in
            hifc_isa_select(isa)
            return try backend.download(try backend.pagedAttention(q: q, heads: heads, layer: 0, scale: 0.125, pool: pool, step: step))
        }
        for (isa, result) in zip(sets, results).dropFirst() {
            XCTAssertLessThanOrEqual(maxRelativeError(result, results[0]), 1e-5, String(cString: hifc_isa_name(isa)))
        }
    }

    /// A NaN value written into an fp8 pool is stored as E4M3's NaN code and read back as NaN by
    /// every instruction set, as f32 and bf16 pools and the GPU do: the heads that attend to it
    /// give NaN (a finite stand-in, 480 before, would hide the fault), the other KV head's do not.
    func testANaNInAnFP8PoolReadsAsNaNOnEveryInstructionSet() throws {
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2))
        let pool = try backend.makeKVCachePool(layout: fp8Layout, blocks: 2)
        let step = try backend.prepare(
            try StepBatch.make(
                chunks: [(tokens: Array(repeating: 0, count: 20), startPosition: 0, blockTable: [0, 1], wantsLogits: true)], blockTokens: 16))
        var values = randomHeads(rows: 20, decades: -1...1)
        values[7 * layout.tokenElements + 5] = .nan  // token 7, KV head 0
        let k = try backend.uploadFloat32(randomHeads(rows: 20, decades: -1...0.5), shape: [20, layout.tokenElements])
        let v = try backend.uploadFloat32(values, shape: [20, layout.tokenElements])
        try backend.writeKV(k: k, v: v, layer: 0, pool: pool, step: step)
        let q = try backend.uploadFloat32((0..<20 * heads * 64).map { _ in Float.random(in: -1...1) }, shape: [20, heads * 64])
        let sets = [HIFC_ISA_PORTABLE, HIFC_ISA_AVX2, HIFC_ISA_AVX512, HIFC_ISA_AMX].filter { $0.rawValue <= hifc_isa_detected().rawValue }
        defer { hifc_isa_select(hifc_isa_detected()) }
        for isa in sets {
            hifc_isa_select(isa)
            let out = try backend.download(try backend.pagedAttention(q: q, heads: heads, layer: 0, scale: 0.125, pool: pool, step: step))
            let name = String(cString: hifc_isa_name(isa))
            // Heads 0 and 1 read KV head 0, heads 2 and 3 KV head 1; rows before 7 do not see token 7.
            let nans = out.indices.filter { out[$0].isNaN }
            // Element 5 of heads 0 and 1 in every row from token 7 on, and nothing else.
            let expected = (7..<20).flatMap { row in [0, 1].map { head in (row * heads + head) * 64 + 5 } }
            XCTAssertEqual(nans, expected, "\(name)")
        }
    }

    /// The fused rotary + KV write quantizes exactly as the unfused write of the rotated keys.
    func testFusedAttentionInputsStoreTheSameFP8BytesAsWriteKV() throws {
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2))
        let step = try backend.prepare(
            try StepBatch.make(
                chunks: [(tokens: Array(repeating: 0, count: 20), startPosition: 7, blockTable: [1, 0], wantsLogits: true)], blockTokens: 16))
        let width = (heads + 2 * layout.kvHeads) * 64
        let qkv = try backend.uploadFloat32((0..<20 * width).map { _ in Float.random(in: -3...3) }, shape: [20, width])
        let frequencies = try backend.uploadFloat32((0..<32).map { powf(10_000, -Float($0) / 32) }, shape: [32])
        let fused = try backend.makeKVCachePool(layout: fp8Layout, blocks: 2)
        _ = try backend.attentionInputs(qkv: qkv, heads: heads, headDim: 64, inverseFrequencies: frequencies, layer: 1, pool: fused, step: step)
        let columns = try backend.download(qkv)
        func slice(_ start: Int, _ count: Int) throws -> DeviceTensor {
            let values = (0..<20).flatMap { row in columns[(row * width + start)..<(row * width + start + count)] }
            return try backend.uploadFloat32(values, shape: [20, count])
        }
        let kvWidth = layout.tokenElements
        let rotated = try backend.rotary(
            q: try slice(0, heads * 64), k: try slice(heads * 64, kvWidth), headDim: 64, inverseFrequencies: frequencies, step: step)
        let separate = try backend.makeKVCachePool(layout: fp8Layout, blocks: 2)
        try backend.writeKV(k: rotated.k, v: try slice(heads * 64 + kvWidth, kvWidth), layer: 1, pool: separate, step: step)
        XCTAssertEqual(try blockBytes(fused), try blockBytes(separate))
    }

    /// Each head's scale is the best of `max |x| / 448 · 2^(j/8)`, j = 0...7: a head never has
    /// more squared error than under `max |x| / 448`, and Gaussian heads have far less in all.
    func testEachHeadTakesTheScaleOfLeastErrorNeverWorseThanItsLargestValuesOwn() throws {
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2))
        let step = try backend.prepare(
            try StepBatch.make(
                chunks: [(tokens: Array(repeating: 0, count: 32), startPosition: 0, blockTable: [0, 1], wantsLogits: true)], blockTokens: 16))
        let width = layout.tokenElements
        func gaussian() -> Float { sqrtf(-2 * logf(Float.random(in: Float.ulpOfOne...1))) * cosf(Float.random(in: 0...(2 * .pi))) }
        let rows = (0..<2).map { _ in (0..<32 * width).map { _ in gaussian() * powf(10, Float.random(in: -2...1)) } }
        let pool = try backend.makeKVCachePool(layout: fp8Layout, blocks: 2)
        try backend.writeKV(
            k: try backend.uploadFloat32(rows[0], shape: [32, width]), v: try backend.uploadFloat32(rows[1], shape: [32, width]), layer: 1,
            pool: pool, step: step)
        let quantized = pool.layout
        var stored = 0.0
        var largestValuesOwn = 0.0
        for (block, bytes) in try blockBytes(pool).enumerated() {
            bytes.withUnsafeBytes { raw in
                for value in [false, true] {
                    for token in 0..<quantized.blockTokens {
                        for head in 0..<quantized.kvHeads {
                            let scale = raw.load(
                                fromByteOffset: quantized.scaleOffset(layer: 1, value: value, token: token) + head * 4, as: Float.self)
                            let start = quantized.elementOffset(layer: 1, value: value, token: token) + head * quantized.headDim
                            let x = rows[value ? 1 : 0][((block * 16 + token) * width + head * quantized.headDim)...].prefix(quantized.headDim)
                            let top = x.map(abs).max()!
                            let octaves = log2(Double(scale * 448 / top))
                            XCTAssertEqual(octaves * 8, (octaves * 8).rounded(), accuracy: 1e-3, "the scale is max |x| / 448 · 2^(j/8)")
                            XCTAssertTrue((0...7).contains(Int((octaves * 8).rounded())), "\(octaves)")
                            var own = 0.0
                            var chosen = 0.0
                            for (e, v) in x.enumerated() {
                                chosen += pow(Double(hifc_fp8_e4m3_to_float(raw[start + e]) * scale - v), 2)
                                own += pow(Double(hifc_fp8_e4m3_to_float(hifc_fp8_e4m3_from_float(v * 448 / top)) * top / 448 - v), 2)
                            }
                            XCTAssertLessThanOrEqual(chosen, own * (1 + 1e-5), "block \(block) token \(token) head \(head)")
                            stored += chosen
                            largestValuesOwn += own
                        }
                    }
                }
            }
        }
        XCTAssertLessThan(stored, 0.85 * largestValuesOwn, "the search pays over 128 heads")
    }

    func testTheCPUBackendRefusesAnF16PoolNamingTheDtype() {
        var f16 = layout
        f16.dtype = .float16
        XCTAssertThrowsError(try CPUBackend(blas: nil).makeKVCachePool(layout: f16, blocks: 1)) { error in
            XCTAssertTrue("\(error)".contains("float16"), "\(error)")
        }
    }

    /// A bf16 pool (the CUDA backend's dtype, which fp8's accuracy is measured against) stores
    /// K/V rounded to bf16 and attends over exactly those values.
    func testBF16AttentionReadsTheRoundedValues() throws {
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2))
        var bf16Layout = layout
        bf16Layout.dtype = .bfloat16
        let bf16 = try backend.makeKVCachePool(layout: bf16Layout, blocks: 4)
        let rounded = try backend.makeKVCachePool(layout: layout, blocks: 4)
        let step = try backend.prepare(
            try StepBatch.make(
                chunks: [(tokens: Array(repeating: 0, count: 50), startPosition: 0, blockTable: [2, 0, 3, 1], wantsLogits: true)],
                blockTokens: 16))
        let k = randomHeads(rows: 50, decades: -1...0.5)
        let v = randomHeads(rows: 50, decades: -2...2)
        func round(_ x: [Float]) -> [Float] { x.map { BFloat16.float(bits: BFloat16.bits($0)) } }
        let shape = [50, layout.tokenElements]
        try backend.writeKV(
            k: try backend.uploadFloat32(k, shape: shape), v: try backend.uploadFloat32(v, shape: shape), layer: 1, pool: bf16, step: step)
        try backend.writeKV(
            k: try backend.uploadFloat32(round(k), shape: shape), v: try backend.uploadFloat32(round(v), shape: shape), layer: 1, pool: rounded,
            step: step)
        let q = try backend.uploadFloat32((0..<50 * heads * 64).map { _ in Float.random(in: -1...1) }, shape: [50, heads * 64])
        let outputs = try [bf16, rounded].map {
            try backend.download(try backend.pagedAttention(q: q, heads: heads, layer: 1, scale: 0.125, pool: $0, step: step))
        }
        XCTAssertLessThanOrEqual(maxRelativeError(outputs[0], outputs[1]), 1e-6)
    }

    // MARK: Helpers

    /// `rows` tokens of K or V: each head's values uniform, at a scale from 10^`decades.lowerBound`
    /// to 10^`decades.upperBound` (heads and tokens of real models differ by orders of magnitude;
    /// each keeps its own fp8 scale). Keys stay within what makes softmax scores of a few units.
    private func randomHeads(rows: Int, decades: ClosedRange<Float>) -> [Float] {
        (0..<rows * layout.kvHeads).flatMap { _ in
            let scale = powf(10, Float.random(in: decades))
            return (0..<layout.headDim).map { _ in Float.random(in: -1...1) * scale }
        }
    }

    /// Largest |a − b| over the largest |b|.
    private func maxRelativeError(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        let top = max(b.map(abs).max() ?? 0, .leastNormalMagnitude)
        return zip(a, b).map { abs($0 - $1) }.max()! / top
    }

    private func blockBytes(_ pool: any KVCachePool) throws -> [[UInt8]] {
        try (0..<pool.blockCount).map { block in
            var bytes = [UInt8](repeating: 0, count: pool.layout.blockBytes)
            try bytes.withUnsafeMutableBytes { try pool.copyBlock(block, to: $0) }
            return bytes
        }
    }

    /// Decodes every element of the fp8 pool (`scale · e4m3`) into the f32 pool of the same shape.
    private func copyDequantized(_ fp8: any KVCachePool, into f32: any KVCachePool) throws {
        let quantized = fp8.layout
        for (block, bytes) in try blockBytes(fp8).enumerated() {
            var floats = [Float](repeating: 0, count: quantized.blockElements)
            bytes.withUnsafeBytes { raw in
                for layer in 0..<quantized.layers {
                    for value in [false, true] {
                        for token in 0..<quantized.blockTokens {
                            for head in 0..<quantized.kvHeads {
                                let scale = raw.load(
                                    fromByteOffset: quantized.scaleOffset(layer: layer, value: value, token: token) + head * 4, as: Float.self)
                                let start = quantized.elementOffset(layer: layer, value: value, token: token) + head * quantized.headDim
                                for e in start..<start + quantized.headDim { floats[e] = hifc_fp8_e4m3_to_float(raw[e]) * scale }
                            }
                        }
                    }
                }
            }
            try floats.withUnsafeBytes { try f32.copyBlock(block, from: $0) }
        }
    }
}
