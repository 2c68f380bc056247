import CUDA
import Foundation

/// The kernels only some model families use, against float64 host references: Qwen3's and
/// Gemma 3's per-head q/k RMSNorm, Gemma's GELU-tanh gate and its scaled embeddings.
extension GPUSelfCheck {
    func checkFamilyOps() throws -> [GPUCheckResult] {
        var results: [GPUCheckResult] = []
        // Head dims of Qwen3 (128) and Gemma 3 (256), and one that no warp divides evenly.
        for (tokens, heads, kvHeads, hd) in [(5, 16, 8, 128), (3, 4, 1, 256), (7, 6, 2, 40)] {
            let width = (heads + 2 * kvHeads) * hd
            let x = HostReference.randomNormal(tokens * width, scale: 2)
            let (qw, qv) = try uploadBF16(HostReference.randomNormal(hd, scale: 0.3).map { $0 + 1 })
            let (kw, kv) = try uploadBF16(HostReference.randomNormal(hd, scale: 0.3).map { $0 + 1 })
            let xb = try upload(x)
            let out = try poisoned(tokens * width * 4)
            let eps: Float = 1e-6
            try kernels.queryKeyHeadNorm(
                x: xb.address, output: out.address, queryWeight: qw.address, keyWeight: kw.address, tokens: tokens, heads: heads,
                kvHeads: kvHeads, headDim: hd, eps: eps, stream: stream)
            var ref = x.map(Double.init)
            for t in 0..<tokens {
                for head in 0..<(heads + kvHeads) {
                    let base = t * width + head * hd
                    let w = head < heads ? qv : kv
                    let meanSquare = (0..<hd).reduce(0.0) { $0 + Double(x[base + $1]) * Double(x[base + $1]) } / Double(hd)
                    let inverse = 1 / (meanSquare + Double(eps)).squareRoot()
                    for i in 0..<hd { ref[base + i] = Double(x[base + i]) * inverse * Double(w[i]) }
                }
            }
            results.append(
                GPUCheckResult(
                    name: "q/k head rmsnorm \(tokens) tokens, \(heads)+\(kvHeads) heads of \(hd) (v copied)",
                    error: HostReference.relativeError(try downloadF32(out, count: tokens * width), ref), tolerance: 1e-5))
        }
        for (rows, inter) in [(3, 6912), (16, 2048), (1, 37)] {
            let gu = HostReference.randomNormal(rows * 2 * inter, scale: 2)
            let gb = try upload(gu)
            let out = try poisoned(rows * inter * 2)
            try kernels.geluTanhMul(
                gate: gb.address, up: gb.address + UInt64(inter * 4), stride: 2 * inter, output: out.address, inter: inter, rows: rows,
                stream: stream)
            var ref = [Double](repeating: 0, count: rows * inter)
            for r in 0..<rows {
                for c in 0..<inter {
                    let g = Double(gu[r * 2 * inter + c])
                    let u = Double(gu[r * 2 * inter + inter + c])
                    ref[r * inter + c] = 0.5 * g * (1 + tanh((2 / Double.pi).squareRoot() * (g + 0.044715 * g * g * g))) * u
                }
            }
            results.append(
                GPUCheckResult(
                    name: "gelu-tanh*mul \(rows)x\(inter) fused gate|up",
                    error: HostReference.relativeError(try downloadBF16(out, count: rows * inter), ref),
                    tolerance: 8e-3))
        }
        let n = 5 * 1152
        let x = HostReference.randomNormal(n)
        let xb = try upload(x)
        let out = try poisoned(n * 4)
        let factor = Float(1152.0.squareRoot())
        try kernels.scale(xb.address, output: out.address, factor: factor, count: n, stream: stream)
        results.append(
            GPUCheckResult(
                name: "scale \(n) by sqrt(1152)", error: HostReference.relativeError(try downloadF32(out, count: n), x.map { Double($0 * factor) }),
                tolerance: 1e-7))
        return results
    }
}
