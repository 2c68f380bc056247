/// The one decision between moving KV and computing it again, from measured speeds: whether a
/// preempted sequence is swapped (to host memory or flash) or recomputed (`--preemption auto`),
/// and whether prefix blocks found on flash are loaded or recomputed.
///
/// Recomputing tokens costs what `StepTimeModel` predicts for them (matrix products per token,
/// attention per attended pair: long contexts cost quadratically). Moving blocks costs their bytes
/// at the tier's measured bandwidth plus a fixed latency per transfer; for a swap, only the part
/// not hidden behind other sequences' compute (`exposedSwapFraction`) stalls the engine. Flash
/// writes also spend the drive's endurance: past the day's write budget nothing more is written.
public struct KVCostModel: Hashable, Sendable {
    /// How long steps take, learned from the steps run.
    public var steps: StepTimeModel
    /// Most tokens of one step (a recomputed context is prefilled in chunks of this many).
    public var chunkTokens: Int
    /// Write bandwidth per tier, bytes per second.
    public var writeBytesPerSecond: [SwapTier: Double]
    /// Read bandwidth per tier, bytes per second.
    public var readBytesPerSecond: [SwapTier: Double]
    /// Seconds one transfer takes beyond its bytes (request latency, checksums, bookkeeping).
    public var transferLatency: Double
    /// Fraction (0...1) of swap time that is not hidden behind compute.
    public var exposedSwapFraction: Double
    /// Bytes flash may still take today; nil: no budget.
    public var flashBytesLeftToday: Double?

    /// A model with starting estimates that measurements replace.
    public init(
        steps: StepTimeModel = StepTimeModel(), chunkTokens: Int = 512,
        writeBytesPerSecond: [SwapTier: Double] = [.dram: 10e9, .flash: 2e9],
        readBytesPerSecond: [SwapTier: Double] = [.dram: 10e9, .flash: 3e9],
        transferLatency: Double = 0.001, exposedSwapFraction: Double = 1, flashBytesLeftToday: Double? = nil
    ) {
        self.steps = steps
        self.chunkTokens = chunkTokens
        self.writeBytesPerSecond = writeBytesPerSecond
        self.readBytesPerSecond = readBytesPerSecond
        self.transferLatency = transferLatency
        self.exposedSwapFraction = exposedSwapFraction
        self.flashBytesLeftToday = flashBytesLeftToday
    }

    /// Seconds to compute tokens `start ..< end` of a sequence again.
    public func recomputeSeconds(from start: Int, to end: Int) -> Double {
        steps.seconds(from: start, to: end, chunkTokens: chunkTokens)
    }

    /// Seconds to read `bytes` from `tier` (0 bytes: no transfer at all).
    public func readSeconds(bytes: Int, from tier: SwapTier) -> Double {
        bytes == 0 ? 0 : transferLatency + Double(bytes) / max(readBytesPerSecond[tier] ?? 0, 1)
    }

    /// Seconds to write `bytes` to `tier` (0 bytes: no transfer at all).
    public func writeSeconds(bytes: Int, to tier: SwapTier) -> Double {
        bytes == 0 ? 0 : transferLatency + Double(bytes) / max(writeBytesPerSecond[tier] ?? 0, 1)
    }

    /// Whether writing `bytes` more to flash today stays within the day's write budget.
    public func flashBudgetAllows(bytes: Int) -> Bool {
        guard let left = flashBytesLeftToday else { return true }
        return Double(bytes) <= left
    }

    /// The cheaper way to preempt a sequence with `computedTokens` tokens of KV, swapping to
    /// `tier`: a swap writes `bytesToWrite` (blocks the tier does not hold yet) and later reads
    /// `bytesToRead`.
    public func preemptionChoice(computedTokens: Int, bytesToWrite: Int, bytesToRead: Int, tier: SwapTier) -> PreemptionChoice {
        cheapestPreemption(computedTokens: computedTokens, swaps: [SwapOption(tier: tier, bytesToWrite: bytesToWrite, bytesToRead: bytesToRead)])
    }

    /// The cheapest way to preempt a sequence with `computedTokens` tokens of KV: one of the
    /// `swaps` (each a tier with room for it) or recomputing. A flash swap past the day's write
    /// budget is not a choice. On a tie a swap wins over recomputing (it spends no compute), and
    /// an earlier option over a later one.
    public func cheapestPreemption(computedTokens: Int, swaps: [SwapOption]) -> PreemptionChoice {
        var best = (choice: PreemptionChoice.recompute, seconds: recomputeSeconds(from: 0, to: computedTokens))
        var swapped = false
        for option in swaps where option.tier != .flash || flashBudgetAllows(bytes: option.bytesToWrite) {
            let seconds = swapSeconds(option)
            if seconds < best.seconds || (!swapped && seconds <= best.seconds) {
                best = (.swap(option.tier), seconds)
                swapped = true
            }
        }
        return best.choice
    }

    /// Seconds of engine time a swap is expected to cost: its write and its read at the tier's
    /// bandwidths, times the fraction of swap time not hidden behind compute.
    public func swapSeconds(_ option: SwapOption) -> Double {
        (writeSeconds(bytes: option.bytesToWrite, to: option.tier) + readSeconds(bytes: option.bytesToRead, from: option.tier))
            * min(max(exposedSwapFraction, 0), 1)
    }

    /// Whether loading `bytes` of blocks holding tokens `start ..< end` from `tier` is faster than
    /// computing those tokens.
    public func loadPays(from start: Int, to end: Int, bytes: Int, tier: SwapTier) -> Bool {
        readSeconds(bytes: bytes, from: tier) < recomputeSeconds(from: start, to: end)
    }

    /// Learns a tier's bandwidth from a transfer of `bytes` that took `seconds`.
    public mutating func observe(_ direction: TransferDirection, tier: SwapTier, bytes: Int, seconds: Double) {
        guard bytes > 0, seconds > transferLatency else { return }
        let speed = Double(bytes) / (seconds - transferLatency)
        switch direction {
        case .write: writeBytesPerSecond[tier] = 0.8 * (writeBytesPerSecond[tier] ?? speed) + 0.2 * speed
        case .read: readBytesPerSecond[tier] = 0.8 * (readBytesPerSecond[tier] ?? speed) + 0.2 * speed
        }
    }
}

/// One way to swap a preempted sequence: to `tier`, writing `bytesToWrite` now (the blocks the
/// tier does not hold yet) and reading `bytesToRead` back when it resumes.
public struct SwapOption: Hashable, Sendable {
    /// The tier.
    public var tier: SwapTier
    /// Bytes written at the preemption.
    public var bytesToWrite: Int
    /// Bytes read back at the resume.
    public var bytesToRead: Int

    public init(tier: SwapTier, bytesToWrite: Int, bytesToRead: Int) {
        self.tier = tier
        self.bytesToWrite = bytesToWrite
        self.bytesToRead = bytesToRead
    }
}

/// Which way blocks move between the device and a tier.
public enum TransferDirection: String, Sendable, Hashable {
    /// Device to tier.
    case write
    /// Tier to device.
    case read
}
