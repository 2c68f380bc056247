/// The content address of a prompt prefix, block by block, for the persistent prefix cache: block
/// `i`'s hash covers its own tokens and, through the previous hash, every token before it, so
/// equal hashes mean equal prefixes (up to a 128-bit collision) and a prefix's KV found on flash
/// can be loaded instead of recomputed.
///
/// Only full blocks are hashed (a partial last block is never shared). `namespace` keeps apart
/// the caches of different models or KV layouts that share a flash region.
public struct PrefixHash: Hashable, Sendable, CustomStringConvertible {
    /// High 64 bits.
    public let high: UInt64
    /// Low 64 bits.
    public let low: UInt64

    /// The hash before any block: the namespace alone.
    public init(namespace: UInt64) {
        high = Self.mix(namespace ^ 0x243F_6A88_85A3_08D3)
        low = Self.mix(namespace ^ 0x1319_8A2E_0370_7344)
    }

    private init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The hash of the prefix extended by one block of `tokens`.
    public func appending<Tokens: Collection>(_ tokens: Tokens) -> PrefixHash where Tokens.Element == Int {
        // Two lanes with different multipliers, each absorbing every token and the count, then a
        // final cross-mix so every output bit depends on both lanes.
        var a = high
        var b = low
        for token in tokens {
            let t = UInt64(bitPattern: Int64(token))
            a = Self.mix(a ^ t) &* 0x9E37_79B9_7F4A_7C15
            b = Self.mix(b &+ t &* 0xC2B2_AE3D_27D4_EB4F) ^ (b >> 29)
        }
        let count = UInt64(tokens.count)
        return PrefixHash(high: Self.mix(a ^ b ^ count), low: Self.mix(b &+ a &+ count &* 0x1656_67B1_9E37_79F9))
    }

    /// The hashes of every full block of `tokens`, in order.
    public static func chain(_ tokens: [Int], blockTokens: Int, namespace: UInt64) -> [PrefixHash] {
        precondition(blockTokens > 0)
        var hash = PrefixHash(namespace: namespace)
        var hashes: [PrefixHash] = []
        var start = 0
        while start + blockTokens <= tokens.count {
            hash = hash.appending(tokens[start..<start + blockTokens])
            hashes.append(hash)
            start += blockTokens
        }
        return hashes
    }

    /// The flash key of the block this hash names.
    public var key: BlockKey { .content(high: high, low: low) }

    public var description: String { key.description }

    /// A 64-bit finalizer (MurmurHash3's fmix64): every input bit affects every output bit.
    private static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x = x &* 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        x = x &* 0xC4CE_B9FE_1A85_EC53
        x ^= x >> 33
        return x
    }
}
