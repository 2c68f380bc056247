/// The element type of KV cache entries.
public enum KVDType: String, Sendable, CaseIterable {
    case float32, bfloat16, float16
    /// FP8 E4M3 (1 sign, 4 exponent bits of bias 7, 3 mantissa bits; largest finite 448, no
    /// infinities) with one f32 scale per token and KV head (`KVBlockLayout.scaleOffset`): an
    /// element stands for `scale · e4m3`. The writer picks the scale, at least `max |x| / 448`
    /// over the head's values (both backends the least-error of eight, `hifc_fp8_e4m3_code_head`).
    case fp8e4m3

    /// Bytes per element (not counting an fp8 block's scales).
    public var size: Int {
        switch self {
        case .float32: return 4
        case .bfloat16, .float16: return 2
        case .fp8e4m3: return 1
        }
    }

    /// Whether each token's K and V of each KV head carry an f32 scale.
    public var isScaled: Bool { self == .fp8e4m3 }
}

/// `--kv-dtype`: the KV dtype a deployment asks for. `auto` is the backend's own (f32 on the
/// CPU, bf16 on CUDA); `bf16` and `fp8` ask for that dtype, and a backend that cannot keep it
/// refuses the pool with an error that names the dtype.
public enum KVDTypeChoice: String, Sendable, Hashable, CaseIterable {
    case auto, bf16, fp8

    /// The dtype this choice means on a backend whose own KV dtype is `backendDefault`.
    public func resolved(backendDefault: KVDType) -> KVDType {
        switch self {
        case .auto: return backendDefault
        case .bf16: return .bfloat16
        case .fp8: return .fp8e4m3
        }
    }
}

/// The block-major layout of one paged-KV block (DESIGN.md, "Block-major KV layout").
///
/// One block holds every layer's K and V for `blockTokens` consecutive tokens, contiguously:
/// `[layer][K|V][token][kvHead][headDim]`. A block is therefore one large, aligned, sequential I/O
/// when it is swapped (64 tokens of an 8B Llama in bf16 = 8 MiB) with no gather across layers.
///
/// An fp8 block (`KVDType.fp8e4m3`) keeps its scales inside the block, after the elements:
/// `[layer][K|V][token][kvHead]` f32 values (`scaleOffset`), so whatever moves a block (flash
/// slots, swaps, prefix loads, checksums) moves its scales with it, with no extra I/O.
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
    /// Bytes of one block's elements (the scales of an fp8 block follow them).
    public var elementBytes: Int { blockElements * dtype.size }
    /// Scales of one block: one per layer, K or V, token and KV head for a scaled dtype, else 0.
    public var blockScales: Int { dtype.isScaled ? layers * 2 * blockTokens * kvHeads : 0 }
    /// Bytes of one block: its elements, then (fp8) its f32 scales.
    public var blockBytes: Int { elementBytes + blockScales * 4 }
    /// Bytes from one block's start to the next in a KV pool, and of one block's payload on
    /// flash: `blockBytes` rounded up to the 4 KiB page (`FlashLayout.padded`), so every block of a
    /// pool is aligned for O_DIRECT and cuFile. Every pool and budget uses this one stride.
    public var blockStride: Int { FlashLayout.padded(blockBytes) }
    /// Bytes of KV per token, all layers, scales included.
    public var bytesPerToken: Int { layers * 2 * (tokenElements * dtype.size + (dtype.isScaled ? kvHeads * 4 : 0)) }

    /// Element offset, within a block, of `token`'s K (`value == false`) or V in `layer`.
    public func elementOffset(layer: Int, value: Bool, token: Int) -> Int {
        ((layer * 2 + (value ? 1 : 0)) * blockTokens + token) * tokenElements
    }

    /// Byte offset, within an fp8 block, of the f32 scale of `token`'s K (`value == false`) or V
    /// in `layer`, KV head 0 (the heads' scales follow one another).
    public func scaleOffset(layer: Int, value: Bool, token: Int) -> Int {
        elementBytes + ((layer * 2 + (value ? 1 : 0)) * blockTokens + token) * kvHeads * 4
    }

    /// Blocks needed to hold `tokens` tokens.
    public func blocks(forTokens tokens: Int) -> Int { (tokens + blockTokens - 1) / blockTokens }
}
