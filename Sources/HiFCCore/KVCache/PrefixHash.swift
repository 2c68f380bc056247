import Crypto

/// The content address of one full KV block: a SHA-256 chain over the cache namespace, an
/// optional tenant salt, and every token up to the end of the block.
///
/// Block `i`'s hash is `SHA-256(hash of block i-1 ‖ token ids of block i)`, and the chain starts
/// from `SHA-256(tag ‖ namespace ‖ salt)`. Equal hashes therefore mean an equal namespace (model,
/// KV dtype, block size, layout), an equal salt and equal tokens from the first one on, so a block
/// found under its hash, on the device or on flash, after a restart or written by another
/// instance, holds the KV that computing it would produce. The flash key is the hash's first 128
/// bits (`key`); SHA-256 rather than a fast non-cryptographic hash because a key that two
/// different prefixes share would silently serve one tenant's KV to another (vLLM moved to SHA-256
/// block keys after such an advisory).
///
/// Only full blocks are hashed: a partial last block is never shared.
public struct PrefixHash: Hashable, Sendable, CustomStringConvertible {
    /// The 32 digest bytes as four big-endian words.
    public let words: (UInt64, UInt64, UInt64, UInt64)

    private init(digest: SHA256.Digest) {
        self.init(bytes: Array(digest))
    }

    /// A hash from its 32 digest bytes.
    init(bytes: [UInt8]) {
        precondition(bytes.count == 32)
        var words: [UInt64] = [0, 0, 0, 0]
        for (index, byte) in bytes.enumerated() { words[index / 8] = words[index / 8] << 8 | UInt64(byte) }
        self.words = (words[0], words[1], words[2], words[3])
    }

    /// The start of every chain in `namespace`, for requests with `salt` (nil or empty: none).
    ///
    /// The salt is a request's `cache_salt`: prefixes cached under one salt are invisible to
    /// requests with another or none.
    public static func root(namespace: PrefixNamespace, salt: String? = nil) -> PrefixHash {
        var hasher = SHA256()
        hasher.update(data: Array("hifc-prefix-root".utf8))
        hasher.update(data: namespace.digest)
        let saltBytes = Array((salt ?? "").utf8)
        hasher.update(data: Self.littleEndian(UInt64(saltBytes.count)))
        hasher.update(data: saltBytes)
        return PrefixHash(digest: hasher.finalize())
    }

    /// The hash of the prefix extended by one block of `tokens`.
    public func appending<Tokens: Collection>(_ tokens: Tokens) -> PrefixHash where Tokens.Element == Int {
        var hasher = SHA256()
        withUnsafeBytes(of: bigEndianWords) { hasher.update(bufferPointer: $0) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tokens.count * 4)
        for token in tokens {
            // Token ids are below 2^32 in every vocabulary; four little-endian bytes each.
            let value = UInt32(truncatingIfNeeded: token)
            bytes += [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 24)]
        }
        hasher.update(data: bytes)
        return PrefixHash(digest: hasher.finalize())
    }

    /// The hashes of the full blocks of `tokens` after `root`, in order.
    public static func chain(_ tokens: [Int], blockTokens: Int, from root: PrefixHash) -> [PrefixHash] {
        precondition(blockTokens > 0)
        var hashes: [PrefixHash] = []
        hashes.reserveCapacity(tokens.count / blockTokens)
        var hash = root
        var start = 0
        while start + blockTokens <= tokens.count {
            hash = hash.appending(tokens[start..<start + blockTokens])
            hashes.append(hash)
            start += blockTokens
        }
        return hashes
    }

    /// The flash key of the block this hash names: the digest's first 128 bits.
    public var key: BlockKey { .content(high: words.0, low: words.1) }

    public var description: String { key.description }

    public static func == (a: PrefixHash, b: PrefixHash) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
    }

    private var bigEndianWords: (UInt64, UInt64, UInt64, UInt64) {
        (words.0.bigEndian, words.1.bigEndian, words.2.bigEndian, words.3.bigEndian)
    }

    private static func littleEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(value >> (8 * $0) & 0xFF) }
    }
}
