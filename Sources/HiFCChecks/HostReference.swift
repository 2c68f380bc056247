import Backend

/// bf16 bit conversions and float64 reference versions of the kernels, for checking them on the GPU.
public enum HostReference {
    /// bf16 bits of `x`, rounded to nearest even (as the kernels and PyTorch do).
    public static func bf16(_ x: Float) -> UInt16 { BFloat16.bits(x) }

    /// The float value of bf16 bits.
    public static func float(bf16 bits: UInt16) -> Float { BFloat16.float(bits: bits) }

    /// `x` rounded to bf16 and back.
    public static func roundBF16(_ x: Float) -> Float { float(bf16: bf16(x)) }

    /// ‖a − b‖ / ‖b‖ (b the reference); infinite when anything is NaN.
    public static func relativeError(_ a: [Float], _ b: [Double]) -> Double {
        precondition(a.count == b.count)
        var num = 0.0
        var den = 0.0
        for (x, y) in zip(a, b) {
            if x.isNaN || y.isNaN { return .infinity }
            num += (Double(x) - y) * (Double(x) - y)
            den += y * y
        }
        return den == 0 ? (num == 0 ? 0 : .infinity) : (num / den).squareRoot()
    }

    /// Standard-normal samples (Box–Muller), scaled.
    public static func randomNormal(_ n: Int, scale: Float = 1) -> [Float] {
        var g = SystemRandomNumberGenerator()
        return (0..<n).map { _ in
            let u1 = Float.random(in: Float.ulpOfOne..<1, using: &g)
            let u2 = Float.random(in: 0..<1, using: &g)
            return scale * (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
        }
    }

    /// Llama's inverse rotary frequencies, with Llama-3 scaling when `llama3` is given
    /// (factor, low/high frequency factors, original context length).
    public static func ropeInverseFrequencies(
        headDim: Int, theta: Double,
        llama3: (factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalContext: Double)? = nil
    ) -> [Float] {
        (0..<headDim / 2).map { i in
            var f = 1.0 / pow(theta, Double(2 * i) / Double(headDim))
            if let s = llama3 {
                let lowWavelen = s.originalContext / s.lowFreqFactor
                let highWavelen = s.originalContext / s.highFreqFactor
                let wavelen = 2 * Double.pi / f
                if wavelen > lowWavelen {
                    f /= s.factor
                } else if wavelen >= highWavelen {
                    let smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
                    f = (1 - smooth) * f / s.factor + smooth * f
                }
            }
            return Float(f)
        }
    }

    /// silu(gate)·up in float64 for `rows` fused gate|up rows of `n` (gate in the first n/2
    /// columns, up in the rest): `[rows, n/2]`.
    public static func siluGated(_ gateUp: [Double], rows: Int, n: Int) -> [Double] {
        let inter = n / 2
        var out: [Double] = []
        out.reserveCapacity(rows * inter)
        for r in 0..<rows {
            for i in 0..<inter {
                let g = gateUp[r * n + i]
                out.append(g / (1 + exp(-g)) * gateUp[r * n + inter + i])
            }
        }
        return out
    }

    /// `x · wᵀ` in float64: `x` is `[m, k]`, `w` is `[n, k]`, the result `[m, n]`.
    public static func linear(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int) -> [Double] {
        var out = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for l in 0..<k { s += Double(x[i * k + l]) * Double(w[j * k + l]) }
                out[i * n + j] = s
            }
        }
        return out
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
