/// The engine's fairness between requests: how many tokens each request (a group of sequences,
/// such as the `n` choices of one HTTP request) has had computed while it is in the scheduler, its
/// attained service.
///
/// The scheduler serves the group with the least attained service first (least attained service
/// first, as in VTC, Sheng et al. 2024, "Fairness in Serving Large Language Models", which counts
/// tokens per client): it admits its waiting sequences first, preempts the group with the most,
/// and caps what the more-served groups take of a step while a less-served one computes (`Step`).
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

    /// The shares of a step that starts now (see `Step`): requests within `margin` tokens of
    /// service of the least-served one computing in the step lead it together. With `pace`, the
    /// more-served requests' tokens also stay within a time budget, `carried` seconds of it saved
    /// from the steps before (`Step.carriedSlack`).
    public func step(margin: Int, pace: Pace? = nil, carried: Double = 0) -> Step {
        Step(share: self, margin: margin, pace: pace, carried: carried)
    }

    /// The time budget of a step shared with a less-served request: it may take at most
    /// `slowdown` times what the less-served requests' own part of it would take alone, as
    /// `model` predicts.
    public struct Pace: Sendable {
        /// The step-time model that prices the parts of a step.
        public var model: StepTimeModel
        /// The most a shared step may take, as a multiple of its leaders' part alone (above 1).
        public var slowdown: Double

        /// A budget of `slowdown` times the leaders' part by `model`.
        public init(model: StepTimeModel, slowdown: Double) {
            self.model = model
            self.slowdown = slowdown
        }
    }

    /// The shares of one step. The request with the least attained service that computes in the
    /// step, and every request within `margin` tokens of service of it, lead the step and take
    /// what they need; the requests with more service trail: all of them together take at most
    /// as many tokens as the leaders took (no cap while none has taken any). A step shared with a
    /// less-served request is thus at most twice as large as that request's own part, however
    /// many more-served requests (or sequences of one) wait for it. Requests close in service,
    /// and a single request, are never capped.
    ///
    /// With a `Pace`, the trailing tokens must also fit the step's time budget: they may add at
    /// most `slowdown - 1` times the predicted time of the leaders' part. Where one trailing
    /// token costs more than that (a token of a long context beside a short one's decode, on a
    /// CPU), what a step leaves unused is saved for the next (`carriedSlack`), so the trailing
    /// requests still advance, a token every few steps, and the leaders' steps take `slowdown`
    /// times their own on average.
    public struct Step: Sendable {
        private let share: FairShare
        private let margin: Int
        private let pace: Pace?
        private let carried: Double
        /// Tokens taken in this step by each group, with the group's service.
        private var taken: [Group: (service: Int, tokens: Int)] = [:]
        /// The least service of a group that has taken tokens in this step (kept as tokens are
        /// taken: the scheduler asks for every sequence of a step, so it is not recounted).
        private var leastTakingService: Int?
        /// The leaders' part of the step.
        private var leading: (tokens: Int, pairs: Double) = (0, 0)
        /// Seconds the trailing tokens add to the step.
        private var spent = 0.0
        /// Seconds the first trailing chunk refused for time would have added.
        private var shortfall: Double?

        fileprivate init(share: FairShare, margin: Int, pace: Pace?, carried: Double) {
            self.share = share
            self.margin = max(margin, 0)
            self.pace = pace
            self.carried = max(carried, 0)
        }

        /// The service below which a request leads the step; nil while nothing is taken.
        private var leadBound: Int? { leastTakingService.map { $0 + margin } }

        /// Whether the request of sequence `id` trails a less-served request in this step.
        public func trails(_ id: SequenceID) -> Bool {
            guard let bound = leadBound else { return false }
            return share.service(of: id) >= bound
        }

        /// Tokens the request of sequence `id` may still take in this step (`Int.max`: no cap).
        public func allowance(for id: SequenceID) -> Int {
            guard let bound = leadBound, share.service(of: id) >= bound else { return Int.max }
            var leaders = 0
            var trailers = 0
            for (service, tokens) in taken.values {
                if service < bound { leaders += tokens } else { trailers += tokens }
            }
            return max(0, leaders - trailers)
        }

        /// Seconds the trailing requests may still add to this step.
        private var slack: Double {
            guard let pace else { return .infinity }
            let own = leading.tokens > 0 ? pace.model.stepSeconds(tokens: leading.tokens, pairs: leading.pairs) : 0
            return max(0, carried + (pace.slowdown - 1) * own - spent)
        }

        /// How many of tokens `start ..< start + wanted` of sequence `id` it may compute in this
        /// step: its `allowance`, and when it trails, what fits the time budget. A trailing chunk
        /// refused for time is remembered so the next steps save up for it.
        public mutating func grant(_ wanted: Int, to id: SequenceID, from start: Int) -> Int {
            let capped = min(wanted, allowance(for: id))
            guard capped > 0, trails(id), let pace else { return max(capped, 0) }
            let slack = slack
            func cost(_ count: Int) -> Double {
                pace.model.addedSeconds(tokens: count, pairs: StepTimeModel.attendedPairs(from: start, to: start + count))
            }
            if cost(capped) <= slack { return capped }
            // The most tokens that fit (the cost grows with the count).
            var low = 0
            var high = capped
            while low < high {
                let middle = (low + high + 1) / 2
                if cost(middle) <= slack { low = middle } else { high = middle - 1 }
            }
            if low == 0, shortfall == nil { shortfall = cost(1) }
            return low
        }

        /// Records tokens `start ..< start + tokens` of sequence `id` taken in this step.
        public mutating func take(_ tokens: Int, by id: SequenceID, from start: Int) {
            let pairs = StepTimeModel.attendedPairs(from: start, to: start + tokens)
            if trails(id) {
                spent += pace?.model.addedSeconds(tokens: tokens, pairs: pairs) ?? 0
            } else {
                leading.tokens += tokens
                leading.pairs += pairs
            }
            let service = share.service(of: id)
            taken[share.group(of: id), default: (service, 0)].tokens += tokens
            if tokens > 0 { leastTakingService = min(leastTakingService ?? service, service) }
        }

        /// Seconds of the time budget this step leaves for the next: what it did not use, up to
        /// the cost of the trailing chunk it refused (none when it refused nothing for time).
        public var carriedSlack: Double {
            guard let shortfall else { return 0 }
            return min(slack, shortfall)
        }
    }
}
