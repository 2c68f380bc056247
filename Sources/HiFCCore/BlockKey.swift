/// The name of one KV block in the flash tier.
///
/// Two kinds share one 128-bit space: a block of a swapped-out sequence (which is meaningless after
/// the process that swapped it exits, so recovery reclaims it) and a content-addressed prefix block
/// (the hash of its tokens and of everything before them, which stays valid across restarts and
/// between instances that share a model).
public struct BlockKey: Hashable, Sendable, CustomStringConvertible {
    /// What a key names, and so what recovery does with it.
    public enum Kind: UInt8, Sendable {
        /// Block `index` of swapped sequence `sequence`: reclaimed at restart.
        case sequence = 1
        /// A prefix block named by the hash of its content: kept across restarts.
        case content = 2
    }

    /// What this key names.
    public var kind: Kind
    /// High 64 bits: the sequence id, or the first half of the content hash.
    public var high: UInt64
    /// Low 64 bits: the block index within the sequence, or the second half of the content hash.
    public var low: UInt64

    /// A key from its raw parts, as read back from a slot header.
    public init(kind: Kind, high: UInt64, low: UInt64) {
        self.kind = kind
        self.high = high
        self.low = low
    }

    /// The key of block `index` of sequence `sequence`.
    public static func sequence(_ sequence: UInt64, block index: Int) -> BlockKey {
        BlockKey(kind: .sequence, high: sequence, low: UInt64(index))
    }

    /// The key of a content-addressed prefix block.
    public static func content(high: UInt64, low: UInt64) -> BlockKey {
        BlockKey(kind: .content, high: high, low: low)
    }

    public var description: String {
        switch kind {
        case .sequence: return "seq\(high)/block\(low)"
        case .content:
            let h = String(high, radix: 16)
            let l = String(low, radix: 16)
            return "prefix:" + String(repeating: "0", count: 16 - h.count) + h
                + String(repeating: "0", count: 16 - l.count) + l
        }
    }
}
