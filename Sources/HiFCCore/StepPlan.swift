/// What one engine step does, as the scheduler decided it.
///
/// The engine starts `swapOuts` and `swapIns` on the swapper first (their I/O overlaps this step's
/// compute), then runs the forward pass over `prefills` and `decodes`, samples one token for each
/// chunk whose `samples` is true, and reports back with `Scheduler.completeStep`.
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

    /// Device blocks of a sequence moving between the device and a tier. `blocks[i]` is the
    /// device block of the sequence's block `i` (the tier names it `BlockKey.sequence(id, block: i)`).
    public struct Swap: Hashable, Sendable {
        /// The sequence.
        public var sequence: SequenceID
        /// The tier written or read.
        public var tier: SwapTier
        /// Device blocks in the sequence's block order.
        public var blocks: [Int]
        /// Tokens whose KV the blocks hold.
        public var tokens: Int
    }

    /// A sequence preempted by recompute: its device blocks are already free and it waits to
    /// prefill its `tokens` tokens again.
    public struct Recompute: Hashable, Sendable {
        /// The sequence.
        public var sequence: SequenceID
        /// Tokens whose KV was dropped and will be computed again.
        public var tokens: Int
    }

    /// Prefill chunks (a prompt, or the tokens of a sequence being recomputed).
    public var prefills: [Chunk] = []
    /// One-token decodes.
    public var decodes: [Chunk] = []
    /// Preempted sequences whose blocks are written to a tier.
    public var swapOuts: [Swap] = []
    /// Swapped sequences whose blocks are read back into newly allocated device blocks.
    public var swapIns: [Swap] = []
    /// Sequences preempted by recompute.
    public var recomputes: [Recompute] = []

    /// An empty plan.
    public init() {}

    /// Every chunk computed this step, prefills first.
    public var chunks: [Chunk] { prefills + decodes }
    /// Tokens computed this step.
    public var scheduledTokens: Int { chunks.reduce(0) { $0 + $1.count } }
    /// Whether the step computes anything.
    public var hasCompute: Bool { !prefills.isEmpty || !decodes.isEmpty }
    /// Whether the step does nothing at all.
    public var isEmpty: Bool { !hasCompute && swapOuts.isEmpty && swapIns.isEmpty && recomputes.isEmpty }
}
