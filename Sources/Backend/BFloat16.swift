/// bfloat16 values as raw bits, converted the way the GPU kernels and PyTorch convert them.
public enum BFloat16 {
    /// The bfloat16 nearest to `x` (round to nearest even), as bits; a NaN stays a quiet NaN.
    public static func bits(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        if (u & 0x7fff_ffff) > 0x7f80_0000 { return UInt16(truncatingIfNeeded: (u >> 16) | 0x40) }
        return UInt16(truncatingIfNeeded: (u &+ 0x7fff &+ ((u >> 16) & 1)) >> 16)
    }

    /// The float value of bfloat16 `bits`.
    public static func float(bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }
}
