// TEMPORARY until the sched and flash branches land in HiFCCore: delete on `git merge main`.
/// What happens to a sequence the scheduler preempts.
public enum PreemptionMode: String, Sendable, Hashable, CaseIterable {
    case recompute
    case swapDRAM = "swap-dram"
    case swapFlash = "swap-flash"
    case auto
}

/// How the blocks of a batch are spread over several flash paths.
public enum FlashPlacementPolicy: String, Sendable, CaseIterable {
    case affinity
    case stripe
}
