/// The element type of KV cache entries.
public enum KVDType: String, Sendable, CaseIterable {
    case float32, bfloat16, float16

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float32: return 4
        case .bfloat16, .float16: return 2
        }
    }
}

/// The block-major layout of one paged-KV block (DESIGN.md, "Block-major KV layout").
///
/// One block holds every layer's K and V for `blockTokens` consecutive tokens, contiguously:
/// `[layer][K|V][token][kvHead][headDim]`. A block is therefore one large, aligned, sequential I/O
/// when it is swapped (64 tokens of an 8B Llama in bf16 = 8 MiB) with no gather across layers.
public struct KVBlockLayout: Hashable, Sendable {
    /// Transformer layers.
    public var layers: Int
    /// Key/value heads (grouped-query attention shares each among several query heads).
    public var kvHeads: Int
    /// Elements per head.
    public var headDim: Int
    /// Tokens per block (the paper uses 64).
    public var blockTokens: Int
    /// Element type.
    public var dtype: KVDType

    /// A layout; every count must be positive.
    public init(layers: Int, kvHeads: Int, headDim: Int, blockTokens: Int, dtype: KVDType) {
        precondition(layers > 0 && kvHeads > 0 && headDim > 0 && blockTokens > 0)
        self.layers = layers
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.blockTokens = blockTokens
        self.dtype = dtype
    }

    /// Elements of one token's K (or V) in one layer.
    public var tokenElements: Int { kvHeads * headDim }
    /// Elements of one layer's K (or V) for the whole block.
    public var planeElements: Int { blockTokens * tokenElements }
    /// Elements of one block.
    public var blockElements: Int { layers * 2 * planeElements }
    /// Bytes of one block.
    public var blockBytes: Int { blockElements * dtype.size }
    /// Bytes from one block's start to the next in a KV pool, and of one block's payload on
    /// flash: `blockBytes` rounded up to the 4 KiB page (`FlashLayout.padded`), so every block of a
    /// pool is aligned for O_DIRECT and cuFile. Every pool and budget uses this one stride.
    public var blockStride: Int { FlashLayout.padded(blockBytes) }
    /// Bytes of KV per token, all layers.
    public var bytesPerToken: Int { layers * 2 * tokenElements * dtype.size }

    /// Element offset, within a block, of `token`'s K (`value == false`) or V in `layer`.
    public func elementOffset(layer: Int, value: Bool, token: Int) -> Int {
        ((layer * 2 + (value ? 1 : 0)) * blockTokens + token) * tokenElements
    }

    /// Blocks needed to hold `tokens` tokens.
    public func blocks(forTokens tokens: Int) -> Int { (tokens + blockTokens - 1) / blockTokens }
}
