/// A snapshot of the engine's counters, for the bench and for tests.
///
/// Swap time is split in two: `exposedSwapSeconds` is time the step loop stood still waiting for
/// swap I/O (no sequence could compute without it); the rest of the I/O time
/// (`hiddenSwapSeconds`) ran behind other sequences' compute.
public struct EngineStats: Sendable, Hashable, Codable {
    /// Steps run.
    public var steps = 0
    /// Sequences preempted (by swap or recompute).
    public var preemptions = 0
    /// Sequence swap-outs that completed, and their bytes.
    public var swapOuts = 0
    public var swapOutBytes = 0
    /// Sequence swap-ins that completed, and their bytes.
    public var swapIns = 0
    public var swapInBytes = 0
    /// Swaps that failed (no space, I/O error, checksum mismatch) and fell back to recompute.
    public var swapFailures = 0
    /// Bytes written to the flash tier.
    public var flashBytesWritten = 0
    /// Seconds of swap I/O in all (issue to completion, summed over swaps).
    public var swapSeconds = 0.0
    /// Seconds the step loop waited on swap I/O.
    public var exposedSwapSeconds = 0.0
    /// Tokens whose KV was computed again after a preemption by recompute (or a failed swap).
    public var recomputedTokens = 0
    /// Prompt tokens prefilled for the first time, and tokens generated.
    public var promptTokens = 0
    public var generatedTokens = 0
    /// Seconds spent in forward passes.
    public var computeSeconds = 0.0
    /// Requests finished (any reason).
    public var finishedRequests = 0
    /// Fraction of device KV blocks in use at the snapshot.
    public var kvUtilization = 0.0
    /// Queue lengths at the snapshot.
    public var waiting = 0
    public var running = 0
    public var swapped = 0

    /// Swap I/O time hidden behind compute.
    public var hiddenSwapSeconds: Double { max(swapSeconds - exposedSwapSeconds, 0) }

    public init() {}
}
