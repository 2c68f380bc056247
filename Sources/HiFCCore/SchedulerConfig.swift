/// The limits the scheduler works within.
public struct SchedulerConfig: Hashable, Sendable {
    /// Tokens per KV block.
    public var blockTokens: Int
    /// KV blocks on the device (the KV budget).
    public var deviceBlocks: Int
    /// Bytes of one KV block (for the cost model).
    public var blockBytes: Int
    /// Most tokens computed in one step (prefill chunks plus decodes).
    public var maxStepTokens: Int
    /// Most sequences running (or swapping in) at once.
    public var maxRunning: Int
    /// What happens to preempted sequences.
    public var preemption: PreemptionMode
    /// Most swapped sequences whose blocks are read back at once (prefetch depth).
    public var prefetchDepth: Int

    /// A configuration; counts must be positive.
    public init(
        blockTokens: Int, deviceBlocks: Int, blockBytes: Int, maxStepTokens: Int = 512,
        maxRunning: Int = 256, preemption: PreemptionMode = .swapFlash, prefetchDepth: Int = 2
    ) {
        precondition(blockTokens > 0 && deviceBlocks > 0 && maxStepTokens > 0 && maxRunning > 0 && prefetchDepth > 0)
        self.blockTokens = blockTokens
        self.deviceBlocks = deviceBlocks
        self.blockBytes = blockBytes
        self.maxStepTokens = maxStepTokens
        self.maxRunning = maxRunning
        self.preemption = preemption
        self.prefetchDepth = prefetchDepth
    }

    /// Most tokens one sequence can ever hold on the device.
    public var maxSequenceTokens: Int { deviceBlocks * blockTokens }
}
