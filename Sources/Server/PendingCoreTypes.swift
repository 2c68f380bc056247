// TEMPORARY until the sched branch lands `PreemptionMode` in HiFCCore: delete on `git merge main`.
/// What happens to a sequence the scheduler preempts.
public enum PreemptionMode: String, Sendable, Hashable, CaseIterable {
    case recompute
    case swapDRAM = "swap-dram"
    case swapFlash = "swap-flash"
    case auto
}
