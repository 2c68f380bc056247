/// What happens to a sequence the scheduler preempts (`--preemption`).
public enum PreemptionMode: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Drop its KV and prefill its tokens again later.
    case recompute
    /// Write its KV to host memory (the baseline vLLM uses).
    case swapDRAM = "swap-dram"
    /// Write its KV to the flash cache (HiFC).
    case swapFlash = "swap-flash"
    /// Ask `PreemptionCostModel` per victim: flash swap or recompute.
    case auto

    public var description: String { rawValue }
}

/// What to do with one preempted sequence.
public enum PreemptionChoice: Hashable, Sendable {
    /// Drop its KV; prefill again.
    case recompute
    /// Swap its KV to `tier`.
    case swap(SwapTier)
}
