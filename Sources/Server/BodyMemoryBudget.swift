import Synchronization

/// Bytes of request bodies held at once over all connections (`--max-body-memory`).
///
/// Each body is bounded by `--max-body-size`, but hundreds of connections sending large bodies at
/// once would still hold hundreds of them; past this budget a request gets a 503 instead. A body
/// is always let in when nothing else is held, so one of the largest allowed size gets through.
/// Once a burst of bodies (16 MiB or more) is being given back, the heap is trimmed after it
/// (`HeapTrimmer`), so that the memory they took goes back to the system.
final class BodyMemoryBudget: Sendable {
    /// Most bytes held at once.
    let limit: Int
    private let state = Mutex((held: 0, sinceTrim: 0))
    /// Bytes taken since the last trim after which a return to zero trims the heap.
    static let trimAfterBytes = 16 << 20

    init(limit: Int) { self.limit = limit }

    /// Takes `bytes` more for a body; false when they would go past the limit.
    func reserve(_ bytes: Int) -> Bool {
        let (taken, burst) = state.withLock { state -> (Bool, Bool) in
            guard state.held == 0 || state.held + bytes <= limit else { return (false, false) }
            state.held += bytes
            state.sinceTrim += bytes
            return (true, state.sinceTrim >= Self.trimAfterBytes && state.sinceTrim - bytes < Self.trimAfterBytes)
        }
        if burst { HeapTrimmer.shared.burstBegan() }
        return taken
    }

    /// Gives back `bytes` taken by `reserve`.
    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        let trim = state.withLock { state -> Bool in
            state.held -= bytes
            guard state.sinceTrim >= Self.trimAfterBytes else { return false }
            if state.held == 0 { state.sinceTrim = 0 }
            return true
        }
        if trim { HeapTrimmer.shared.request() }
    }

    /// Bytes held now.
    var held: Int { state.withLock { $0.held } }
}
