import CPUKernels

/// Where the CPU backend's time went while its pool was profiled (`hifc bench model --profile`):
/// the wall time of each op's parallel calls, the caller's share of the work included. What no
/// op accounts for is the backend's serial work between ops (embedding, sampling, the Swift
/// around each call).
public struct CPUOpProfile: Sendable, Equatable {
    /// The op ("quantized product", "attention", ...; "other" for bodies outside the C kernels).
    public var op: String
    /// Parallel calls of the op.
    public var calls: Int
    /// Calls the pool's workers took part in (the others were too small to split and ran on the
    /// caller alone).
    public var pooledCalls: Int
    /// Chunks over all calls.
    public var chunks: Int
    /// Wall time of all calls, seconds.
    public var seconds: Double
    /// The caller's serial time before the calls, seconds: from the return of the pool's previous
    /// profiled call to each call's entry (the Swift and C that lead to the op, and between decode
    /// steps whatever ran there).
    public var secondsBefore: Double
}

extension CPUThreadPool {
    /// Starts counting the wall time of every op run on this pool (clearing what was counted).
    public func startProfile() { hifc_pool_profile_start(raw) }

    /// Stops counting and returns each op's figures, the longest first.
    public func stopProfile() -> [CPUOpProfile] {
        var slots = [hifc_region_profile](repeating: hifc_region_profile(), count: Int(HIFC_PROFILE_BODIES))
        let count = Int(hifc_pool_profile_stop(raw, &slots, Int32(slots.count)))
        var byOp: [String: CPUOpProfile] = [:]
        for slot in slots.prefix(count) {
            let op = hifc_chunk_fn_name(slot.body).map { String(cString: $0) } ?? "other"
            var entry = byOp[op] ?? CPUOpProfile(op: op, calls: 0, pooledCalls: 0, chunks: 0, seconds: 0, secondsBefore: 0)
            entry.calls += slot.calls
            entry.pooledCalls += slot.pooled_calls
            entry.chunks += slot.chunks
            entry.seconds += Double(slot.nanoseconds) / 1e9
            entry.secondsBefore += Double(slot.gap_nanoseconds) / 1e9
            byOp[op] = entry
        }
        return byOp.values.sorted { $0.seconds > $1.seconds }
    }
}
