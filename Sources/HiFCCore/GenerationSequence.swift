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
    /// No KV on the device: new, or preempted by recompute (it prefills all its tokens again).
    case waiting
    /// KV on the device; scheduled for compute when the step's budget allows.
    case running
    /// Preempted: its blocks are being written to `tier`; the device blocks stay held until the
    /// write completes.
    case swappingOut(SwapTier)
    /// Its KV lives only in `tier`.
    case swapped(SwapTier)
    /// Device blocks allocated and reads from `tier` in flight; it runs once all have arrived.
    case swappingIn(SwapTier)
}

/// One sequence being generated: its tokens, how many have KV in the cache, its block table.
///
/// Only the `Scheduler` changes a sequence; everyone else reads it.
public struct GenerationSequence: Sendable {
    /// The sequence's id.
    public let id: SequenceID
    /// Rank of arrival: lower came first (first-come-first-served order).
    public let arrival: UInt64
    /// Prompt tokens followed by the tokens generated so far.
    public internal(set) var tokens: [Int]
    /// How many of `tokens` are the prompt.
    public let promptCount: Int
    /// Tokens whose KV is in the cache (on the device, or in the tier while swapped).
    public internal(set) var computed: Int
    /// Device blocks holding the computed tokens' KV.
    public internal(set) var table: BlockTable
    /// Where the sequence is.
    public internal(set) var status: SequenceStatus
    /// Set when the request is aborted while blocks are in flight; the sequence is dropped when
    /// its I/O completes.
    internal var abortRequested = false

    /// A new sequence of `prompt`, waiting.
    public init(id: SequenceID, arrival: UInt64, prompt: [Int], blockTokens: Int) {
        precondition(!prompt.isEmpty, "a sequence needs at least one prompt token")
        self.id = id
        self.arrival = arrival
        self.tokens = prompt
        self.promptCount = prompt.count
        self.computed = 0
        self.table = BlockTable(blockTokens: blockTokens)
        self.status = .waiting
    }

    /// Tokens generated so far.
    public var generatedCount: Int { tokens.count - promptCount }
    /// The generated tokens.
    public var generated: ArraySlice<Int> { tokens[promptCount...] }
    /// Tokens still to compute before the next token can be sampled.
    public var uncomputed: Int { tokens.count - computed }
    /// Blocks that hold the computed tokens (what a swap writes and reads).
    public var computedBlocks: Int { (computed + table.blockTokens - 1) / table.blockTokens }
}
