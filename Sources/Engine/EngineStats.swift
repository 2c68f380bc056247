/// The engine's figures over an interval: one step (what the step loop records after each
/// step), or the whole run (the sum of its steps, what `LLMEngine.stats()` returns).
///
/// Counters add up over the interval; the queue and cache sizes are those at its end. One value
/// per step feeds every consumer: the running totals, the Prometheus metrics, the bench.
/// Swap time is split in two: `exposedSwapSeconds` is time the step loop stood still waiting for
/// transfers (no sequence could compute without them); the rest of the I/O time
/// (`hiddenSwapSeconds`) ran behind other sequences' compute.
public struct EngineStats: Sendable, Hashable, Codable {
    // MARK: Counters

    /// Steps run.
    public var steps = 0
    /// Steps launched behind the step before them, before its tokens were back (`StepOverlap`).
    public var stepsLaunchedAhead = 0
    /// Sequences preempted (by swap or recompute).
    public var preemptions = 0
    /// Swap-outs that completed, and the bytes they wrote (blocks already in the tier are not
    /// written again).
    public var swapOuts = 0
    public var swapOutBytes = 0
    /// Swap-ins that completed, and their bytes.
    public var swapIns = 0
    public var swapInBytes = 0
    /// Swaps that failed (no space, I/O error, checksum mismatch) and fell back to recompute.
    public var swapFailures = 0
    /// Bytes written to the flash tier (swaps and prefix blocks).
    public var flashBytesWritten = 0
    /// Bytes read from the flash tier (swap-ins and prefix loads).
    public var flashBytesRead = 0
    /// Seconds of swap I/O in all (issue to completion, summed over swaps).
    public var swapSeconds = 0.0
    /// Seconds the step loop waited on transfers.
    public var exposedSwapSeconds = 0.0
    /// Seconds from each swap-in's start (the scheduler's decision to resume its sequence) to the
    /// sequence running again, summed over the swap-ins that completed.
    public var swapInWaitSeconds = 0.0
    /// Bytes read from flash into host memory ahead of resumes (swap prefetches), and those of
    /// them swap-ins copied to the device (the rest were dropped unused).
    public var swapPrefetchBytes = 0
    public var prefetchedSwapInBytes = 0
    /// Tokens computed again (after a preemption by recompute, or KV lost in a failed transfer).
    public var recomputedTokens = 0
    /// Prompt tokens of requests added, and tokens generated.
    public var promptTokens = 0
    public var generatedTokens = 0
    /// Seconds spent in forward passes.
    public var computeSeconds = 0.0
    /// Requests finished (any reason).
    public var finishedRequests = 0
    /// Prompt tokens found in the device's prefix cache.
    public var deviceHitTokens = 0
    /// Tokens loaded from the flash prefix cache instead of computed.
    public var flashHitTokens = 0
    /// Prefix loads from flash that completed, their bytes and their I/O seconds.
    public var prefixLoads = 0
    public var prefixLoadBytes = 0
    public var prefixLoadSeconds = 0.0
    /// Prefix loads that delivered fewer blocks than planned (a missing or damaged block).
    public var prefixLoadFailures = 0
    /// Prefix blocks found on flash but recomputed because that was predicted faster, and their tokens.
    public var declinedLoads = 0
    public var declinedLoadTokens = 0
    /// Prefix blocks saved to flash, and their bytes.
    public var prefixBlocksSaved = 0
    public var prefixSaveBytes = 0
    /// Cached device blocks whose content was dropped to make room.
    public var deviceEvictions = 0
    /// Prefix blocks deleted from flash to keep within the prefix cache's room.
    public var flashPrefixEvictions = 0

    // MARK: State at the end of the interval

    /// Fraction of device KV blocks in use.
    public var kvUtilization = 0.0
    /// Device blocks holding cached prefix content.
    public var cachedBlocks = 0
    /// Prefix blocks kept on flash.
    public var flashPrefixBlocks = 0
    /// Bytes the flash tier may take per day (configured, or set by the target lifetime), and
    /// what is left of today's; nil without a budget.
    public var flashDailyWriteBudget: Int?
    public var flashBytesLeftToday: Int?
    /// Queue lengths.
    public var waiting = 0
    public var running = 0
    public var swapped = 0

    /// Swap I/O time hidden behind compute.
    public var hiddenSwapSeconds: Double { max(swapSeconds - exposedSwapSeconds, 0) }

    /// Nothing counted yet.
    public init() {}

    /// Adds a later interval: its counters are summed, its state replaces this one's.
    public mutating func accumulate(_ later: EngineStats) {
        steps += later.steps
        stepsLaunchedAhead += later.stepsLaunchedAhead
        preemptions += later.preemptions
        swapOuts += later.swapOuts
        swapOutBytes += later.swapOutBytes
        swapIns += later.swapIns
        swapInBytes += later.swapInBytes
        swapFailures += later.swapFailures
        flashBytesWritten += later.flashBytesWritten
        flashBytesRead += later.flashBytesRead
        swapSeconds += later.swapSeconds
        exposedSwapSeconds += later.exposedSwapSeconds
        swapInWaitSeconds += later.swapInWaitSeconds
        swapPrefetchBytes += later.swapPrefetchBytes
        prefetchedSwapInBytes += later.prefetchedSwapInBytes
        recomputedTokens += later.recomputedTokens
        promptTokens += later.promptTokens
        generatedTokens += later.generatedTokens
        computeSeconds += later.computeSeconds
        finishedRequests += later.finishedRequests
        deviceHitTokens += later.deviceHitTokens
        flashHitTokens += later.flashHitTokens
        prefixLoads += later.prefixLoads
        prefixLoadBytes += later.prefixLoadBytes
        prefixLoadSeconds += later.prefixLoadSeconds
        prefixLoadFailures += later.prefixLoadFailures
        declinedLoads += later.declinedLoads
        declinedLoadTokens += later.declinedLoadTokens
        prefixBlocksSaved += later.prefixBlocksSaved
        prefixSaveBytes += later.prefixSaveBytes
        deviceEvictions += later.deviceEvictions
        flashPrefixEvictions += later.flashPrefixEvictions
        kvUtilization = later.kvUtilization
        cachedBlocks = later.cachedBlocks
        flashPrefixBlocks = later.flashPrefixBlocks
        flashDailyWriteBudget = later.flashDailyWriteBudget
        flashBytesLeftToday = later.flashBytesLeftToday
        waiting = later.waiting
        running = later.running
        swapped = later.swapped
    }
}
