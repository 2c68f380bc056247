import CUDA
import Foundation
import HiFCCore
import Models

/// Runs every kernel and the cuBLAS product on fresh random inputs and compares each with a
/// float64 reference computed on the host (METHOD.md: fresh inputs, poisoned outputs, every
/// call checked). Outputs are filled with NaN bits before each run so unwritten elements fail.
public final class GPUSelfCheck: @unchecked Sendable {
    // Used from one thread at a time (the command that runs the checks).
    let device: CUDADevice
    /// The compiled kernels under check.
    public let kernels: CUDAKernels
    /// The cuBLAS handle under check.
    public let blas: CUBLAS
    let stream: CUDAStream

    /// Compiles the kernels for `device` and creates a cuBLAS handle.
    public init(device: CUDADevice) throws {
        self.device = device
        kernels = try CUDAKernels(library: try KernelLibrary(device: device, sources: try KernelSources.load()))
        blas = try CUBLAS(device: device)
        stream = try device.makeStream()
    }

    /// Every check, in order; a check that throws is reported as failed with the error.
    public func runAll() -> [GPUCheckResult] {
        var results: [GPUCheckResult] = []
        let checks: [(String, () throws -> [GPUCheckResult])] = [
            ("bf16 conversion", checkConversions), ("embedding", checkEmbedding), ("rmsnorm", checkRMSNorm),
            ("rope + kv write", checkRopeAndKVWrite), ("silu*mul", checkSiluMul), ("residual add", checkResidualAdd),
            ("gemm", checkGemm), ("skinny gemm", checkSkinnyGemm), ("skinny gated gemm", checkSkinnyGatedGemm),
            ("skinny rotary gemm", checkSkinnyRotaryGemm), ("skinny residual form", checkResidualForm),
            ("kv write + paged attention", checkAttention),
            ("prefill attention (tensor cores)", checkPrefillAttention),
            ("sliding-window attention", checkSlidingWindowAttention), ("model family ops", checkFamilyOps),
            ("fp8 kv write", checkFP8KVWrite),
            ("fp8 kv attention", checkFP8Attention), ("argmax", checkSampling), ("draws", checkDraws),
        ]
        for (name, check) in checks {
            do { results += try check() } catch {
                results.append(GPUCheckResult(name: name, error: .nan, tolerance: 0, failure: "\(error)"))
            }
        }
        return results
    }

    // MARK: helpers

    func upload(_ values: [Float]) throws -> DeviceBuffer {
        let b = try device.allocate(max(4, values.count * 4))
        try b.upload(values)
        return b
    }

    func upload(_ values: [Int32]) throws -> DeviceBuffer {
        let b = try device.allocate(max(4, values.count * 4))
        try b.upload(values)
        return b
    }

    /// Uploads `values` rounded to bf16; returns the buffer and the rounded values.
    func uploadBF16(_ values: [Float]) throws -> (DeviceBuffer, [Float]) {
        let bits = values.map(HostReference.bf16)
        let b = try device.allocate(max(2, bits.count * 2))
        try b.upload(bits)
        return (b, bits.map { HostReference.float(bf16: $0) })
    }

    /// A buffer of `bytes` filled with 0xFF (NaN as fp32 and bf16).
    func poisoned(_ bytes: Int) throws -> DeviceBuffer {
        let b = try device.allocate(bytes)
        try stream.fill(b.address, value: 0xff, bytes: bytes)
        return b
    }

    func downloadBF16(_ b: DeviceBuffer, count: Int) throws -> [Float] {
        try stream.synchronize()
        return try b.download(UInt16.self, count: count).map { HostReference.float(bf16: $0) }
    }

    func downloadF32(_ b: DeviceBuffer, count: Int) throws -> [Float] {
        try stream.synchronize()
        return try b.download(Float.self, count: count)
    }

    // MARK: checks

    func checkConversions() throws -> [GPUCheckResult] {
        let n = (1 << 20) + 7
        var x = HostReference.randomNormal(n, scale: 3)
        x[0] = .infinity
        x[1] = -.infinity
        x[2] = Float.leastNormalMagnitude / 128
        x[3] = 3.0e38
        let input = try upload(x)
        let out16 = try poisoned(n * 2)
        try kernels.f32ToBF16(input.address, out16.address, count: n, stream: stream)
        try stream.synchronize()
        let bits = try out16.download(UInt16.self, count: n)
        let mismatches = zip(bits, x).filter { $0 != HostReference.bf16($1) }.count
        let back = try poisoned(n * 4)
        try kernels.bf16ToF32(out16.address, back.address, count: n, stream: stream)
        let f = try downloadF32(back, count: n)
        let mismatches2 = zip(f, bits).filter { $0.bitPattern != HostReference.float(bf16: $1).bitPattern }.count
        return [
            GPUCheckResult(name: "f32->bf16 \(n) values (mismatching bits)", error: Double(mismatches), tolerance: 0),
            GPUCheckResult(name: "bf16->f32 \(n) values (mismatching bits)", error: Double(mismatches2), tolerance: 0),
        ]
    }

    func checkEmbedding() throws -> [GPUCheckResult] {
        let vocab = 1000
        let dim = 576
        let tokens = 37
        let (table, tableValues) = try uploadBF16(HostReference.randomNormal(vocab * dim))
        let ids = (0..<tokens).map { _ in Int32.random(in: 0..<Int32(vocab)) }
        let idBuf = try upload(ids)
        let out = try poisoned(tokens * dim * 4)
        try kernels.embedding(table: table.address, ids: idBuf.address, output: out.address, tokens: tokens, dim: dim, stream: stream)
        let got = try downloadF32(out, count: tokens * dim)
        var ref: [Double] = []
        for id in ids { ref += tableValues[Int(id) * dim..<(Int(id) + 1) * dim].map(Double.init) }
        return [GPUCheckResult(name: "embedding \(tokens) tokens x \(dim)", error: HostReference.relativeError(got, ref), tolerance: 0)]
    }

