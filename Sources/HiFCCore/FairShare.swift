/// The engine's fairness between requests: how many tokens each request (a group of sequences,
/// such as the `n` choices of one HTTP request) has had computed while it is in the scheduler, its
/// attained service.
///
/// The scheduler serves the group with the least attained service first (least attained service
/// first, as in VTC, Sheng et al. 2024, "Fairness in Serving Large Language Models", which counts
/// tokens per client): it admits its waiting sequences first, preempts the group with the most,
/// and caps what a more-served group takes of a step while a less-served one computes (`Step`).
/// A request of one short sequence therefore passes a request of 64 long ones instead of waiting
/// behind them.
///
/// Sequences without a group form one group together, so a caller that names no groups gets the
/// scheduler's first come, first served order unchanged. A group's count is forgotten when its last
/// sequence leaves.
public struct FairShare: Sendable {
    /// Identifies a group (nil: the sequences that named none).
    public typealias Group = UInt64?

    private var groupOf: [SequenceID: Group] = [:]
    private var members: [Group: Int] = [:]
    private var service: [Group: Int] = [:]

    /// No groups.
    public init() {}

    /// Adds sequence `id` to `group`.
    public mutating func join(_ id: SequenceID, group: Group) {
        precondition(groupOf[id] == nil, "sequence \(id) joined twice")
        groupOf[id] = group
        members[group, default: 0] += 1
    }

    /// Removes sequence `id`; its group's count goes with its last sequence.
    public mutating func leave(_ id: SequenceID) {
        guard let group = groupOf.removeValue(forKey: id) else { return }
        members[group, default: 0] -= 1
        if members[group] == 0 {
            members[group] = nil
            service[group] = nil
        }
    }

    /// Counts `tokens` computed for sequence `id` to its group.
    public mutating func record(_ id: SequenceID, tokens: Int) {
        guard let group = groupOf[id] else { return }
        service[group, default: 0] += tokens
    }

    /// The group of sequence `id`.
    public func group(of id: SequenceID) -> Group { groupOf[id] ?? nil }

    /// Tokens computed for the group of sequence `id` so far.
    public func service(of id: SequenceID) -> Int { service[group(of: id)] ?? 0 }

    /// `ids` in the order they are served: least attained service of their group first, then by
    /// `arrival` (which must rank every id). With one group this is arrival order.
    public func order(_ ids: [SequenceID], arrival: (SequenceID) -> UInt64) -> [SequenceID] {
        ids.map { (id: $0, service: service(of: $0), arrival: arrival($0)) }
            .sorted { ($0.service, $0.arrival) < ($1.service, $1.arrival) }
            .map(\.id)
    }

    /// The shares of a step that starts now (see `Step`).
    public func step() -> Step { Step(share: self) }

    /// The shares of one step: a request may take at most the tokens that the requests with less
    /// attained service took in it (no cap while none of them took any). A request that has had
    /// more service thus never takes more of a step than those that have had less, so one
    /// request's many sequences cannot fill the step (and slow it down) while another request
    /// computes. A single request is never capped.
    public struct Step: Sendable {
        private let share: FairShare
        /// Tokens taken in this step by each group, with the group's service.
        private var taken: [Group: (service: Int, tokens: Int)] = [:]

        fileprivate init(share: FairShare) { self.share = share }

        /// Tokens the request of sequence `id` may still take in this step (`Int.max`: no cap).
        public func allowance(for id: SequenceID) -> Int {
            let service = share.service(of: id)
            let lighter = taken.values.reduce(0) { $0 + ($1.service < service ? $1.tokens : 0) }
            return lighter == 0 ? Int.max : max(0, lighter - (taken[share.group(of: id)]?.tokens ?? 0))
        }

        /// Records `tokens` taken by the request of sequence `id`.
        public mutating func take(_ tokens: Int, by id: SequenceID) {
            taken[share.group(of: id), default: (share.service(of: id), 0)].tokens += tokens
        }
    }
}
