/// Whether the engine launches a step behind the one before it, before that one's tokens are
/// back (`--overlap-steps`; vLLM's asynchronous scheduling): the host plans and launches step
/// N+1 and does step N's bookkeeping while the device computes, and the device reads N's greedy
/// tokens itself. Only steps whose sequences all decode greedily are launched ahead.
public enum StepOverlap: String, Sendable, CaseIterable {
    /// Where the backend runs ahead of the host (a GPU); the CPU backend computes each step
    /// before it returns, so launching ahead would only delay each step's tokens.
    case auto
    /// Always, on any backend (on the CPU: the same tokens, nothing gained).
    case on
    /// Never: each step's tokens come back before the next is planned.
    case off

    /// Whether steps overlap on a backend that does (`backendRunsAhead`) or does not run ahead.
    public func enabled(backendRunsAhead: Bool) -> Bool {
        switch self {
        case .auto: return backendRunsAhead
        case .on: return true
        case .off: return false
        }
    }
}