    func checkRMSNorm() throws -> [GPUCheckResult] {
        var results: [GPUCheckResult] = []
        for (rows, dim) in [(17, 4096), (3, 576), (1, 4096)] {  // one row: the `_next_first` twins
            let x = HostReference.randomNormal(rows * dim, scale: 2)
            let (w, wv) = try uploadBF16(HostReference.randomNormal(dim, scale: 0.5).map { $0 + 1 })
            let xb = try upload(x)
            var ref = [Double](repeating: 0, count: rows * dim)
            for r in 0..<rows {
                let row = x[r * dim..<(r + 1) * dim].map(Double.init)
                let inv = 1 / ((row.reduce(0) { $0 + $1 * $1 } / Double(dim)) + 1e-5).squareRoot()
                for i in 0..<dim { ref[r * dim + i] = row[i] * inv * Double(wv[i]) }
            }
            let out16 = try poisoned(rows * dim * 2)
            try kernels.rmsNorm(
                xb.address, weight: w.address, output: out16.address, rows: rows, dim: dim, eps: 1e-5, bf16Output: true, stream: stream)
            results.append(
                GPUCheckResult(
                    name: "rmsnorm \(rows)x\(dim) bf16 out", error: HostReference.relativeError(try downloadBF16(out16, count: rows * dim), ref),
                    tolerance: 8e-3))
            let out32 = try poisoned(rows * dim * 4)
            try kernels.rmsNorm(
                xb.address, weight: w.address, output: out32.address, rows: rows, dim: dim, eps: 1e-5, bf16Output: false, stream: stream)
            results.append(
                GPUCheckResult(
                    name: "rmsnorm \(rows)x\(dim) f32 out", error: HostReference.relativeError(try downloadF32(out32, count: rows * dim), ref),
                    tolerance: 1e-5))
            // The same rows as the sum of two halves, through the fused residual add + norm.
            let half = x.map { $0 * 0.25 }
            let rest = zip(x, half).map { $0 - $1 }
            let hb = try upload(half)
            let rb = try upload(rest)
            let sum = try poisoned(rows * dim * 4)
            let normed = try poisoned(rows * dim * 2)
            try kernels.addRMSNorm(
                hb.address, rb.address, sum: sum.address, weight: w.address, output: normed.address, rows: rows, dim: dim, eps: 1e-5, stream: stream)
            results.append(
                GPUCheckResult(
                    name: "add + rmsnorm \(rows)x\(dim): sum f32",
                    error: HostReference.relativeError(try downloadF32(sum, count: rows * dim), x.map(Double.init)), tolerance: 1e-6))
            results.append(
                GPUCheckResult(
                    name: "add + rmsnorm \(rows)x\(dim): normed bf16",
                    error: HostReference.relativeError(try downloadBF16(normed, count: rows * dim), ref), tolerance: 8e-3))
        }
        return results
    }

    func checkRopeAndKVWrite() throws -> [GPUCheckResult] {
        // 8 query heads over 2 KV heads of 128, Llama-3 scaled frequencies, positions up to 128K.
        let tokens = 9
        let heads = 8
        let kvHeads = 2
        let hd = 128
        let width = (heads + 2 * kvHeads) * hd
        let layout = KVBlockLayout(layers: 3, kvHeads: kvHeads, headDim: hd, blockTokens: 16, dtype: .bfloat16)
        let layer = 1
        let blocks = 5
        let stride = layout.blockBytes + 4096
        let x = HostReference.randomNormal(tokens * width)
        let positions = (0..<tokens).map { _ in Int32.random(in: 0..<131_072) }
        let slots = Array(0..<(blocks * layout.blockTokens)).shuffled().prefix(tokens).map { Int32($0) }
        let inv = HostReference.ropeInverseFrequencies(headDim: hd, theta: 500_000, llama3: (8, 1, 4, 8192))
        let xb = try upload(x)
        let pb = try upload(positions)
        let ib = try upload(inv)
        let sb = try upload(slots)
        let q = try poisoned(tokens * heads * hd * 4)
        let pool = try poisoned(blocks * stride)
        try kernels.ropeAndWriteKV(
            qkv: xb.address, heads: heads, positions: pb.address, inverseFrequencies: ib.address, slots: sb.address,
            qOutput: q.address, pool: pool.address, blockStride: stride, tokens: tokens, layer: layer,
            layout: layout, stream: stream)
        let gotQ = try downloadF32(q, count: tokens * heads * hd)
        try stream.synchronize()
        let poolBits = try pool.download(UInt16.self, count: blocks * stride / 2)
        var refQ = [Double]()
        var refK = [Double]()
        var gotK = [Double]()
        var vMismatch = 0
        for t in 0..<tokens {
            let block = Int(slots[t]) / layout.blockTokens
            let off = Int(slots[t]) % layout.blockTokens
            let kBase = block * stride / 2 + layout.elementOffset(layer: layer, value: false, token: off)
            let vBase = block * stride / 2 + layout.elementOffset(layer: layer, value: true, token: off)
            for h in 0..<(heads + kvHeads) {
                var rotated = [Double](repeating: 0, count: hd)
                for i in 0..<hd / 2 {
                    // The angle is formed in fp32, as HF does; the reference differs only in cos/sin.
                    let angle = Double(Float(positions[t]) * inv[i])
                    let a = Double(x[t * width + h * hd + i])
                    let b = Double(x[t * width + h * hd + i + hd / 2])
                    rotated[i] = a * cos(angle) - b * sin(angle)
                    rotated[i + hd / 2] = b * cos(angle) + a * sin(angle)
                }
                if h < heads {
                    refQ += rotated
                } else {
                    refK += rotated
                    gotK += (0..<hd).map { Double(HostReference.float(bf16: poolBits[kBase + (h - heads) * hd + $0])) }
                }
            }
            for i in 0..<kvHeads * hd where poolBits[vBase + i] != HostReference.bf16(x[t * width + (heads + kvHeads) * hd + i]) { vMismatch += 1 }
        }
        let name = "rope + kv write, \(tokens) tokens of \(heads) q / \(kvHeads) kv heads x \(hd), llama3 scaling"
        return [
            GPUCheckResult(name: name + ": rotated q", error: HostReference.relativeError(gotQ, refQ), tolerance: 1e-4),
            GPUCheckResult(
                name: name + ": rotated k in the pool (bf16)", error: HostReference.relativeError(gotK.map(Float.init), refK), tolerance: 8e-3),
            GPUCheckResult(name: name + ": v in the pool (mismatching elements)", error: Double(vMismatch), tolerance: 0),
        ]
    }

