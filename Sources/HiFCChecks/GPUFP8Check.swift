import CUDA
import Foundation
import HiFCCore

/// The fp8 KV pool (E4M3 codes with an f32 scale per token and KV head, `KVBlockLayout`) on the
/// GPU: its writers must store a least-error coding (`fp8Candidates`), and its attention kernels
/// must attend over exactly the values those bytes stand for.
extension GPUSelfCheck {
    /// The eight codings a writer chooses among for one head's row, as the CUDA writers
    /// (common.cuh, `warp_e4m3_least_error_scale`) and the CPU backend (`hifc_fp8_e4m3_code_head`)
    /// make them: scale `amax / 448 · 2^(j/8)`, j = 0...7, codes `encode(x · 448 / (amax · 2^(j/8)))`;
    /// each with its squared error (float64). One, scale 0, for an all-zero row.
    static func fp8Candidates(_ row: ArraySlice<Float>) -> [(codes: [UInt8], scale: Float, error: Double)] {
        let octaveSteps: [Float] = [1.0, 1.0905077, 1.1892071, 1.2968396, 1.4142135, 1.5422108, 1.6817929, 1.8340081]
        let amax = row.reduce(Float(0)) { Swift.max($0, abs($1)) }
        guard amax > 0 else { return [(row.map { FP8E4M3.encode($0 * 0) }, 0, 0)] }
        return octaveSteps.map { step in
            let stepped = amax * step
            let scale = stepped / FP8E4M3.largest
            let inverse = FP8E4M3.largest / stepped
            let codes = row.map { FP8E4M3.encode($0 * inverse) }
            let error = zip(codes, row).reduce(0.0) { sum, pair in
                let miss = Double(FP8E4M3.decode(pair.0) * scale) - Double(pair.1)
                return sum + miss * miss
            }
            return (codes, scale, error)
        }
    }

    /// How many of a stored fp8 row's codes and scale differ from a least-error coding of `row`,
    /// and the values they stand for. The stored scale must be one of the eight whose error is
    /// within 1e-4 of the least: the GPU adds a row's errors in another order than the CPU, so
    /// two scales whose errors tie within that rounding may go either way.
    static func fp8Mismatches(row: ArraySlice<Float>, codes: ArraySlice<UInt8>, scaleBits: UInt32) -> (mismatches: Int, values: [Float]) {
        let candidates = fp8Candidates(row)
        let least = candidates.map(\.error).min()!
        let chosen = candidates.first { $0.scale.bitPattern == scaleBits && $0.error <= least * (1 + 1e-4) }
        let reference = chosen ?? candidates.min { $0.error < $1.error }!
        let differing = zip(codes, reference.codes).filter { $0.0 != $0.1 }.count + (chosen == nil ? 1 : 0)
        return (differing, reference.codes.map { FP8E4M3.decode($0) * reference.scale })
    }

