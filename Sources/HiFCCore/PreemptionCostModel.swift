/// Chooses, per preempted sequence, between swapping its KV out and back and recomputing it
/// (`--preemption auto`), from measured speeds.
///
/// Swapping costs the time of writing and reading its blocks at the tier's measured bandwidths,
/// of which only the part not hidden behind other sequences' compute (`exposedSwapFraction`) stalls
/// the engine; recomputing costs prefilling its tokens again at the measured prefill speed, all of
/// it on the critical path. Flash writes also spend the drive's endurance: when today's writes
/// would pass the daily write budget, the victim is recomputed instead.
public struct PreemptionCostModel: Hashable, Sendable {
    /// Prefill speed, tokens per second.
    public var prefillTokensPerSecond: Double
    /// Write bandwidth per tier, bytes per second.
    public var writeBytesPerSecond: [SwapTier: Double]
    /// Read bandwidth per tier, bytes per second.
    public var readBytesPerSecond: [SwapTier: Double]
    /// Fraction (0...1) of swap time that is not hidden behind compute.
    public var exposedSwapFraction: Double
    /// Most bytes the flash tier may take per day (from the drive's TBW and the wanted lifetime);
    /// nil: no limit.
    public var flashWriteBudgetBytesPerDay: Double?
    /// Bytes written to the flash tier in the current day.
    public var flashBytesWrittenToday: Double

    /// A model with starting estimates that measurements replace.
    public init(
        prefillTokensPerSecond: Double = 1_000,
        writeBytesPerSecond: [SwapTier: Double] = [.dram: 10e9, .flash: 2e9],
        readBytesPerSecond: [SwapTier: Double] = [.dram: 10e9, .flash: 3e9],
        exposedSwapFraction: Double = 1,
        flashWriteBudgetBytesPerDay: Double? = nil,
        flashBytesWrittenToday: Double = 0
    ) {
        self.prefillTokensPerSecond = prefillTokensPerSecond
        self.writeBytesPerSecond = writeBytesPerSecond
        self.readBytesPerSecond = readBytesPerSecond
        self.exposedSwapFraction = exposedSwapFraction
        self.flashWriteBudgetBytesPerDay = flashWriteBudgetBytesPerDay
        self.flashBytesWrittenToday = flashBytesWrittenToday
    }

    /// Seconds the engine stalls to swap `bytes` to `tier` and back.
    public func swapSeconds(bytes: Int, tier: SwapTier) -> Double {
        let write = Double(bytes) / max(writeBytesPerSecond[tier] ?? 0, 1)
        let read = Double(bytes) / max(readBytesPerSecond[tier] ?? 0, 1)
        return (write + read) * min(max(exposedSwapFraction, 0), 1)
    }

    /// Seconds the engine spends prefilling `tokens` again.
    public func recomputeSeconds(tokens: Int) -> Double {
        Double(tokens) / max(prefillTokensPerSecond, 1e-9)
    }

    /// Whether writing `bytes` more to flash today stays within the daily write budget.
    public func flashBudgetAllows(bytes: Int) -> Bool {
        guard let budget = flashWriteBudgetBytesPerDay else { return true }
        return flashBytesWrittenToday + Double(bytes) <= budget
    }

    /// The cheaper way to preempt a sequence with `tokens` computed tokens held in `bytes` of KV,
    /// swapping to `tier`.
    public func choose(tokens: Int, bytes: Int, tier: SwapTier = .flash) -> PreemptionChoice {
        if tier == .flash, !flashBudgetAllows(bytes: bytes) { return .recompute }
        return swapSeconds(bytes: bytes, tier: tier) <= recomputeSeconds(tokens: tokens) ? .swap(tier) : .recompute
    }
}