    func checkSiluMul() throws -> [GPUCheckResult] {
        // 1000 columns take the kernel's four-column path, 999 its scalar one.
        try [1000, 999].map { inter in
            let rows = 13
            let gu = HostReference.randomNormal(rows * 2 * inter, scale: 2)
            let b = try upload(gu)
            let out = try poisoned(rows * inter * 2)
            try kernels.siluMul(
                gate: b.address, up: b.address + UInt64(inter * 4), stride: 2 * inter, output: out.address, inter: inter, rows: rows, stream: stream)
            let ref = HostReference.siluGated(gu.map(Double.init), rows: rows, n: 2 * inter)
            return GPUCheckResult(
                name: "silu*mul \(rows)x\(inter) fused gate|up", error: HostReference.relativeError(try downloadBF16(out, count: rows * inter), ref),
                tolerance: 8e-3)
        }
    }

    func checkResidualAdd() throws -> [GPUCheckResult] {
        let n = 100_003
        let x = HostReference.randomNormal(n)
        let y = HostReference.randomNormal(n)
        let xb = try upload(x)
        let yb = try upload(y)
        try kernels.residualAdd(xb.address, yb.address, count: n, stream: stream)
        let ref = zip(x, y).map { Double($0) + Double($1) }
        return [GPUCheckResult(name: "residual add \(n)", error: HostReference.relativeError(try downloadF32(xb, count: n), ref), tolerance: 1e-7)]
    }

    func checkGemm() throws -> [GPUCheckResult] {
        var results: [GPUCheckResult] = []
        for (m, n, k) in [(1, 1536, 1024), (16, 1000, 576), (100, 384, 2048)] {
            let (x, xv) = try uploadBF16(HostReference.randomNormal(m * k))
            let (w, wv) = try uploadBF16(HostReference.randomNormal(n * k, scale: 0.05))
            let ref = HostReference.linear(xv, wv, m: m, n: n, k: k)
            let y = try poisoned(m * n * 4)
            try blas.linear(x: x.address, w: w.address, y: y.address, yType: .float32, m: m, n: n, k: k, stream: stream)
            results.append(
                GPUCheckResult(
                    name: "cublas linear \(m)x\(k) · (\(n)x\(k))ᵀ f32 out", error: HostReference.relativeError(try downloadF32(y, count: m * n), ref),
                    tolerance: 1e-5))
            let y16 = try poisoned(m * n * 2)
            try blas.linear(x: x.address, w: w.address, y: y16.address, yType: .bfloat16, m: m, n: n, k: k, stream: stream)
            results.append(
                GPUCheckResult(
                    name: "cublas linear \(m)x\(k) · (\(n)x\(k))ᵀ bf16 out",
                    error: HostReference.relativeError(try downloadBF16(y16, count: m * n), ref), tolerance: 8e-3))
        }
        return results
    }

    /// The decode-batch kernel against a float64 reference: each of its three kernels (m = 1,
    /// 2 and 3 take the one-token-tile ones, m = 9 and 16 the two-tile one), n not a multiple of
    /// the 16- or 32-feature CTA tile, and k whole steps (4096), whole 32-element chunks but
    /// partial steps (576, 64) and a partial chunk (200).
    func checkSkinnyGemm() throws -> [GPUCheckResult] {
        var results: [GPUCheckResult] = []
        var cases: [(Int, Int, Int)] = []
        for m in [1, 3, 16] { for k in [576, 4096] { cases.append((m, 1000, k)) } }
        // Wide products at m = 16 take the four-tile launches (4 warps at 40000 features, 8 at
        // 14336 on 132 SMs, SkinnyGEMM.swift).
        cases += [(9, 333, 200), (2, 40000, 64), (16, 40000, 64), (16, 14336, 256)]
        for (m, n, k) in cases {
            let (x, xv) = try uploadBF16(HostReference.randomNormal(m * k))
            let (w, wv) = try uploadBF16(HostReference.randomNormal(n * k, scale: 0.05))
            let ref = HostReference.linear(xv, wv, m: m, n: n, k: k)
            let y = try poisoned(m * n * 4)
            try kernels.skinnyLinear(x: x.address, w: w.address, y: y.address, m: m, n: n, k: k, stream: stream)
            // fp32 accumulation split over 8-16 warps: ~1e-6 at k = 4096 on the H100.
            results.append(
                GPUCheckResult(
                    name: "skinny linear \(m)x\(k) · (\(n)x\(k))ᵀ f32 out", error: HostReference.relativeError(try downloadF32(y, count: m * n), ref),
                    tolerance: 1e-5))
        }
        return results
    }