    /// What `writeKV` must have stored for token g's K and V (`kv[g · kvStride ...]`, V `te`
    /// floats after K) at `slots[g]` in `layer`: the values the attention reference reads (bf16
    /// rounded, or fp8 decoded times the scale), and how many stored elements (and fp8 scales)
    /// differ from the host's rounding or coding.
    func storedKV(
        pool: DeviceBuffer, blocks: Int, stride: Int, layout: KVBlockLayout, layer: Int, slots: [Int32], kv: [Float], kvStride: Int
    ) throws -> (mismatches: Int, keys: [[Float]], values: [[Float]]) {
        try stream.synchronize()
        let bytes = try pool.download(UInt8.self, count: blocks * stride)
        let te = layout.tokenElements
        let hd = layout.headDim
        var mismatches = 0
        var keys: [[Float]] = []
        var values: [[Float]] = []
        for (g, slot) in slots.enumerated() {
            let base = Int(slot) / layout.blockTokens * stride
            let token = Int(slot) % layout.blockTokens
            for value in [false, true] {
                let row = kv[(g * kvStride + (value ? te : 0))..<(g * kvStride + (value ? te : 0) + te)]
                let start = base + layout.elementOffset(layer: layer, value: value, token: token) * layout.dtype.size
                var stored: [Float] = []
                if layout.dtype == .fp8e4m3 {
                    let scales = base + layout.scaleOffset(layer: layer, value: value, token: token)
                    for h in 0..<layout.kvHeads {
                        let got = (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[scales + h * 4 + $1]) << (8 * $1) }
                        let coded = Self.fp8Mismatches(
                            row: row[(row.startIndex + h * hd)..<(row.startIndex + (h + 1) * hd)],
                            codes: bytes[(start + h * hd)..<(start + (h + 1) * hd)], scaleBits: got)
                        mismatches += coded.mismatches
                        stored += coded.values
                    }
                } else {
                    for (i, x) in row.enumerated() {
                        let bits = HostReference.bf16(x)
                        if UInt16(bytes[start + 2 * i]) | UInt16(bytes[start + 2 * i + 1]) << 8 != bits { mismatches += 1 }
                        stored.append(HostReference.float(bf16: bits))
                    }
                }
                if value { values.append(stored) } else { keys.append(stored) }
            }
        }
        return (mismatches, keys, values)
    }

    /// `writeKV` and `ropeAndWriteKV` into an fp8 pool: codes and scales equal to the host's
    /// coding of the same floats (heads whose magnitudes span five decades, an all-zero head,
    /// codes down to the subnormals); rotated K within E4M3's error of a float64 rotation; q as
    /// the bf16 pool's kernel gives it.
    func checkFP8KVWrite() throws -> [GPUCheckResult] {
        var results: [GPUCheckResult] = []
        let layout = KVBlockLayout(layers: 2, kvHeads: 8, headDim: 128, blockTokens: 16, dtype: .fp8e4m3)
        let layer = 1
        let blocks = 6
        let tokens = 37
        let stride = layout.blockStride
        let te = layout.tokenElements
        var kv = HostReference.randomNormal(tokens * 2 * te)
        for t in 0..<tokens {
            for head in 0..<(2 * layout.kvHeads) {
                let magnitude = Float(pow(10, Double.random(in: -3...2)))
                for i in 0..<layout.headDim { kv[t * 2 * te + head * layout.headDim + i] *= t == 5 && head == 3 ? 0 : magnitude }
            }
        }
        let slots = Array(0..<(blocks * layout.blockTokens)).shuffled().prefix(tokens).map { Int32($0) }
        let pool = try poisoned(blocks * stride)
        let kvb = try upload(kv)
        let sb = try upload(slots)
        try kernels.writeKV(
            pool: pool.address, blockStride: stride, k: kvb.address, v: kvb.address + UInt64(te * 4), kvStride: 2 * te, slots: sb.address,
            tokens: tokens, layer: layer, layout: layout, stream: stream)
        let stored = try storedKV(pool: pool, blocks: blocks, stride: stride, layout: layout, layer: layer, slots: slots, kv: kv, kvStride: 2 * te)
        results.append(
            GPUCheckResult(
                name:
                    "fp8 kv write, \(tokens) tokens x \(layout.kvHeads) KV heads of \(layout.headDim), magnitudes 1e-3...1e2: codes and scales differing from a least-error coding",
                error: Double(stored.mismatches), tolerance: 0))
        for (heads, kvHeads, hd) in [(8, 2, 128), (12, 4, 64), (4, 2, 16)] {
            results += try checkFP8Rope(tokens: 9, heads: heads, kvHeads: kvHeads, headDim: hd)
        }
        return results
    }

    /// `ropeAndWriteKV` into an fp8 pool against the same kernel's bf16 form and the host.
    func checkFP8Rope(tokens: Int, heads: Int, kvHeads: Int, headDim hd: Int) throws -> [GPUCheckResult] {
        let width = (heads + 2 * kvHeads) * hd
        let layout = KVBlockLayout(layers: 3, kvHeads: kvHeads, headDim: hd, blockTokens: 16, dtype: .fp8e4m3)
        let bf16Layout = KVBlockLayout(layers: 3, kvHeads: kvHeads, headDim: hd, blockTokens: 16, dtype: .bfloat16)
        let layer = 2
        let blocks = 3
        let x = HostReference.randomNormal(tokens * width, scale: 3)
        let positions = (0..<tokens).map { _ in Int32.random(in: 0..<131_072) }
        let slots = Array(0..<(blocks * layout.blockTokens)).shuffled().prefix(tokens).map { Int32($0) }
        let inv = HostReference.ropeInverseFrequencies(headDim: hd, theta: 500_000, llama3: (8, 1, 4, 8192))
        let xb = try upload(x)
        let pb = try upload(positions)
        let ib = try upload(inv)
        let sb = try upload(slots)
        let q = try poisoned(tokens * heads * hd * 4)
        let qRef = try poisoned(tokens * heads * hd * 4)
        let pool = try poisoned(blocks * layout.blockStride)
        let bf16Pool = try poisoned(blocks * bf16Layout.blockStride)
        try kernels.ropeAndWriteKV(
            qkv: xb.address, heads: heads, positions: pb.address, inverseFrequencies: ib.address, slots: sb.address, qOutput: q.address,
            pool: pool.address, blockStride: layout.blockStride, tokens: tokens, layer: layer, layout: layout, stream: stream)
        try kernels.ropeAndWriteKV(
            qkv: xb.address, heads: heads, positions: pb.address, inverseFrequencies: ib.address, slots: sb.address, qOutput: qRef.address,
            pool: bf16Pool.address, blockStride: bf16Layout.blockStride, tokens: tokens, layer: layer, layout: bf16Layout, stream: stream)
        let gotQ = try downloadF32(q, count: tokens * heads * hd)
        let refQ = try downloadF32(qRef, count: tokens * heads * hd)
        // V is stored unrotated: its codes must be a least-error coding of the input. K's are
        // compared as values with a float64 rotation.
        try stream.synchronize()
        var vMismatch = 0
        var gotK: [Float] = []
        var refK: [Double] = []
        let bytes = try pool.download(UInt8.self, count: blocks * layout.blockStride)
        for (t, slot) in slots.enumerated() {
            let base = Int(slot) / layout.blockTokens * layout.blockStride
            let token = Int(slot) % layout.blockTokens
            let kStart = base + layout.elementOffset(layer: layer, value: false, token: token)
            let kScales = base + layout.scaleOffset(layer: layer, value: false, token: token)
            let vStart = base + layout.elementOffset(layer: layer, value: true, token: token)
            let vScales = base + layout.scaleOffset(layer: layer, value: true, token: token)
            for h in 0..<kvHeads {
                let scale = Float(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[kScales + h * 4 + $1]) << (8 * $1) })
                gotK += (0..<hd).map { FP8E4M3.decode(bytes[kStart + h * hd + $0]) * scale }
                for i in 0..<hd / 2 {
                    let angle = Double(Float(positions[t]) * inv[i])
                    let a = Double(x[t * width + (heads + h) * hd + i])
                    let b = Double(x[t * width + (heads + h) * hd + i + hd / 2])
                    refK.append(a * cos(angle) - b * sin(angle))
                }
                for i in 0..<hd / 2 {
                    let angle = Double(Float(positions[t]) * inv[i])
                    let a = Double(x[t * width + (heads + h) * hd + i])
                    let b = Double(x[t * width + (heads + h) * hd + i + hd / 2])
                    refK.append(b * cos(angle) + a * sin(angle))
                }
                let v = t * width + (heads + kvHeads + h) * hd
                let gotScale = (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[vScales + h * 4 + $1]) << (8 * $1) }
                vMismatch +=
                    Self.fp8Mismatches(row: x[v..<(v + hd)], codes: bytes[(vStart + h * hd)..<(vStart + (h + 1) * hd)], scaleBits: gotScale)
                    .mismatches
            }
        }
        let name = "fp8 rope + kv write, \(tokens) tokens of \(heads) q / \(kvHeads) kv heads x \(hd)"
        return [
            GPUCheckResult(
                name: name + ": q against the bf16 pool's kernel", error: HostReference.relativeError(gotQ, refQ.map(Double.init)), tolerance: 1e-6),
            // E4M3 keeps 3 mantissa bits: a row's relative RMS error is about 2.5% (fp8-kv.md).
            GPUCheckResult(
                name: name + ": rotated k in the pool, decoded, against float64", error: HostReference.relativeError(gotK, refK), tolerance: 4e-2),
            GPUCheckResult(name: name + ": v codes and scales differing from a least-error coding", error: Double(vMismatch), tolerance: 0),
        ]
    }

    /// Every attention kernel over an fp8 pool, against float64 attention over the values the
    /// pool stores: the tensor-core decode kernels (head dims 64, 128, 256), the general one (16),
    /// split and unsplit, a sliding window, and the tensor-core prefill kernels (narrow and wide,
    /// head dims 64 and 128, one with a window).
    func checkFP8Attention() throws -> [GPUCheckResult] {
        let fp8 = KVDType.fp8e4m3
        return try checkAttention(headDim: 128, qHeads: 8, blockTokens: 24, dtype: fp8)
            + checkAttention(headDim: 16, qHeads: 4, blockTokens: 16, dtype: fp8)
            + checkAttention(headDim: 64, qHeads: 12, blockTokens: 64, dtype: fp8)
            + checkAttention(headDim: 256, qHeads: 14, blockTokens: 16, dtype: fp8)
            + checkAttention(headDim: 128, qHeads: 8, blockTokens: 24, window: 37, dtype: fp8)
            + checkPrefillAttention(headDim: 128, qHeads: 8, kvHeads: 2, blockTokens: 16, wide: false, dtype: fp8)
            + checkPrefillAttention(headDim: 128, qHeads: 8, kvHeads: 2, blockTokens: 64, wide: true, dtype: fp8)
            + checkPrefillAttention(headDim: 64, qHeads: 2, kvHeads: 2, blockTokens: 64, wide: nil, dtype: fp8)
            + checkPrefillAttention(headDim: 64, qHeads: 8, kvHeads: 2, blockTokens: 16, wide: true, dtype: fp8)
            + checkPrefillAttention(headDim: 128, qHeads: 8, kvHeads: 2, blockTokens: 16, wide: false, window: 70, dtype: fp8)
    }
}
