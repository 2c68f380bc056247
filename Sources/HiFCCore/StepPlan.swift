/// Identifies one transfer of blocks the scheduler planned, for the report of its outcome.
public typealias TransferID = UInt64

/// What one engine step does, as the scheduler decided it.
///
/// The engine deletes `deletes` from the tiers, then starts the plan's `writes` and `reads` (their
/// I/O overlaps this step's compute), runs the forward pass over `prefills` and `decodes`,
/// samples one token for each chunk whose `samples` is true, and reports back with
/// `Scheduler.completeStep`, `writeCompleted` and `readCompleted`. A plan never deletes a key it
/// writes: a write that lands before a delete of its key carried out after it would be lost.
public struct StepPlan: Sendable {
    /// Tokens `start ..< start + count` of a sequence, computed this step.
    public struct Chunk: Hashable, Sendable {
        /// The sequence.
        public var sequence: SequenceID
        /// Position of the first token.
        public var start: Int
        /// Number of tokens.
        public var count: Int
        /// Whether the chunk ends at the sequence's last token, so a next token is sampled.
        public var samples: Bool
    }

    /// Device blocks written to a tier, one batch (on flash: one sequential run).
    public struct Write: Hashable, Sendable {
        /// Why the blocks are written.
        public enum Purpose: Hashable, Sendable {
            /// A preempted sequence's blocks that the tier does not hold yet.
            case swapOut(SequenceID)
            /// Cached prefix blocks saved to flash (the prefix cache's second level).
            case savePrefix
        }

        /// The transfer's id.
        public var id: TransferID
        /// The tier written.
        public var tier: SwapTier
        /// Why.
        public var purpose: Purpose
        /// Device blocks, each stored under the key at the same index.
        public var blocks: [Int]
        /// The tier keys.
        public var keys: [BlockKey]
    }

    /// Blocks read from a tier into newly allocated device blocks of one sequence.
    public struct Read: Hashable, Sendable {
        /// Why the blocks are read.
        public enum Purpose: Hashable, Sendable {
            /// A swapped sequence's blocks coming back.
            case swapIn
            /// Prefix blocks found on flash, loaded instead of computed.
            case loadPrefix
        }

        /// The transfer's id.
        public var id: TransferID
        /// The tier read.
        public var tier: SwapTier
        /// Why.
        public var purpose: Purpose
        /// The sequence.
        public var sequence: SequenceID
        /// Device blocks, each filled from the key at the same index.
        public var blocks: [Int]
        /// The tier keys.
        public var keys: [BlockKey]
        /// Tokens the blocks hold.
        public var tokens: Int
        /// The swap prefetch that read some of `keys` into host memory ahead of this read (its
        /// blocks are copied from there; the others are read from the tier); nil when none did.
        public var prefetch: TransferID? = nil
    }

    /// A swapped sequence's blocks read from its tier into host memory ahead of its resume,
    /// while its device blocks are not free yet: the swap-in that resumes it (`Read.prefetch`)
    /// then copies them from host memory instead of waiting on the tier.
    public struct Prefetch: Hashable, Sendable {
        /// The transfer's id (`Read.prefetch` names it).
        public var id: TransferID
        /// The tier read.
        public var tier: SwapTier
        /// The swapped sequence.
        public var sequence: SequenceID
        /// The tier keys of its blocks from the first (those the device still caches too).
        public var keys: [BlockKey]
    }

    /// A sequence preempted this step.
    public struct Preemption: Hashable, Sendable {
        /// The sequence.
        public var sequence: SequenceID
        /// What happens to its KV.
        public var choice: PreemptionChoice
        /// Tokens whose KV it had.
        public var tokens: Int
    }

    /// Blocks to remove from a tier (no one needs them any more, or the prefix cache drops them).
    public struct Delete: Hashable, Sendable {
        /// The tier.
        public var tier: SwapTier
        /// The keys.
        public var keys: [BlockKey]
    }

    /// Prefill chunks (a prompt, or the tokens of a sequence being recomputed).
    public var prefills: [Chunk] = []
    /// One-token decodes.
    public var decodes: [Chunk] = []
    /// Sequences preempted this step (their writes, if any, are among `writes`).
    public var preemptions: [Preemption] = []
    /// Blocks written to tiers.
    public var writes: [Write] = []
    /// Blocks read from tiers.
    public var reads: [Read] = []
    /// Swapped sequences' blocks read into host memory ahead of their resume.
    public var prefetches: [Prefetch] = []
    /// Prefetches whose host copies are no longer wanted (their sequence ended, resumed without
    /// needing them, or is no longer among the next to resume): dropped, or when still in flight,
    /// dropped as they end.
    public var droppedPrefetches: [TransferID] = []
    /// Blocks removed from tiers (none of the keys `writes` writes to the same tier).
    public var deletes: [Delete] = []
    /// Tokens found in the device's prefix cache by sequences admitted this step.
    public var deviceHitTokens = 0

    /// An empty plan.
    public init() {}

    /// Every chunk computed this step, prefills first.
    public var chunks: [Chunk] { prefills + decodes }
    /// Tokens computed this step.
    public var scheduledTokens: Int { chunks.reduce(0) { $0 + $1.count } }
    /// (query, key) pairs the step's attention covers.
    public var attendedPairs: Double { chunks.reduce(0) { $0 + StepTimeModel.attendedPairs(from: $1.start, to: $1.start + $1.count) } }
    /// Whether the step computes anything.
    public var hasCompute: Bool { !prefills.isEmpty || !decodes.isEmpty }
    /// Whether the step does nothing at all.
    public var isEmpty: Bool {
        !hasCompute && preemptions.isEmpty && writes.isEmpty && reads.isEmpty && deletes.isEmpty && prefetches.isEmpty
            && droppedPrefetches.isEmpty
    }
}