    /// The gated form (`skinnySiluGatedLinear`) against float64 silu(gate)·up, and against the
    /// plain product followed by `siluMul`, which it must equal to the bit: one- and two-tile
    /// launches, an odd feature count, and the two four-tile launches of wide products at m = 16.
    func checkSkinnyGatedGemm() throws -> [GPUCheckResult] {
        try [(1, 2000, 576), (3, 2000, 4096), (9, 666, 200), (16, 2000, 4096), (16, 28672, 64), (16, 14336, 256), (5, 28672, 64)].flatMap {
            (m, n, k) in
            let inter = n / 2
            let (x, xv) = try uploadBF16(HostReference.randomNormal(m * k))
            let (w, wv) = try uploadBF16(HostReference.randomNormal(n * k, scale: 0.05))
            let sums = HostReference.linear(xv, wv, m: m, n: n, k: k)
            let ref = HostReference.siluGated(sums, rows: m, n: n)
            let out = try poisoned(m * inter * 2)
            let y = try poisoned(m * n * 4)
            let unfused = try poisoned(m * inter * 2)
            try kernels.skinnySiluGatedLinear(x: x.address, w: w.address, out: out.address, m: m, n: n, k: k, stream: stream)
            try kernels.skinnyLinear(x: x.address, w: w.address, y: y.address, m: m, n: n, k: k, stream: stream)
            try kernels.siluMul(
                gate: y.address, up: y.address + UInt64(inter * 4), stride: n, output: unfused.address, inter: inter, rows: m, stream: stream)
            let got = try downloadBF16(out, count: m * inter)
            let plain = try downloadBF16(unfused, count: m * inter)
            let differing = zip(got, plain).filter { $0.0.bitPattern != $0.1.bitPattern }.count
            let name = "skinny gated linear \(m)x\(k) · (\(n)x\(k))ᵀ, silu(gate)·up bf16 out"
            return [
                GPUCheckResult(name: name, error: HostReference.relativeError(got, ref), tolerance: 8e-3),
                GPUCheckResult(name: name + ": elements differing from the product then silu*mul", error: Double(differing), tolerance: 0),
            ]
        }
    }

    /// The rotary form (`skinnyRotaryLinear`) against the plain product followed by
    /// `ropeAndWriteKV` on the same inputs: q within fp32 rounding, k within one bf16 step, v
    /// equal. Head dims 16, 64 and 128; one- and two-token-tile launches.
    func checkSkinnyRotaryGemm() throws -> [GPUCheckResult] {
        try [(1, 4, 2, 16, 64), (3, 8, 2, 128, 576), (9, 12, 4, 64, 200), (16, 32, 8, 128, 256)].flatMap { (m, heads, kvHeads, hd, k) in
            let n = (heads + 2 * kvHeads) * hd
            let layout = KVBlockLayout(layers: 3, kvHeads: kvHeads, headDim: hd, blockTokens: 16, dtype: .bfloat16)
            let layer = 2
            let blocks = 3
            let stride = layout.blockBytes + 4096
            let (x, _) = try uploadBF16(HostReference.randomNormal(m * k))
            let (w, _) = try uploadBF16(HostReference.randomNormal(n * k, scale: 0.05))
            let positions = (0..<m).map { _ in Int32.random(in: 0..<131_072) }
            let slots = Array(0..<(blocks * layout.blockTokens)).shuffled().prefix(m).map { Int32($0) }
            let inv = HostReference.ropeInverseFrequencies(headDim: hd, theta: 500_000, llama3: (8, 1, 4, 8192))
            let pb = try upload(positions)
            let ib = try upload(inv)
            let sb = try upload(slots)
            let q = try poisoned(m * heads * hd * 4)
            let pool = try poisoned(blocks * stride)
            let y = try poisoned(m * n * 4)
            let qRef = try poisoned(m * heads * hd * 4)
            let poolRef = try poisoned(blocks * stride)
            try kernels.skinnyRotaryLinear(
                x: x.address, w: w.address, m: m, n: n, k: k, heads: heads, positions: pb.address,
                inverseFrequencies: ib.address, slots: sb.address, qOutput: q.address, pool: pool.address,
                blockStride: stride, layer: layer, layout: layout, stream: stream)
            try kernels.skinnyLinear(x: x.address, w: w.address, y: y.address, m: m, n: n, k: k, stream: stream)
            try kernels.ropeAndWriteKV(
                qkv: y.address, heads: heads, positions: pb.address, inverseFrequencies: ib.address, slots: sb.address,
                qOutput: qRef.address, pool: poolRef.address, blockStride: stride, tokens: m, layer: layer,
                layout: layout, stream: stream)
            let gotQ = try downloadF32(q, count: m * heads * hd)
            let refQ = try downloadF32(qRef, count: m * heads * hd)
            let got = try pool.download(UInt16.self, count: blocks * stride / 2)
            let ref = try poolRef.download(UInt16.self, count: blocks * stride / 2)
            // Written elements: the k and v rows at each token's slot (everything else stays poisoned in both).
            var kApart = 0
            var kDiffer = 0
            var vDiffer = 0
            for slot in slots {
                let base = Int(slot) / layout.blockTokens * stride / 2
                let off = Int(slot) % layout.blockTokens
                let kOff = base + layout.elementOffset(layer: layer, value: false, token: off)
                let vOff = base + layout.elementOffset(layer: layer, value: true, token: off)
                for i in 0..<layout.tokenElements {
                    if got[kOff + i] != ref[kOff + i] { kDiffer += 1 }
                    if abs(Int(Int16(bitPattern: got[kOff + i])) - Int(Int16(bitPattern: ref[kOff + i]))) > 1 { kApart += 1 }
                    if got[vOff + i] != ref[vOff + i] { vDiffer += 1 }
                }
            }
            let elsewhere = zip(got, ref).filter { $0.0 != $0.1 }.count - kDiffer - vDiffer
            let name = "skinny rotary linear \(m)x\(k), \(heads) q / \(kvHeads) kv heads x \(hd), against the product then rope + kv write"
            return [
                GPUCheckResult(name: name + ": q", error: HostReference.relativeError(gotQ, refQ.map(Double.init)), tolerance: 1e-6),
                GPUCheckResult(name: name + ": k elements more than one bf16 step apart", error: Double(kApart), tolerance: 0),
                GPUCheckResult(name: name + ": v elements differing", error: Double(vDiffer), tolerance: 0),
                GPUCheckResult(name: name + ": pool elements differing outside the tokens' k and v", error: Double(elsewhere), tolerance: 0),
            ]
        }
    }

