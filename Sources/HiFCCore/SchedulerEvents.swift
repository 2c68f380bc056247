/// What happened inside the scheduler since the engine last asked: cache hits, loads declined,
/// KV lost and computed again. The engine adds them to the step's `StepStats`.
public struct SchedulerEvents: Hashable, Sendable {
    /// Prompt tokens whose KV was found in the device's prefix cache.
    public var deviceHitTokens = 0
    /// Tokens whose KV was loaded from flash instead of computed (prefix blocks).
    public var flashHitTokens = 0
    /// Prefix blocks found on flash but recomputed because that was faster, and their tokens.
    public var declinedLoads = 0
    public var declinedLoadTokens = 0
    /// Tokens computed again: after a preemption by recompute, or KV lost in a failed transfer.
    public var recomputedTokens = 0
    /// Prefix blocks deleted from flash to keep the prefix cache within its room.
    public var flashPrefixEvictions = 0

    /// No events.
    public init() {}
}
