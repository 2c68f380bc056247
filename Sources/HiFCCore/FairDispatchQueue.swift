import Collections

/// The server's waiting room in front of the engine: requests' sequences wait here, bounded by
/// count and by tokens, and are handed to the engine a few at a time, fairly between requests.
///
/// The engine serves its sequences first come, first served, so a request that put thousands of
/// sequences into it would hold everyone else back until they were all done. Here each request is
/// a group; only `maxInEngine` sequences are in the engine at once, and fewer than
/// `maxEngineBacklog` of them wait inside it (handed out but not started, or waiting or preempted
/// as the engine reports), so the engine's own queue stays short and a newcomer is never far
/// behind. The next sequence handed out always comes from the group with the fewest sequences in
/// the engine (ties: the one served longest ago), which gives a new request the next free place
/// however large the others are.
///
/// Admission is all or nothing per group: a group whose sequences would take the queue past
/// `maxQueuedSequences` or `maxQueuedTokens` is refused (the server answers 429), unless the queue
/// is empty, so that the largest request the per-request limits allow can always get in.
///
/// No I/O and no clock: the server reports what happened (`started`, `finished`) and asks `next`.
public struct FairDispatchQueue<Item: Sendable>: Sendable {
    /// Bounds of the queue and of the engine's share.
    public struct Limits: Sendable, Hashable {
        /// Most sequences waiting (not yet in the engine).
        public var maxQueuedSequences: Int
        /// Most tokens (prompt plus `max_tokens`) of the waiting sequences.
        public var maxQueuedTokens: Int
        /// Most sequences in the engine at once.
        public var maxInEngine: Int
        /// Sequences waiting inside the engine (not started, waiting or preempted there) at which
        /// no more are handed out.
        public var maxEngineBacklog: Int

        public init(maxQueuedSequences: Int, maxQueuedTokens: Int, maxInEngine: Int, maxEngineBacklog: Int) {
            precondition(maxQueuedSequences > 0 && maxQueuedTokens > 0 && maxInEngine > 0 && maxEngineBacklog > 0)
            self.maxQueuedSequences = maxQueuedSequences
            self.maxQueuedTokens = maxQueuedTokens
            self.maxInEngine = maxInEngine
            self.maxEngineBacklog = maxEngineBacklog
        }
    }

    /// Identifies one request's group of sequences.
    public typealias GroupID = UInt64

    /// Why a group was refused.
    public enum Refusal: Hashable, Sendable {
        /// The waiting sequences would exceed `maxQueuedSequences`.
        case sequences(queued: Int, asked: Int, limit: Int)
        /// The waiting tokens would exceed `maxQueuedTokens`.
        case tokens(queued: Int, asked: Int, limit: Int)
    }

    private struct Waiting: Sendable {
        var item: Item
        var tokens: Int
    }

    private struct Group: Sendable {
        var pending: Deque<Waiting> = []
        var inEngine = 0
        var unstarted = 0
        /// When the group was last handed a sequence (or arrived); smaller is longer ago.
        var lastServed: UInt64
    }

    /// The bounds in force.
    public let limits: Limits
    private var groups: [GroupID: Group] = [:]
    private var clock: UInt64 = 0

    /// Sequences waiting.
    public private(set) var queuedSequences = 0
    /// Tokens of the sequences waiting.
    public private(set) var queuedTokens = 0
    /// Sequences in the engine.
    public private(set) var inEngine = 0
    /// Sequences in the engine that have not produced their first event.
    public private(set) var unstarted = 0

    /// An empty queue.
    public init(limits: Limits) { self.limits = limits }

    /// Groups with sequences waiting or in the engine.
    public var activeGroups: Int { groups.count }

    /// Sequences of `group` waiting.
    public func queued(in group: GroupID) -> Int { groups[group]?.pending.count ?? 0 }

    /// Sequences of `group` in the engine.
    public func inEngine(of group: GroupID) -> Int { groups[group]?.inEngine ?? 0 }

    /// Queues `items` (each with its token count) as the new group `group`, or refuses them all.
    public mutating func enqueue(group: GroupID, items: [(item: Item, tokens: Int)]) -> Refusal? {
        precondition(groups[group] == nil, "group \(group) queued twice")
        let tokens = items.reduce(0) { $0 + $1.tokens }
        if queuedSequences > 0 {
            guard queuedSequences + items.count <= limits.maxQueuedSequences else {
                return .sequences(queued: queuedSequences, asked: items.count, limit: limits.maxQueuedSequences)
            }
            guard queuedTokens + tokens <= limits.maxQueuedTokens else {
                return .tokens(queued: queuedTokens, asked: tokens, limit: limits.maxQueuedTokens)
            }
        }
        clock += 1
        var entry = Group(lastServed: clock)
        entry.pending = Deque(items.map { Waiting(item: $0.item, tokens: $0.tokens) })
        groups[group] = entry
        queuedSequences += items.count
        queuedTokens += tokens
        return nil
    }

    /// The next sequence to hand to the engine, if the engine may take one: from the group with
    /// the fewest sequences in the engine, ties going to the one served longest ago.
    /// `engineBacklog` is what the engine last reported waiting or preempted in it.
    public mutating func next(engineBacklog: Int = 0) -> (group: GroupID, item: Item)? {
        guard inEngine < limits.maxInEngine, max(unstarted, engineBacklog) < limits.maxEngineBacklog else { return nil }
        var best: (id: GroupID, inEngine: Int, lastServed: UInt64)?
        for (id, group) in groups where !group.pending.isEmpty {
            if let b = best, (b.inEngine, b.lastServed) <= (group.inEngine, group.lastServed) { continue }
            best = (id, group.inEngine, group.lastServed)
        }
        guard let id = best?.id else { return nil }
        clock += 1
        let waiting = groups[id]!.pending.removeFirst()
        groups[id]!.inEngine += 1
        groups[id]!.unstarted += 1
        groups[id]!.lastServed = clock
        queuedSequences -= 1
        queuedTokens -= waiting.tokens
        inEngine += 1
        unstarted += 1
        return (id, waiting.item)
    }

    /// A sequence of `group` handed out by `next` produced its first event.
    public mutating func started(group: GroupID) {
        guard groups[group] != nil, groups[group]!.unstarted > 0 else { return }
        groups[group]!.unstarted -= 1
        unstarted -= 1
    }

    /// A sequence of `group` handed out by `next` left the engine (finished, failed or aborted);
    /// `started` says whether it had been reported started.
    public mutating func finished(group: GroupID, started: Bool) {
        guard var entry = groups[group], entry.inEngine > 0 else { return }
        entry.inEngine -= 1
        inEngine -= 1
        if !started, entry.unstarted > 0 {
            entry.unstarted -= 1
            unstarted -= 1
        }
        if entry.inEngine == 0, entry.pending.isEmpty {
            groups[group] = nil
        } else {
            groups[group] = entry
        }
    }

    /// Drops the waiting sequences of `group` (its sequences in the engine stay counted until
    /// `finished`); returns how many were dropped.
    @discardableResult
    public mutating func removeWaiting(of group: GroupID) -> Int {
        guard var entry = groups[group] else { return 0 }
        let dropped = entry.pending.count
        queuedSequences -= dropped
        queuedTokens -= entry.pending.reduce(0) { $0 + $1.tokens }
        entry.pending = []
        groups[group] = entry.inEngine == 0 ? nil : entry
        return dropped
    }
}