    func checkAttention() throws -> [GPUCheckResult] {
        // Each kernel variant: head dim <= 128 with groups of <= 4 and of <= 8, and head dim 256;
        // block sizes that are and are not powers of two (the kernels find a position's block
        // without a division, common.cuh's block_index).
        try checkAttention(headDim: 128, qHeads: 8, blockTokens: 24) + checkAttention(headDim: 16, qHeads: 4, blockTokens: 16)
            + checkAttention(headDim: 64, qHeads: 12, blockTokens: 64) + checkAttention(headDim: 256, qHeads: 14, blockTokens: 16)
    }

    /// Windows shorter than some contexts and longer than others, through the decode kernels
    /// (tensor-core and general), split and unsplit, and the tensor-core prefill kernel: a window
    /// of w keeps positions p - w + 1 ... p.
    func checkSlidingWindowAttention() throws -> [GPUCheckResult] {
        try checkAttention(headDim: 128, qHeads: 8, blockTokens: 24, window: 37) + checkAttention(headDim: 16, qHeads: 4, blockTokens: 16, window: 5)
            + checkAttention(headDim: 256, qHeads: 4, blockTokens: 16, window: 300)
            + checkPrefillAttention(headDim: 128, qHeads: 8, kvHeads: 2, blockTokens: 16, wide: false, window: 70)
            + checkPrefillAttention(headDim: 128, qHeads: 8, kvHeads: 2, blockTokens: 64, wide: true, window: 7)
            + checkPrefillAttention(headDim: 64, qHeads: 2, kvHeads: 2, blockTokens: 24, wide: nil, window: 130)
            + checkPrefillAttention(headDim: 128, qHeads: 8, kvHeads: 2, blockTokens: 16, wide: nil, window: 70)
    }

