import HiFCCore

/// How an `LLMEngine` runs: the command line's `serve` and `bench swap` flags map onto it.
public struct EngineConfiguration: Sendable, Hashable {
    /// Device memory for KV (`--kv-budget`).
    public var kvBudget: KVBudget
    /// Tokens per KV block (`--block-size`; the paper uses 64).
    public var blockTokens: Int
    /// The KV cache's element type (`--kv-dtype`): the backend's own, bf16, or fp8 E4M3 with
    /// scales (half of bf16's bytes on the device, on flash and in every swap and prefix load).
    public var kvDType: KVDTypeChoice
    /// Most tokens computed in one step: the chunked-prefill budget (`--max-batch-tokens`).
    public var maxStepTokens: Int
    /// Most sequences running at once (`--max-running`).
    public var maxRunning: Int
    /// What happens to preempted sequences (`--preemption`).
    public var preemption: PreemptionMode
    /// Most swapped sequences read back at once, while the current step computes (`--prefetch-depth`).
    public var prefetchDepth: Int
    /// Host memory of the DRAM swap tier (`--dram-swap`): `swap-dram`'s, `auto`'s first choice while
    /// it has room, and `swap-flash`'s past a flash write budget.
    public var hostSwapCapacity: ByteSize
    /// Bytes each flash region may take per day (`--flash-daily-write-budget`); past the day's
    /// budget, swaps go to DRAM (`--dram-swap`) or are recomputed, and prefix saves wait.
    public var flashDailyWriteBudget: ByteSize?
    /// The endurance of each flash region, bytes written (`--flash-tbw`): with
    /// `flashTargetLifetime`, it sets a daily write budget of its own.
    public var flashEnduranceTBW: ByteSize?
    /// How long the flash regions must last (`--flash-target-lifetime`): the engine keeps to a
    /// daily write budget of `flashEnduranceTBW` / (years x 365), or `flashDailyWriteBudget` where
    /// that is smaller.
    public var flashTargetLifetime: TargetLifetime?
    /// Host memory the next swapped sequences to resume (`prefetchDepth` of them) may have their
    /// flash blocks read into while the device has no room for them yet, so that their swap-in
    /// at resume copies from host memory instead of waiting on the disk (0: none).
    public var swapPrefetchCapacity: ByteSize = .gib(2)
    /// Tokens the sequences on the device must be able to grow by before a swapped one resumes
    /// (hysteresis against swapping it straight back out; `SchedulerConfig.resumeHeadroomTokens`).
    public var resumeHeadroomTokens: Int = SchedulerConfig.defaultResumeHeadroomTokens
    /// The most a step shared with a less-served request may take, as a multiple of that
    /// request's own part of it (`--fair-step-slowdown`; `SchedulerConfig.sharedStepSlowdown`);
    /// nil: only the token cap.
    public var sharedStepSlowdown: Double? = SchedulerConfig.defaultSharedStepSlowdown
    /// Whether a step is launched behind the one before it (`--overlap-steps`): where the
    /// backend runs ahead of the host by default.
    public var stepOverlap: StepOverlap = .auto
    /// The name `/v1/models` lists; nil: the model directory's name.
    public var modelID: String?
    /// This engine's index among the replicas of a data-parallel server (`--data-parallel`): the
    /// `replica` label of its metrics.
    public var replica: Int
    /// Whether requests share the KV of their common prefixes (`--prefix-cache`).
    public var prefixCaching: Bool
    /// When cached prefix blocks are saved to flash (`--prefix-cache-write`).
    public var prefixCacheWrite: PrefixWritePolicy
    /// Flash bytes the prefix cache may keep (`--prefix-cache-flash-size`); nil: half of the
    /// flash tier's regions, the other half left to swaps.
    public var prefixCacheFlashSize: ByteSize?
    /// Whether prefix blocks found on flash are loaded: as the cost model decides (the
    /// default), or always or never (to measure one against the other).
    public var prefixLoadDecision: PrefixLoadDecision = .costModel
    /// Whether writes to the flash store are staged: copied off the device blocks first, which are
    /// then reused while the write goes on (the default); false: written from the device blocks,
    /// which stay taken until the write ends (to measure one against the other).
    public var stagesFlashWrites = true

    /// The flash tier's daily write budget over `regions` regions (nil inside: none).
    public func flashWriteBudget(regions: Int) -> FlashWriteBudget {
        FlashWriteBudget(
            dailyBytesPerRegion: flashDailyWriteBudget?.bytes, enduranceBytesPerRegion: flashEnduranceTBW?.bytes,
            targetLifetimeYears: flashTargetLifetime?.years, regions: regions)
    }

    /// A configuration with the defaults of `hifc serve`.
    public init(
        kvBudget: KVBudget = .bytes(.gib(4)), blockTokens: Int = 64, maxStepTokens: Int = 512,
        maxRunning: Int = 64, preemption: PreemptionMode = .swapFlash, prefetchDepth: Int = 2,
        hostSwapCapacity: ByteSize = .gib(16), flashDailyWriteBudget: ByteSize? = nil,
        flashEnduranceTBW: ByteSize? = nil, flashTargetLifetime: TargetLifetime? = nil,
        modelID: String? = nil, prefixCaching: Bool = true, prefixCacheWrite: PrefixWritePolicy = .onEvict,
        prefixCacheFlashSize: ByteSize? = nil, replica: Int = 0, kvDType: KVDTypeChoice = .auto
    ) {
        self.kvDType = kvDType
        self.kvBudget = kvBudget
        self.blockTokens = blockTokens
        self.maxStepTokens = maxStepTokens
        self.maxRunning = maxRunning
        self.preemption = preemption
        self.prefetchDepth = prefetchDepth
        self.hostSwapCapacity = hostSwapCapacity
        self.flashDailyWriteBudget = flashDailyWriteBudget
        self.flashEnduranceTBW = flashEnduranceTBW
        self.flashTargetLifetime = flashTargetLifetime
        self.modelID = modelID
        self.replica = replica
        self.prefixCaching = prefixCaching
        self.prefixCacheWrite = prefixCacheWrite
        self.prefixCacheFlashSize = prefixCacheFlashSize
    }
}
