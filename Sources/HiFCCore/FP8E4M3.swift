/// The FP8 E4M3 format of fp8 KV blocks (`KVDType.fp8e4m3`), as the OCP FP8 specification and
/// NVIDIA's `__nv_fp8_e4m3` define it: 1 sign bit, 4 exponent bits of bias 7, 3 mantissa bits;
/// subnormals below 2^-6 in steps of 2^-9; largest finite ±448; 0x7f and 0xff are NaN and there
/// are no infinities. The backends' kernels encode and decode the same codes; this is the host
/// reference their checks compare with, and what the accuracy benchmark simulates scales with.
public enum FP8E4M3 {
    /// The largest finite value.
    public static let largest: Float = 448

    /// `x` rounded to the nearest code (ties to even), saturated to ±448; NaN becomes 0x7f.
    public static func encode(_ x: Float) -> UInt8 {
        let sign: UInt8 = x.sign == .minus ? 0x80 : 0
        let a = abs(x)
        if a.isNaN { return 0x7f }
        if a >= largest { return sign | 0x7e }
        if a < 0x1p-6 { return sign | UInt8((a * 512).rounded(.toNearestOrEven)) }  // 8 rounds up to 0x08 = 2^-6
        var exponent = Int(a.exponent)
        var q = Int(((a.significand - 1) * 8).rounded(.toNearestOrEven))
        if q == 8 {
            q = 0
            exponent += 1
        }
        return sign | UInt8((exponent + 7) << 3) | UInt8(q)
    }

    /// The value of `code`.
    public static func decode(_ code: UInt8) -> Float {
        let exponent = Int(code >> 3) & 15
        let mantissa = Float(code & 7)
        let magnitude: Float
        if code & 0x7f == 0x7f {
            magnitude = .nan
        } else if exponent == 0 {
            magnitude = mantissa * 0x1p-9
        } else {
            magnitude = Float(sign: .plus, exponent: exponent - 7, significand: 1 + mantissa / 8)
        }
        return code & 0x80 != 0 ? -magnitude : magnitude
    }

    /// The smallest scale of a group of values whose largest magnitude is `amax`: `amax / 448`,
    /// so the group's largest value is coded as ±448 (0 for an all-zero group). The writers of
    /// both backends search up from it (`hifc_fp8_e4m3_code_head`, common.cuh).
    public static func scale(amax: Float) -> Float { amax / largest }
}