    /// `dtype` is the pool's (bf16 or fp8e4m3); the reference attends over the values it stores.
    func checkAttention(headDim: Int, qHeads: Int, blockTokens: Int, window: Int? = nil, dtype: KVDType = .bfloat16) throws
        -> [GPUCheckResult]
    {
        let layout = KVBlockLayout(layers: 3, kvHeads: 2, headDim: headDim, blockTokens: blockTokens, dtype: dtype)
        let layer = 1
        let poolBlocks = 96
        let contexts = [1, 100, 700, 17]
        let maxBlocks = layout.blocks(forTokens: contexts.max()!)
        // Each sequence gets distinct blocks in shuffled order, so block-table indexing is exercised.
        var free = Array(0..<poolBlocks).shuffled()
        var tables = [[Int32]]()
        for c in contexts {
            tables.append((0..<layout.blocks(forTokens: c)).map { _ in Int32(free.removeLast()) })
        }
        let tableStride = maxBlocks
        var flatTables = [Int32](repeating: -1, count: contexts.count * tableStride)
        for (s, t) in tables.enumerated() { for (i, b) in t.enumerated() { flatTables[s * tableStride + i] = b } }
        // Blocks further apart than their size, so the kernels' use of the stride is exercised.
        let stride = (layout.blockBytes + 15) / 16 * 16 + 8192
        let pool = try poisoned(poolBlocks * stride)
        // New K/V for every token of every sequence, written by kv_write as one batch.
        let te = layout.tokenElements
        let kvStride = 2 * te + 64
        let totalTokens = contexts.reduce(0, +)
        let kv = HostReference.randomNormal(totalTokens * kvStride)
        var slots: [Int32] = []
        for (s, c) in contexts.enumerated() {
            for t in 0..<c { slots.append(tables[s][t / layout.blockTokens] * Int32(layout.blockTokens) + Int32(t % layout.blockTokens)) }
        }
        let kvb = try upload(kv)
        let slotb = try upload(slots)
        try kernels.writeKV(
            pool: pool.address, blockStride: stride, k: kvb.address, v: kvb.address + UInt64(te * 4), kvStride: kvStride, slots: slotb.address,
            tokens: totalTokens, layer: layer, layout: layout, stream: stream)
        // The pool must hold exactly the rounded (bf16) or coded (fp8) K/V at each token's place.
        let stored = try storedKV(
            pool: pool, blocks: poolBlocks, stride: stride, layout: layout, layer: layer, slots: slots, kv: kv, kvStride: kvStride)
        let keys = stored.keys
        let values = stored.values
        var results = [
            GPUCheckResult(
                name:
                    "kv write (\(dtype), head dim \(headDim)) \(totalTokens) tokens into the block-major pool (mismatching elements\(dtype.isScaled ? " and scales" : ""))",
                error: Double(stored.mismatches), tolerance: 0)
        ]
        let tableb = try upload(flatTables)
        let hd = layout.headDim
        let scale = 1 / Float(hd).squareRoot()
        let groupSize = qHeads / layout.kvHeads
        var firstToken = [0]
        for c in contexts { firstToken.append(firstToken.last! + c) }

        // The K/V as written, before any rounding: an fp8 pool's output is also compared with
        // attention over them, which shows E4M3's own error.
        let exactKeys = (0..<totalTokens).map { Array(kv[($0 * kvStride)..<($0 * kvStride + te)]) }
        let exactValues = (0..<totalTokens).map { Array(kv[($0 * kvStride + te)..<($0 * kvStride + 2 * te)]) }

        func reference(q: [Float], rowSeq: [Int], rowLen: [Int], exact: Bool = false) -> [Double] {
            let kRows = exact ? exactKeys : keys
            let vRows = exact ? exactValues : values
            var out = [Double](repeating: 0, count: rowSeq.count * qHeads * hd)
            for r in 0..<rowSeq.count {
                // The window's first position (0 without one).
                let first = window.map { max(0, rowLen[r] - $0) } ?? 0
                for h in 0..<qHeads {
                    let kvh = h / groupSize
                    var scores = [Double]()
                    for t in first..<rowLen[r] {
                        let k = kRows[firstToken[rowSeq[r]] + t]
                        var s = 0.0
                        for d in 0..<hd { s += Double(q[r * qHeads * hd + h * hd + d] * scale) * Double(k[kvh * hd + d]) }
                        scores.append(s)
                    }
                    let mx = scores.max()!
                    let e = scores.map { exp($0 - mx) }
                    let z = e.reduce(0, +)
                    for t in first..<rowLen[r] {
                        let v = vRows[firstToken[rowSeq[r]] + t]
                        for d in 0..<hd { out[(r * qHeads + h) * hd + d] += e[t - first] / z * Double(v[kvh * hd + d]) }
                    }
                }
            }
            return out
        }

        // freshTokens 1 lets decode blocks read K/V before waiting for the previous kernel (here
        // nothing is still writing the pool, so both paths must give the reference).
        func run(name: String, rowSeq: [Int], rowLen: [Int], splits: Int, freshTokens: Int = 1) throws {
            let rows = rowSeq.count
            let q = HostReference.randomNormal(rows * qHeads * hd)
            let qb = try upload(q)
            let rowb = try upload(rowSeq.map(Int32.init))
            let lenb = try upload(rowLen.map(Int32.init))
            let scratch = try device.allocate(CUDAKernels.attentionScratchFloats(rows: rows, qHeads: qHeads, headDim: hd, splits: splits) * 4)
            let out = try poisoned(rows * qHeads * hd * 2)
            try kernels.pagedAttention(
                q: qb.address, qStride: qHeads * hd, pool: pool.address, blockStride: stride, blockTables: tableb.address, tableStride: tableStride,
                rowTable: rowb.address, contextLengths: lenb.address, maxContext: rowLen.max()!, output: out.address,
                rows: rows, qHeads: qHeads, layer: layer, layout: layout, scale: scale, window: window, splits: splits,
                freshTokens: freshTokens,
                scratch: scratch.address, stream: stream)
            let got = try downloadBF16(out, count: rows * qHeads * hd)
            results.append(
                GPUCheckResult(
                    name: dtype == .bfloat16 ? name : "\(dtype) pool: " + name,
                    error: HostReference.relativeError(got, reference(q: q, rowSeq: rowSeq, rowLen: rowLen)), tolerance: 8e-3))
            if dtype.isScaled, freshTokens == 1, splits == 1 {
                // Random normal K/V: E4M3 moves the output by some 3% (fp8-kv.md measured 5.6% on
                // heads spanning four decades).
                results.append(
                    GPUCheckResult(
                        name: "\(dtype) pool against attention over the unrounded K/V: " + name,
                        error: HostReference.relativeError(got, reference(q: q, rowSeq: rowSeq, rowLen: rowLen, exact: true)), tolerance: 0.1))
            }
        }
        let seqs = Array(contexts.indices)
        if let window {
            // Only the decode shapes: the prefill rows below are the same kernels.
            try run(
                name: "paged decode attention, window \(window), head dim \(hd), GQA \(qHeads)/\(layout.kvHeads), contexts \(contexts), 1 split",
                rowSeq: seqs, rowLen: contexts, splits: 1)
            try run(
                name: "paged decode attention, window \(window), head dim \(hd), contexts \(contexts), 3 splits", rowSeq: seqs, rowLen: contexts,
                splits: 3)
            let p = contexts[1]
            try run(
                name: "paged prefill attention (decode kernels), window \(window), head dim \(hd), \(p) causal query rows, 2 splits",
                rowSeq: Array(repeating: 1, count: p), rowLen: Array(1...p), splits: 2, freshTokens: Int(Int32.max))
            return Array(results.dropFirst())
        }
        try run(
            name: "paged decode attention, head dim \(hd), blocks of \(blockTokens), contexts \(contexts), GQA \(qHeads)/\(layout.kvHeads), 1 split",
            rowSeq: seqs, rowLen: contexts, splits: 1)
        try run(name: "paged decode attention, head dim \(hd), contexts \(contexts), 5 splits", rowSeq: seqs, rowLen: contexts, splits: 5)
        // Two splits: at head dim 128 on compute capability 9.0 and later, one cluster of two blocks
        // that combine between themselves; four: the split kernel and the combine, as graph steps
        // of 16 rows past 8K tokens take them; twelve: the combine's form past 8 splits (long
        // contexts at batch 1), most of the short rows' splits empty.
        try run(name: "paged decode attention, head dim \(hd), contexts \(contexts), 2 splits", rowSeq: seqs, rowLen: contexts, splits: 2)
        try run(name: "paged decode attention, head dim \(hd), contexts \(contexts), 4 splits", rowSeq: seqs, rowLen: contexts, splits: 4)
        try run(name: "paged decode attention, head dim \(hd), contexts \(contexts), 12 splits", rowSeq: seqs, rowLen: contexts, splits: 12)
        try run(
            name: "paged decode attention, head dim \(hd), contexts \(contexts), 5 splits, waiting before any read", rowSeq: seqs,
            rowLen: contexts, splits: 5, freshTokens: Int(Int32.max))
        // Prefill: every token of sequence 1 as a query row, causally masked by its context length.
        let p = contexts[1]
        try run(
            name: "paged prefill attention, head dim \(hd), \(p) causal query rows, 3 splits", rowSeq: Array(repeating: 1, count: p),
            rowLen: Array(1...p), splits: 3,
            freshTokens: Int(Int32.max))
        return results
    }

