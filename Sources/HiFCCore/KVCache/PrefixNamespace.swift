import Crypto

/// Everything that changes the bytes of a KV block, digested into the root of every prefix hash,
/// so that KV written under one namespace is never found under another: another model, another
/// KV dtype or block size, another layout version, another tokenizer or another backend on the
/// same flash directory get no hit.
public struct PrefixNamespace: Hashable, Sendable, CustomStringConvertible {
    /// The version of the block-major KV layout (`KVBlockLayout`); raise it when the bytes of a
    /// block change meaning.
    public static let layoutVersion = 1

    /// SHA-256 of the components.
    public let digest: [UInt8]
    /// The components in words, for `hifc inspect` (the model only as its digest's start).
    public let summary: String

    /// The namespace of a model's KV blocks.
    ///
    /// - Parameters:
    ///   - modelIdentity: a digest of the model: its configuration, the index of its weights
    ///     (names, shapes, dtypes) and samples of their bytes, and its tokenizer (`Models`
    ///     computes it; see `ModelIdentity` there).
    ///   - layout: the KV block layout (layers, heads, head size, block tokens, dtype).
    ///   - backend: the backend computing the KV ("cpu", "cuda"): the same model on two backends
    ///     rounds differently, and greedy outputs must not depend on which one wrote a block.
    public init(modelIdentity: [UInt8], layout: KVBlockLayout, backend: String) {
        var hasher = SHA256()
        func add(_ text: String) {
            let bytes = Array(text.utf8)
            hasher.update(data: (0..<8).map { UInt8(UInt64(bytes.count) >> (8 * $0) & 0xFF) })
            hasher.update(data: bytes)
        }
        add("hifc-kv-namespace")
        add("layout \(Self.layoutVersion)")
        hasher.update(data: modelIdentity)
        add("layers \(layout.layers) kv-heads \(layout.kvHeads) head-dim \(layout.headDim)")
        add("block-tokens \(layout.blockTokens) dtype \(layout.dtype.rawValue)")
        add("backend \(backend)")
        digest = Array(hasher.finalize())
        let model = Self.hex(modelIdentity.prefix(6))
        summary =
            "model \(model), \(layout.layers) layers x \(layout.kvHeads) KV heads x \(layout.headDim), "
            + "\(layout.blockTokens)-token blocks, \(layout.dtype.rawValue), \(backend), layout v\(Self.layoutVersion)"
    }

    /// The digest's first 8 bytes as a number (never 0): what flash slot headers record of the
    /// namespace, so that blocks can be counted per namespace without their tokens.
    public var tag: UInt64 {
        let value = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return value == 0 ? 1 : value
    }

    /// The digest in hexadecimal (for `hifc inspect` and logs).
    public var hex: String { Self.hex(digest) }

    private static func hex<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    public var description: String { String(hex.prefix(16)) }
}
