/// The id the engine gives a sequence (one per request).
public typealias SequenceID = UInt64

/// Where the KV of a preempted sequence waits while it is not on the device.
public enum SwapTier: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Host memory: the baseline vLLM swaps to.
    case dram
    /// The flash cache (the HiFC tier).
    case flash

    public var description: String { rawValue }
}

/// Where a sequence is in its life, as the scheduler tracks it.
public enum SequenceStatus: Hashable, Sendable {
    /// No KV on the device: new, or preempted by recompute (its cached prefix, on the device or
    /// on flash, may still spare it some of the work).
    case waiting
    /// KV on the device; scheduled for compute when the step's budget allows.
    case running
    /// Device blocks allocated and reads from `tier` in flight (a swap-in, or prefix blocks
    /// found on flash); it runs once they have arrived.
    case loading(SwapTier)
    /// Preempted: its blocks are being written to `tier`.
    case swappingOut(SwapTier)
    /// Its KV lives in `tier` (and maybe partly still in the device's cache).
    case swapped(SwapTier)
}

/// One sequence being generated: its tokens, how many have KV, and the content hashes of its
/// full blocks.
///
/// Only the `Scheduler` changes a sequence; everyone else reads it. Its device blocks are the
/// `KVCacheManager`'s business.
public struct GenerationSequence: Sendable {
    /// The sequence's id.
    public let id: SequenceID
    /// Rank of arrival: lower came first (first-come-first-served order).
    public let arrival: UInt64
    /// Prompt tokens followed by the tokens generated so far.
    public private(set) var tokens: [Int]
    /// How many of `tokens` are the prompt.
    public let promptCount: Int
    /// Most tokens the sequence may reach (prompt and generated), its request's limit.
    public let maxTotalTokens: Int
    /// Tokens whose KV is in the cache (on the device, or in the tier while swapped).
    public internal(set) var computed: Int
    /// Where the sequence is.
    public internal(set) var status: SequenceStatus
    /// Prompt tokens whose KV came from the prefix cache (device or flash) when the sequence was
    /// first admitted (OpenAI's `usage.prompt_tokens_details.cached_tokens`).
    public internal(set) var cachedPromptTokens = 0
    /// Whether the sequence has been admitted at least once.
    public internal(set) var admitted = false
    /// The chain's start: the cache namespace and the request's salt.
    public let hashRoot: PrefixHash
    /// Content hashes of the full blocks of `tokens`, in order.
    public private(set) var blockHashes: [PrefixHash]
    /// Tokens per block.
    public let blockTokens: Int
    /// Set when the request is aborted while blocks are in flight; the sequence is dropped when
    /// its I/O completes.
    internal var abortRequested = false

    /// A new sequence of `prompt`, waiting, that may grow to `maxTotalTokens` tokens; its full
    /// blocks are hashed from `hashRoot`.
    public init(id: SequenceID, arrival: UInt64, prompt: [Int], maxTotalTokens: Int = .max, blockTokens: Int, hashRoot: PrefixHash) {
        precondition(!prompt.isEmpty, "a sequence needs at least one prompt token")
        self.id = id
        self.arrival = arrival
        self.tokens = prompt
        self.promptCount = prompt.count
        self.maxTotalTokens = max(maxTotalTokens, prompt.count)
        self.computed = 0
        self.status = .waiting
        self.blockTokens = blockTokens
        self.hashRoot = hashRoot
        self.blockHashes = PrefixHash.chain(prompt, blockTokens: blockTokens, from: hashRoot)
    }

    /// Appends a generated token (hashing the block it completes).
    mutating func append(_ token: Int) {
        tokens.append(token)
        if tokens.count % blockTokens == 0 {
            let start = tokens.count - blockTokens
            blockHashes.append((blockHashes.last ?? hashRoot).appending(tokens[start...]))
        }
    }

    /// Tokens generated so far.
    public var generatedCount: Int { tokens.count - promptCount }
    /// The generated tokens.
    public var generated: ArraySlice<Int> { tokens[promptCount...] }
    /// Tokens still to compute before the next token can be sampled.
    public var uncomputed: Int { tokens.count - computed }
    /// Blocks that hold the computed tokens (what a swap writes and reads).
    public var computedBlocks: Int { (computed + blockTokens - 1) / blockTokens }

    /// The tier key of the sequence's block `index`: its content hash when the block is full
    /// within `tokens` computed tokens, else the sequence's own key (a partial block is never
    /// shared, and is rewritten whenever the sequence is swapped out again).
    public func key(ofBlock index: Int, computedTokens tokens: Int) -> BlockKey {
        (index + 1) * blockTokens <= tokens && index < blockHashes.count ? blockHashes[index].key : .sequence(id, block: index)
    }
}