    func checkPrefillAttention() throws -> [GPUCheckResult] {
        // Every kernel variant: ungrouped heads (four warps), grouped heads with one and with two
        // row tiles per warp, at both head dims, and at head dim 128 the launcher's own choice (on
        // Hopper the wgmma kernel) with groups of 4 and 3, block sizes that are no power of two
        // (bulk copies of 16 and 8 tokens), blocks of one smallest bulk copy (8 tokens), blocks
        // of a whole key tile (one copy of 128 tokens), 3 persistent blocks for the step's 28 work
        // units (each block's stage ring running on across several units, as on a long prompt), and
        // blocks of 12 tokens, which bulk copies cannot take (the launcher then keeps mma.sync).
        try checkPrefillAttention(headDim: 128, qHeads: 8, kvHeads: 2, blockTokens: 16, wide: false)
            + checkPrefillAttention(headDim: 128, qHeads: 8, kvHeads: 2, blockTokens: 64, wide: true)
            + checkPrefillAttention(headDim: 128, qHeads: 8, kvHeads: 2, blockTokens: 64, wide: nil)
            + checkPrefillAttention(headDim: 128, qHeads: 6, kvHeads: 2, blockTokens: 48, wide: nil)
            + checkPrefillAttention(headDim: 64, qHeads: 2, kvHeads: 2, blockTokens: 64, wide: nil)
            + checkPrefillAttention(headDim: 128, qHeads: 2, kvHeads: 2, blockTokens: 24, wide: nil)
            + checkPrefillAttention(headDim: 128, qHeads: 4, kvHeads: 1, blockTokens: 8, wide: nil)
            + checkPrefillAttention(headDim: 128, qHeads: 8, kvHeads: 2, blockTokens: 128, wide: nil)
            + checkPrefillAttention(headDim: 128, qHeads: 8, kvHeads: 2, blockTokens: 64, wide: nil, persistentBlocks: 3)
            + checkPrefillAttention(headDim: 128, qHeads: 8, kvHeads: 2, blockTokens: 12, wide: nil)
            + checkPrefillAttention(headDim: 64, qHeads: 8, kvHeads: 2, blockTokens: 16, wide: false)
            + checkPrefillAttention(headDim: 64, qHeads: 8, kvHeads: 2, blockTokens: 64, wide: true)
    }

