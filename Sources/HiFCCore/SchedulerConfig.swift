/// When cached prefix blocks are written to flash, the prefix cache's second level
/// (`--prefix-cache-write`).
public enum PrefixWritePolicy: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// A block is saved as it nears eviction from the device (least recently used free blocks
    /// first), so only blocks the device is about to forget cost SSD writes.
    case onEvict = "on-evict"
    /// Every full block is saved as soon as it is computed: everything survives a restart, at
    /// the most SSD writes.
    case writeThrough = "write-through"
    /// Like `onEvict`, but only blocks taken from the device cache at least twice: spares the SSD
    /// the blocks nobody reuses.
    case reused

    public var description: String { rawValue }
}

/// Whether prefix blocks found on flash are loaded or recomputed.
public enum PrefixLoadDecision: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Whichever `KVCostModel` predicts is faster (the default).
    case costModel = "cost-model"
    /// Always load (to measure loading against recomputing).
    case always
    /// Never load: flash is written but not read for prefixes.
    case never

    public var description: String { rawValue }
}

/// The limits and policies the scheduler works within.
public struct SchedulerConfig: Hashable, Sendable {
    /// Tokens per KV block.
    public var blockTokens: Int
    /// KV blocks on the device (the KV budget).
    public var deviceBlocks: Int
    /// Bytes of one KV block (for the cost model).
    public var blockBytes: Int
    /// Most tokens computed in one step (prefill chunks plus decodes).
    public var maxStepTokens: Int
    /// Most sequences running (or loading) at once.
    public var maxRunning: Int
    /// What happens to preempted sequences.
    public var preemption: PreemptionMode
    /// Most swapped sequences whose blocks are read back at once (prefetch depth).
    public var prefetchDepth: Int
    /// Tokens every sequence on the device, and a swapped one resuming, must be able to grow by
    /// in the blocks left free before the swapped one resumes (hysteresis against swapping it
    /// straight back out; 0: only a block per running sequence).
    public var resumeHeadroomTokens: Int
    /// Whether full blocks are shared by content (automatic prefix caching).
    public var prefixCaching: Bool
    /// The namespace of the content hashes (model, KV layout, backend).
    public var namespace: PrefixNamespace
    /// Whether a flash tier exists (for swaps and the prefix cache's second level).
    public var hasFlashTier: Bool
    /// Whether a DRAM (host memory) tier exists: `swap-dram`'s, `auto`'s first choice while it
    /// has room, and `swap-flash`'s once the day's flash write budget is spent.
    public var hasDRAMTier: Bool
    /// Blocks the DRAM tier holds at most: swaps that would not fit go elsewhere.
    public var dramBlocks: Int
    /// When prefix blocks are saved to flash (with `prefixCaching` and a flash tier).
    public var prefixWritePolicy: PrefixWritePolicy
    /// Most content blocks this instance keeps on flash for the prefix cache.
    public var prefixFlashBlocks: Int
    /// Most prefix blocks being written to flash at once (the rest wait, so prefix saves never
    /// crowd out swap I/O).
    public var prefixWritesInFlight: Int
    /// Whether prefix blocks found on flash are loaded.
    public var prefixLoadDecision: PrefixLoadDecision
    /// The most a step shared with a less-served request may take, as a multiple of the time
    /// (by the step-time model) of that request's own part of it: the more-served requests'
    /// tokens fit in the rest (`FairShare.Pace`). Nil: only the token cap of `FairShare.Step`.
    public var sharedStepSlowdown: Double?

    /// A configuration; counts must be positive.
    public init(
        blockTokens: Int, deviceBlocks: Int, blockBytes: Int, maxStepTokens: Int = 512,
        maxRunning: Int = 256, preemption: PreemptionMode = .swapFlash, prefetchDepth: Int = 2,
        resumeHeadroomTokens: Int = SchedulerConfig.defaultResumeHeadroomTokens, prefixCaching: Bool = true, namespace: PrefixNamespace,
        hasFlashTier: Bool = true, hasDRAMTier: Bool = false, dramBlocks: Int = .max,
        prefixWritePolicy: PrefixWritePolicy = .onEvict, prefixFlashBlocks: Int = 0, prefixWritesInFlight: Int = 16,
        prefixLoadDecision: PrefixLoadDecision = .costModel,
        sharedStepSlowdown: Double? = SchedulerConfig.defaultSharedStepSlowdown
    ) {
        precondition(blockTokens > 0 && deviceBlocks > 0 && maxStepTokens > 0 && maxRunning > 0 && prefetchDepth > 0 && resumeHeadroomTokens >= 0)
        precondition(sharedStepSlowdown.map { $0 > 1 } ?? true, "a shared step's slowdown must be above 1, or the more-served requests never advance")
        self.blockTokens = blockTokens
        self.deviceBlocks = deviceBlocks
        self.blockBytes = blockBytes
        self.maxStepTokens = maxStepTokens
        self.maxRunning = maxRunning
        self.preemption = preemption
        self.prefetchDepth = prefetchDepth
        self.resumeHeadroomTokens = resumeHeadroomTokens
        self.prefixCaching = prefixCaching
        self.namespace = namespace
        self.hasFlashTier = hasFlashTier
        self.hasDRAMTier = hasDRAMTier
        self.dramBlocks = dramBlocks
        self.prefixWritePolicy = prefixWritePolicy
        self.prefixFlashBlocks = prefixFlashBlocks
        self.prefixWritesInFlight = prefixWritesInFlight
        self.prefixLoadDecision = prefixLoadDecision
        self.sharedStepSlowdown = sharedStepSlowdown
    }

    /// The default `resumeHeadroomTokens`: against none, it cut govreport x0.05 on the CPU from 25
    /// preemptions to 2 (bench/results/swap-cpu.md); other values are not measured yet.
    public static let defaultResumeHeadroomTokens = 128

    /// The default `sharedStepSlowdown`: a normal client's 16-token completions beside a
    /// 64-sequence flood on the 2-core VM (bench/results/chaos.md, "A time budget for shared steps").
    public static let defaultSharedStepSlowdown = 1.5

    /// Most tokens one sequence can ever hold on the device.
    public var maxSequenceTokens: Int { deviceBlocks * blockTokens }
    /// Whether prefix blocks go to flash at all.
    public var savesPrefixesToFlash: Bool { prefixCaching && hasFlashTier && prefixFlashBlocks > 0 }
}
