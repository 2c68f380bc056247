/// Joins the CRC32Cs of consecutive equal-sized pieces into the CRC32C of the whole, the way
/// zlib's `crc32_combine` does: shifting a CRC past `n` zero bytes is a linear map over GF(2),
/// precomputed once for the piece size.
public struct CRC32CCombiner: Sendable {
    /// The piece size the shift operator was built for.
    public let pieceBytes: Int
    // The "append pieceBytes zero bytes" operator as four 256-entry tables, one per byte of the
    // CRC it shifts: a swap combines 512 pieces for each 8 MiB block, with four lookups each
    // instead of up to 32 conditional XORs.
    private let shiftTables: [UInt32]

    /// A combiner for pieces of `pieceBytes` bytes.
    public init(pieceBytes: Int) {
        precondition(pieceBytes > 0)
        self.pieceBytes = pieceBytes
        // The operator for one zero bit, then squared up to the piece's bit count.
        var one = [UInt32](repeating: 0, count: 32)
        one[0] = 0x82F6_3B78
        for i in 1..<32 { one[i] = 1 << (i - 1) }
        var result: [UInt32]? = nil
        var power = one
        var bits = pieceBytes * 8
        while bits > 0 {
            if bits & 1 == 1 { result = result.map { CRC32CCombiner.compose(power, $0) } ?? power }
            power = CRC32CCombiner.compose(power, power)
            bits >>= 1
        }
        let shift = result!
        shiftTables = (0..<4).flatMap { k in (0..<256).map { CRC32CCombiner.apply(shift, UInt32($0) << (8 * k)) } }
    }

    /// The CRC of A followed by B, given CRC(A), CRC(B) and B's length of `pieceBytes`.
    public func combine(_ crcA: UInt32, _ crcB: UInt32) -> UInt32 {
        shiftTables.withUnsafeBufferPointer { t in
            t[Int(crcA & 0xFF)] ^ t[256 + Int((crcA >> 8) & 0xFF)] ^ t[512 + Int((crcA >> 16) & 0xFF)] ^ t[768 + Int(crcA >> 24)]
        } ^ crcB
    }

    /// The CRC of the concatenation of pieces, each `pieceBytes` long except perhaps the last,
    /// whose length is `lastBytes`.
    public func combine(pieces: [UInt32], lastBytes: Int) -> UInt32 {
        guard var crc = pieces.first else { return 0 }
        for (i, piece) in pieces.enumerated().dropFirst() {
            if i == pieces.count - 1 && lastBytes != pieceBytes {
                crc = CRC32CCombiner(pieceBytes: lastBytes).combine(crc, piece)
            } else {
                crc = combine(crc, piece)
            }
        }
        return crc
    }

    private static func apply(_ m: [UInt32], _ v: UInt32) -> UInt32 {
        var v = v
        var sum: UInt32 = 0
        var i = 0
        while v != 0 {
            if v & 1 == 1 { sum ^= m[i] }
            v >>= 1
            i += 1
        }
        return sum
    }

    /// a ∘ b: apply b, then a.
    private static func compose(_ a: [UInt32], _ b: [UInt32]) -> [UInt32] { b.map { apply(a, $0) } }
}