    /// One step mixing a prefill from position 0, a chunk starting mid-sequence (its earlier
    /// tokens already cached), decode rows and a chunk of exactly one tile, through the tile table
    /// and one launch of the tensor-core kernel.
    func checkPrefillAttention(
        headDim hd: Int, qHeads: Int, kvHeads: Int, blockTokens: Int, wide: Bool?, window: Int? = nil, dtype: KVDType = .bfloat16,
        persistentBlocks: Int? = nil
    ) throws -> [GPUCheckResult] {
        let layout = KVBlockLayout(layers: 3, kvHeads: kvHeads, headDim: hd, blockTokens: blockTokens, dtype: dtype)
        let layer = 1
        // (tokens cached before the step, new tokens in the step) per sequence.
        let seqs = [(0, 100), (300, 77), (512, 1), (0, 64), (40, 1)]
        let contexts = seqs.map { $0.0 + $0.1 }
        let blocksPer = contexts.map { layout.blocks(forTokens: $0) }
        let poolBlocks = blocksPer.reduce(0, +) + 5
        var free = Array(0..<poolBlocks).shuffled()
        let tables = blocksPer.map { n in (0..<n).map { _ in Int32(free.removeLast()) } }
        let tableStride = blocksPer.max()! + 1
        var flatTables = [Int32](repeating: -1, count: seqs.count * tableStride)
        for (s, t) in tables.enumerated() { for (i, b) in t.enumerated() { flatTables[s * tableStride + i] = b } }
        // NaN everywhere but the sequences' own K/V: slots past a context are read (as a tile's
        // tail) only if the kernel fails to mask them, and would then turn the output into NaN.
        let stride = (layout.blockBytes + 15) / 16 * 16 + 4096
        let pool = try poisoned(poolBlocks * stride)
        let te = layout.tokenElements
        let kvStride = 2 * te
        let totalTokens = contexts.reduce(0, +)
        let kv = HostReference.randomNormal(totalTokens * kvStride)
        var slots: [Int32] = []
        for (s, c) in contexts.enumerated() {
            for t in 0..<c { slots.append(tables[s][t / blockTokens] * Int32(blockTokens) + Int32(t % blockTokens)) }
        }
        let kvb = try upload(kv)
        let slotb = try upload(slots)
        try kernels.writeKV(
            pool: pool.address, blockStride: stride, k: kvb.address, v: kvb.address + UInt64(te * 4), kvStride: kvStride,
            slots: slotb.address, tokens: totalTokens, layer: layer, layout: layout, stream: stream)
        var firstToken = [0]
        for c in contexts { firstToken.append(firstToken.last! + c) }
        let stored = try storedKV(
            pool: pool, blocks: poolBlocks, stride: stride, layout: layout, layer: layer, slots: slots, kv: kv, kvStride: kvStride)
        func key(_ s: Int, _ t: Int, _ i: Int) -> Double { Double(stored.keys[firstToken[s] + t][i]) }
        func value(_ s: Int, _ t: Int, _ i: Int) -> Double { Double(stored.values[firstToken[s] + t][i]) }

        var chunks: [PrefillChunk] = []
        var rows = 0
        for (i, (cached, new)) in seqs.enumerated() {
            chunks.append(PrefillChunk(queryStart: rows, queryLength: new, contextLength: cached + new, tableRow: i))
            rows += new
        }
        // Query rows wider than the query heads, as a fused qkv projection leaves them.
        let qStride = (qHeads + 2 * kvHeads) * hd
        let q = HostReference.randomNormal(rows * qStride)
        let tiles = CUDAKernels.prefillTiles(chunks)
        let qb = try upload(q)
        let tableb = try upload(flatTables)
        let tileb = try upload(tiles)
        let out = try poisoned(rows * qHeads * hd * 2)
        let scale = 1 / Float(hd).squareRoot()
        let kvMap = try kernels.prefillKVMap(pool: pool.address, blocks: poolBlocks, blockStride: stride, layout: layout)
        try kernels.prefillAttention(
            q: qb.address, qStride: qStride, pool: pool.address, blockStride: stride, blockTables: tableb.address, tableStride: tableStride,
            tiles: tileb.address, tileCount: tiles.count / 4, output: out.address, qHeads: qHeads, layer: layer, layout: layout,
            scale: scale, window: window, wide: wide, kvMap: kvMap, persistentBlocks: persistentBlocks, stream: stream)
        let got = try downloadBF16(out, count: rows * qHeads * hd)
        let usesWarpgroupMMA =
            CUDAKernels.prefillLaunchShape(
                headDim: hd, group: qHeads / kvHeads, wide: wide, dtype: dtype,
                hopper: kvMap != nil
            ).name == CUDAKernels.prefillHopperKernel

        let group = qHeads / kvHeads
        var ref = [Double](repeating: 0, count: rows * qHeads * hd)
        for (s, c) in chunks.enumerated() {
            for j in 0..<c.queryLength {
                let r = c.queryStart + j
                let visible = c.contextLength - c.queryLength + j + 1
                let first = window.map { max(0, visible - $0) } ?? 0
                for h in 0..<qHeads {
                    let kvh = h / group
                    var scores = [Double](repeating: 0, count: visible - first)
                    for t in first..<visible {
                        var dot = 0.0
                        for d in 0..<hd { dot += Double(q[r * qStride + h * hd + d]) * key(s, t, kvh * hd + d) }
                        scores[t - first] = dot * Double(scale)
                    }
                    let mx = scores.max()!
                    let e = scores.map { exp($0 - mx) }
                    let z = e.reduce(0, +)
                    for t in first..<visible {
                        for d in 0..<hd { ref[(r * qHeads + h) * hd + d] += e[t - first] / z * value(s, t, kvh * hd + d) }
                    }
                }
            }
        }
        let shape = seqs.map { $0.0 == 0 ? "\($0.1)" : "\($0.0)+\($0.1)" }.joined(separator: ", ")
        return [
            GPUCheckResult(
                name: "\(dtype) pool: kv write into a poisoned pool (mismatching elements and scales)", error: Double(stored.mismatches),
                tolerance: 0),
            GPUCheckResult(
                name:
                    "\(dtype == .bfloat16 ? "" : "\(dtype) pool: ")prefill attention (tensor cores)\(window.map { ", window \($0)" } ?? ""), head dim \(hd), GQA \(qHeads)/\(kvHeads)\(wide == true ? " wide" : "")\(usesWarpgroupMMA ? " (wgmma)" + (persistentBlocks.map { ", \($0) persistent blocks" } ?? "") : ""), \(blockTokens)-token blocks, chunks [cached+]new \(shape) in one launch",
                error: HostReference.relativeError(got, ref), tolerance: 8e-3),
        ]
    }

    func checkSampling() throws -> [GPUCheckResult] {
        let forms = kernels.library.device.info.hasClusters ? [false, true] : [false]
        return try forms.flatMap { try checkArgmax(clustered: $0) }
    }

    /// `argmax_f32`, or its cluster-of-8 form, against the host's argmax: random rows of a 128K
    /// vocabulary, one with its largest value twice in different eighths of the row (the cluster's
    /// blocks 1 and 6), and a vocabulary not divisible by 4 (the kernel's scalar path) with a tie.
    private func checkArgmax(clustered: Bool) throws -> [GPUCheckResult] {
        let form = clustered ? ", 8 blocks a row" : ""
        // One set of rows with `ties` set to 100 (a tie across them within a row): the rows whose
        // device argmax is not the host's.
        func check(rows: Int, vocab: Int, ties: [Int], row tied: Int) throws -> GPUCheckResult {
            var logits = HostReference.randomNormal(rows * vocab, scale: 4)
            for i in ties { logits[tied * vocab + i] = 100 }
            let lb = try upload(logits)
            let out = try poisoned(rows * 4)
            try kernels.argmax(logits: lb.address, rows: rows, vocab: vocab, output: out.address, stream: stream, clustered: clustered)
            try stream.synchronize()
            let got = try out.download(Int32.self, count: rows)
            let wrong = (0..<rows).filter { Int(got[$0]) != Sampler.argmax(Array(logits[$0 * vocab..<($0 + 1) * vocab])) }.count
            return GPUCheckResult(name: "argmax \(rows)x\(vocab), a tie in row \(tied)\(form) (wrong rows)", error: Double(wrong), tolerance: 0)
        }
        // A vocabulary not divisible by 4 takes the kernel's scalar path.
        return [try check(rows: 4, vocab: 128_256, ties: [20_000, 100_000], row: 2), try check(rows: 3, vocab: 1001, ties: [7, 900], row: 1)]
    }
}
