/// The multithreaded matrix product used when no CBLAS library is found:
/// `c[m×n] = a[m×k] · b[n×k]ᵀ`, all row-major and contiguous.
///
/// Both operands are read along `k`, so each output is a dot product of two contiguous rows. The
/// work is split over `b`'s rows (the weight's output features) among threads; within a thread a
/// 4×4 tile of outputs shares every load of `a` and `b`.
enum SwiftGEMM {
    static func multiplyTransposed(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        _ c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int
    ) {
        let minimumRows = max(1, 65_536 / max(k * max(m, 1), 1))
        parallelRanges((n + 3) / 4, minimumPerTask: minimumRows) { tiles in
            let n0 = tiles.lowerBound * 4
            let n1 = min(n, tiles.upperBound * 4)
            var j = n0
            while j < n1 {
                let nj = min(4, n1 - j)
                var i = 0
                while i < m {
                    let mi = min(4, m - i)
                    if mi == 4 && nj == 4 {
                        tile4x4(a + i * k, b + j * k, c + i * n + j, n: n, k: k)
                    } else {
                        for ii in 0..<mi {
                            for jj in 0..<nj {
                                c[(i + ii) * n + j + jj] = dot(a + (i + ii) * k, b + (j + jj) * k, k)
                            }
                        }
                    }
                    i += 4
                }
                j += 4
            }
        }
    }

    @inline(__always)
    static func load4(_ p: UnsafePointer<Float>) -> SIMD4<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD4<Float>.self)
    }

    /// One dot product of two rows of `k` floats.
    @inline(__always)
    static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ k: Int) -> Float {
        var s0 = SIMD4<Float>()
        var s1 = SIMD4<Float>()
        var p = 0
        while p + 8 <= k {
            s0 += load4(x + p) * load4(y + p)
            s1 += load4(x + p + 4) * load4(y + p + 4)
            p += 8
        }
        var total = (s0 + s1).sum()
        while p < k {
            total += x[p] * y[p]
            p += 1
        }
        return total
    }

    /// Outputs `c[0..<4][0..<4]` (row stride `n`) from rows `a[0..<4]` and `b[0..<4]`.
    @inline(__always)
    static func tile4x4(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        _ c: UnsafeMutablePointer<Float>, n: Int, k: Int
    ) {
        let a0 = a
        let a1 = a + k
        let a2 = a + 2 * k
        let a3 = a + 3 * k
        let b0 = b
        let b1 = b + k
        let b2 = b + 2 * k
        let b3 = b + 3 * k
        let zero = SIMD4<Float>()
        var s00 = zero
        var s01 = zero
        var s02 = zero
        var s03 = zero
        var s10 = zero
        var s11 = zero
        var s12 = zero
        var s13 = zero
        var s20 = zero
        var s21 = zero
        var s22 = zero
        var s23 = zero
        var s30 = zero
        var s31 = zero
        var s32 = zero
        var s33 = zero
        var p = 0
        while p + 4 <= k {
            let x0 = load4(a0 + p)
            let x1 = load4(a1 + p)
            let x2 = load4(a2 + p)
            let x3 = load4(a3 + p)
            let y0 = load4(b0 + p)
            let y1 = load4(b1 + p)
            let y2 = load4(b2 + p)
            let y3 = load4(b3 + p)
            s00 += x0 * y0
            s01 += x0 * y1
            s02 += x0 * y2
            s03 += x0 * y3
            s10 += x1 * y0
            s11 += x1 * y1
            s12 += x1 * y2
            s13 += x1 * y3
            s20 += x2 * y0
            s21 += x2 * y1
            s22 += x2 * y2
            s23 += x2 * y3
            s30 += x3 * y0
            s31 += x3 * y1
            s32 += x3 * y2
            s33 += x3 * y3
            p += 4
        }
        let sums = [s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33]
        let rowsA = [a0, a1, a2, a3]
        let rowsB = [b0, b1, b2, b3]
        for r in 0..<4 {
            for col in 0..<4 {
                var total = sums[r * 4 + col].sum()
                var q = p
                while q < k {
                    total += rowsA[r][q] * rowsB[col][q]
                    q += 1
                }
                c[r * n + col] = total
            }
        }
    }
}
