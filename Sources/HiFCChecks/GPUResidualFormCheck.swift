import CUDA
import Foundation

/// The skinny GEMM's residual form (`skinnyResidualLinear`) and the products that take its rows
/// with their row scale, against float64 host references: the sum, the normed rows made whole
/// (`applyRowScale`), and a plain and a gated product over them. Launches of one, two and four
/// tiles; widths that leave a CTA's last rows empty; sums of squares staged in the products'
/// shared memory (8 rows of 256 parts fill a one-tile buffer) and, at 5 rows of 8192 (512 parts a
/// row, too many for it), read through L1.
extension GPUSelfCheck {
    func checkResidualForm() throws -> [GPUCheckResult] {
        // (m, n, k, features of the product after): n is the norm's width.
        let shapes = [
            (1, 4096, 512, 1000), (3, 200, 576, 336), (5, 8192, 128, 1000), (8, 4096, 256, 1000), (9, 576, 64, 1000), (16, 256, 128, 28672),
            (16, 64, 96, 40),
        ]
        return try shapes.flatMap {
            (m, n, k, next) in
            let eps: Float = 1e-5
            let (x, xv) = try uploadBF16(HostReference.randomNormal(m * k))
            let (w, wv) = try uploadBF16(HostReference.randomNormal(n * k, scale: 0.05))
            let residualValues = HostReference.randomNormal(m * n, scale: 2)
            let residual = try upload(residualValues)
            let (normWeight, gv) = try uploadBF16(HostReference.randomNormal(n, scale: 0.2).map { $0 + 1 })
            let sum = try poisoned(m * n * 4)
            let normed = try poisoned(m * n * 2)
            let squares = try poisoned(SkinnyRowScale.squaresBytes(parts: kernels.skinnyGEMMParts(m: m, n: n)))
            let rowScale = try kernels.skinnyResidualLinear(
                x: x.address, w: w.address, m: m, n: n, k: k, residual: residual.address, sum: sum.address,
                normWeight: normWeight.address, normed: normed.address, squares: squares.address, epsilon: eps, stream: stream)
            let products = HostReference.linear(xv, wv, m: m, n: n, k: k)
            let sumRef = zip(products, residualValues).map { $0 + Double($1) }
            var normedRef = [Double](repeating: 0, count: m * n)
            for r in 0..<m {
                let row = sumRef[(r * n)..<(r * n + n)]
                let inverse = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(n) + Double(eps)).squareRoot()
                for c in 0..<n { normedRef[r * n + c] = sumRef[r * n + c] * inverse * Double(gv[c]) }
            }
            let whole = try poisoned(m * n * 2)
            try kernels.applyRowScale(values: normed.address, rowScale: rowScale, output: whole.address, rows: m, dim: n, stream: stream)
            let name = "residual linear \(m)x\(k) · (\(n)x\(k))ᵀ"

            // The products after it take the unscaled rows and scale their sums; the reference
            // takes the exact norm, so the only differences are bf16 roundings.
            let (w2, w2v) = try uploadBF16(HostReference.randomNormal(next * n, scale: 0.05))
            let y = try poisoned(m * next * 4)
            try kernels.skinnyLinear(x: normed.address, w: w2.address, y: y.address, m: m, n: next, k: n, rowScale: rowScale, stream: stream)
            let yRef = HostReference.linear(normedRef.map { Float($0) }, w2v, m: m, n: next, k: n)
            let inter = next / 2
            let gated = try poisoned(m * inter * 2)
            try kernels.skinnySiluGatedLinear(
                x: normed.address, w: w2.address, out: gated.address, m: m, n: next, k: n, rowScale: rowScale, stream: stream)
            let gatedRef = HostReference.siluGated(yRef, rows: m, n: next)
            return [
                GPUCheckResult(
                    name: name + ": residual + product, f32", error: HostReference.relativeError(try downloadF32(sum, count: m * n), sumRef),
                    tolerance: 1e-5),
                GPUCheckResult(
                    name: name + ": normed rows made whole, bf16",
                    error: HostReference.relativeError(try downloadBF16(whole, count: m * n), normedRef), tolerance: 8e-3),
                GPUCheckResult(
                    name: name + ", then a \(next)-feature product of its rows",
                    error: HostReference.relativeError(try downloadF32(y, count: m * next), yRef),
                    tolerance: 1e-2),
                GPUCheckResult(
                    name: name + ", then a gated \(next)-row product of its rows",
                    error: HostReference.relativeError(try downloadBF16(gated, count: m * inter), gatedRef), tolerance: 1.5e-2),
            ]
        }
    }
}
