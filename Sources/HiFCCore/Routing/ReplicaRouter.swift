/// Work an engine replica has been given and not yet finished, as the router counts it.
public struct ReplicaLoad: Hashable, Sendable {
    /// Requests routed to the replica that have not finished.
    public var requests: Int
    /// Tokens those requests still stand for: prompt tokens until their first output token (the
    /// prefill is done then), plus output tokens they may still generate.
    public var tokens: Int

    public init(requests: Int = 0, tokens: Int = 0) {
        self.requests = requests
        self.tokens = tokens
    }
}

/// The data-parallel router's pure decision: which engine replica a request goes to.
///
/// Each replica's cost for a request is the work it already holds plus the work the request
/// would add there: its prompt, less the leading blocks that replica is believed to hold already
/// (a prefix cache hit skips their prefill), plus its output tokens. The request goes to the
/// cheapest replica; so a replica that holds the prefix wins unless it is busier than the others
/// by more than the prefill it would save, and with no affinity anywhere the least loaded replica
/// wins. Ties go to the replica with fewer requests, then to the first at or after `rotation`, so
/// equal replicas take turns.
public struct ReplicaRouter: Hashable, Sendable {
    /// Tokens per KV block: the unit of prefix affinity.
    public var blockTokens: Int

    /// A router whose affinity counts blocks of `blockTokens` tokens.
    public init(blockTokens: Int) {
        precondition(blockTokens > 0, "a KV block holds at least one token")
        self.blockTokens = blockTokens
    }

    /// What one request asks, as the router weighs it.
    public struct Request: Hashable, Sendable {
        /// Prompt tokens.
        public var promptTokens: Int
        /// Output tokens it may generate.
        public var maxTokens: Int

        public init(promptTokens: Int, maxTokens: Int) {
            self.promptTokens = promptTokens
            self.maxTokens = maxTokens
        }
    }

    /// Tokens `request` would add to a replica that holds its first `affinityBlocks` blocks.
    public func cost(of request: Request, affinityBlocks: Int) -> Int {
        let cached = min(max(affinityBlocks, 0) * blockTokens, request.promptTokens)
        return request.promptTokens - cached + request.maxTokens
    }

    /// The replica for `request`. `loads` has one entry per replica; `affinityBlocks`, when given,
    /// one entry per replica too: how many of the prompt's leading blocks each one holds.
    public func choose(_ request: Request, loads: [ReplicaLoad], affinityBlocks: [Int]? = nil, rotation: Int = 0) -> Int {
        precondition(!loads.isEmpty, "routing needs at least one replica")
        precondition(affinityBlocks == nil || affinityBlocks?.count == loads.count, "one affinity per replica")
        var best = 0
        var bestKey: (cost: Int, requests: Int, turn: Int)?
        for offset in 0..<loads.count {
            let replica = (((rotation % loads.count) + loads.count) % loads.count + offset) % loads.count
            let key = (
                cost: loads[replica].tokens + cost(of: request, affinityBlocks: affinityBlocks?[replica] ?? 0),
                requests: loads[replica].requests, turn: offset
            )
            if let current = bestKey, current <= key { continue }
            best = replica
            bestKey = key
        }
        return best
    }
}
