/// Continuous batching with preemption: decides each step which sequences compute which tokens,
/// which are preempted (swapped out or recomputed) and which swapped ones come back.
///
/// Policy: first come, first served. Running sequences are served in arrival order, each with its
/// next prefill chunk (under the step's token budget) or its one decode token. When the device
/// has too few free blocks for one of them, the most recently arrived running sequence is
/// preempted (possibly the one asking), as in vLLM. Blocks still being written out by earlier
/// preemptions count as arriving, so no more is preempted than needed. Swapped sequences resume
/// (their blocks are read back while the step computes) before any new request is admitted.
///
/// The scheduler does no I/O: the engine carries out a `StepPlan`, then reports what finished with
/// `completeStep`, `swapOutCompleted`, `swapInCompleted` and `finish`.
public struct Scheduler: Sendable {
    /// The limits.
    public let config: SchedulerConfig
    /// Decides between swap and recompute in `.auto` mode; the engine updates its measurements.
    public var costModel: PreemptionCostModel
    /// The device's KV blocks.
    public private(set) var pool: BlockPool

    private var sequences: [SequenceID: GenerationSequence] = [:]
    private var nextArrival: UInt64 = 0
    /// Each queue is kept in arrival order.
    private var waiting: [SequenceID] = []
    private var running: [SequenceID] = []
    /// Swapping out, swapped, or swapping in.
    private var swapped: [SequenceID] = []
    /// Device blocks held by sequences whose swap-out is in flight: free once the writes complete.
    private var blocksBeingWritten = 0

    /// A scheduler with an empty pool of `config.deviceBlocks` blocks.
    public init(config: SchedulerConfig, costModel: PreemptionCostModel = PreemptionCostModel()) {
        self.config = config
        self.costModel = costModel
        self.pool = BlockPool(capacity: config.deviceBlocks)
    }

    // MARK: Reading

    /// The sequence with `id`, if it is still scheduled.
    public func sequence(_ id: SequenceID) -> GenerationSequence? { sequences[id] }
    /// Sequences waiting for admission (new or to recompute).
    public var waitingCount: Int { waiting.count }
    /// Sequences with KV on the device.
    public var runningCount: Int { running.count }
    /// Sequences swapping out, swapped, or swapping in.
    public var swappedCount: Int { swapped.count }
    /// Whether no sequence is left.
    public var isIdle: Bool { sequences.isEmpty }

    // MARK: Requests

    /// Why a sequence cannot be added.
    public enum AddError: Error, Hashable, CustomStringConvertible {
        /// The sequence can grow past what the whole device KV budget holds.
        case exceedsKVBudget(tokens: Int, limit: Int)

        public var description: String {
            switch self {
            case .exceedsKVBudget(let tokens, let limit):
                return "a sequence of up to \(tokens) tokens does not fit the device KV budget of \(limit) tokens; raise --kv-budget"
            }
        }
    }

    /// Adds a waiting sequence of `prompt` that may grow to `maxTokens` tokens in all.
    public mutating func add(id: SequenceID, prompt: [Int], maxTotalTokens: Int) throws(AddError) {
        precondition(sequences[id] == nil, "sequence \(id) added twice")
        guard maxTotalTokens <= config.maxSequenceTokens else {
            throw .exceedsKVBudget(tokens: maxTotalTokens, limit: config.maxSequenceTokens)
        }
        let sequence = GenerationSequence(id: id, arrival: nextArrival, prompt: prompt, blockTokens: config.blockTokens)
        nextArrival += 1
        sequences[id] = sequence
        insertByArrival(id, into: &waiting)
    }

    /// What the engine must still clean up after `abort` or `finish`.
    public enum Removal: Hashable, Sendable {
        /// Nothing: the sequence is gone and its device blocks are free.
        case done
        /// The sequence's KV is in `tier`: its slots there must be freed.
        case freeTier(SwapTier, blocks: Int)
        /// I/O on its blocks is in flight: it goes when the engine reports the I/O completed.
        case afterIO
        /// No such sequence.
        case unknown
    }

    /// Removes a sequence (finished or aborted), freeing its device blocks.
    public mutating func finish(_ id: SequenceID) -> Removal {
        guard var sequence = sequences[id] else { return .unknown }
        switch sequence.status {
        case .waiting:
            waiting.removeAll { $0 == id }
        case .running:
            running.removeAll { $0 == id }
            pool.release(sequence.table.removeAll())
        case .swapped(let tier):
            swapped.removeAll { $0 == id }
            sequences[id] = nil
            return .freeTier(tier, blocks: sequence.computedBlocks)
        case .swappingOut, .swappingIn:
            sequence.abortRequested = true
            sequences[id] = sequence
            return .afterIO
        }
        sequences[id] = nil
        return .done
    }

    // MARK: Planning

    /// Plans the next step and updates the queues and block tables as if it will be carried out.
    public mutating func schedule() -> StepPlan {
        var plan = StepPlan()
        var budget = config.maxStepTokens
        var preempted = false
        // Once a sequence waits for blocks, later ones may not take new blocks ahead of it.
        var starved = false

        var index = 0
        while index < running.count, budget > 0 {
            let id = running[index]
            let sequence = sequences[id]!
            let count = min(sequence.uncomputed, budget)
            let missing = sequence.table.blocksMissing(forTokens: sequence.computed + count)
            if missing > 0 {
                if starved {
                    index += 1
                    continue
                }
                var selfPreempted = false
                while pool.freeCount < missing, pool.freeCount + blocksBeingWritten < missing {
                    let victim = running.removeLast()
                    preempt(victim, into: &plan)
                    preempted = true
                    if victim == id {
                        selfPreempted = true
                        break
                    }
                }
                if selfPreempted { break }
                guard let blocks = pool.allocate(missing) else {
                    starved = true
                    index += 1
                    continue
                }
                sequences[id]!.table.append(blocks)
            }
            append(chunk: id, count: count, to: &plan)
            budget -= count
            index += 1
        }

        guard !preempted, !starved else { return plan }
        resumeSwapped(into: &plan)
        if swapped.isEmpty { admitWaiting(budget: budget, into: &plan) }
        return plan
    }

    /// Blocks kept free after a resume or admission so the running sequences can grow a step.
    private var reserveBlocks: Int { running.count }

    private mutating func resumeSwapped(into plan: inout StepPlan) {
        var inFlight = swapped.filter { if case .swappingIn = sequences[$0]!.status { true } else { false } }.count
        for id in swapped {
            guard inFlight < config.prefetchDepth, running.count + inFlight < config.maxRunning else { return }
            let sequence = sequences[id]!
            guard case .swapped(let tier) = sequence.status else {
                // An older sequence still swapping out keeps its place: no overtaking.
                if case .swappingOut = sequence.status { return }
                continue
            }
            let needed = sequence.computedBlocks
            guard pool.freeCount - needed >= reserveBlocks, let blocks = pool.allocate(needed) else { return }
            sequences[id]!.table.append(blocks)
            sequences[id]!.status = .swappingIn(tier)
            plan.swapIns.append(.init(sequence: id, tier: tier, blocks: blocks, tokens: sequence.computed))
            inFlight += 1
        }
    }

    private mutating func admitWaiting(budget: Int, into plan: inout StepPlan) {
        var budget = budget
        while let id = waiting.first, budget > 0, running.count < config.maxRunning {
            let sequence = sequences[id]!
            let count = min(sequence.uncomputed, budget)
            let missing = sequence.table.blocksMissing(forTokens: sequence.computed + count)
            guard pool.freeCount - missing >= reserveBlocks, let blocks = pool.allocate(missing) else { return }
            waiting.removeFirst()
            sequences[id]!.table.append(blocks)
            sequences[id]!.status = .running
            insertByArrival(id, into: &running)
            append(chunk: id, count: count, to: &plan)
            budget -= count
        }
    }

    private func append(chunk id: SequenceID, count: Int, to plan: inout StepPlan) {
        let sequence = sequences[id]!
        let samples = sequence.computed + count == sequence.tokens.count
        let chunk = StepPlan.Chunk(sequence: id, start: sequence.computed, count: count, samples: samples)
        if count == 1, samples, sequence.generatedCount > 0 { plan.decodes.append(chunk) } else { plan.prefills.append(chunk) }
    }

    /// The choice for one victim, from the preemption mode (and the cost model in `.auto`).
    public func choice(forPreempting sequence: GenerationSequence) -> PreemptionChoice {
        if sequence.computed == 0 { return .recompute }
        switch config.preemption {
        case .recompute: return .recompute
        case .swapDRAM: return .swap(.dram)
        case .swapFlash: return .swap(.flash)
        case .auto:
            return costModel.choose(tokens: sequence.computed, bytes: sequence.computedBlocks * config.blockBytes)
        }
    }

    private mutating func preempt(_ id: SequenceID, into plan: inout StepPlan) {
        var sequence = sequences[id]!
        switch choice(forPreempting: sequence) {
        case .recompute:
            plan.recomputes.append(.init(sequence: id, tokens: sequence.computed))
            resetForRecompute(&sequence)
        case .swap(let tier):
            // Blocks beyond the computed tokens hold nothing: free them now.
            let kept = sequence.computedBlocks
            let all = sequence.table.removeAll()
            pool.release(Array(all[kept...]))
            sequence.table.append(Array(all[..<kept]))
            blocksBeingWritten += kept
            sequence.status = .swappingOut(tier)
            insertByArrival(id, into: &swapped)
            plan.swapOuts.append(.init(sequence: id, tier: tier, blocks: Array(all[..<kept]), tokens: sequence.computed))
        }
        sequences[id] = sequence
    }

    /// Drops a sequence's device KV and puts it back in the waiting queue, at its arrival rank.
    private mutating func resetForRecompute(_ sequence: inout GenerationSequence) {
        pool.release(sequence.table.removeAll())
        sequence.computed = 0
        sequence.status = .waiting
        insertByArrival(sequence.id, into: &waiting)
    }

    // MARK: Reports from the engine

    /// Records a computed step: each chunk's tokens now have KV, and each sampling chunk's
    /// sequence gets its next token from `sampled`.
    public mutating func completeStep(_ plan: StepPlan, sampled: [SequenceID: Int]) {
        for chunk in plan.chunks {
            guard var sequence = sequences[chunk.sequence], sequence.status == .running else { continue }
            precondition(sequence.computed == chunk.start, "step of sequence \(chunk.sequence) completed twice")
            sequence.computed += chunk.count
            if chunk.samples, let token = sampled[chunk.sequence] { sequence.tokens.append(token) }
            sequences[chunk.sequence] = sequence
        }
    }

    /// The outcome of one sequence's swap I/O.
    public enum IOOutcome: Hashable, Sendable {
        /// Every block was written (or read) intact.
        case completed
        /// A block could not be written or read (no space, I/O error, checksum mismatch): the
        /// sequence falls back to recompute.
        case failed
    }

    /// A swap-out finished: its device blocks are freed. What the engine must clean up is returned
    /// (tier slots, when the request was aborted meanwhile).
    @discardableResult
    public mutating func swapOutCompleted(_ id: SequenceID, _ outcome: IOOutcome) -> Removal {
        guard var sequence = sequences[id], case .swappingOut(let tier) = sequence.status else { return .unknown }
        let blocks = sequence.table.removeAll()
        blocksBeingWritten -= blocks.count
        pool.release(blocks)
        swapped.removeAll { $0 == id }
        if sequence.abortRequested {
            sequences[id] = nil
            return outcome == .completed ? .freeTier(tier, blocks: blocks.count) : .done
        }
        switch outcome {
        case .completed:
            sequence.status = .swapped(tier)
            insertByArrival(id, into: &swapped)
        case .failed:
            resetForRecompute(&sequence)
        }
        sequences[id] = sequence
        return .done
    }

    /// A swap-in finished: the sequence runs from the next step, or, when a read failed, waits to
    /// be recomputed. The tier's copy is no longer needed either way.
    @discardableResult
    public mutating func swapInCompleted(_ id: SequenceID, _ outcome: IOOutcome) -> Removal {
        guard var sequence = sequences[id], case .swappingIn(let tier) = sequence.status else { return .unknown }
        swapped.removeAll { $0 == id }
        let removal = Removal.freeTier(tier, blocks: sequence.computedBlocks)
        if sequence.abortRequested {
            pool.release(sequence.table.removeAll())
            sequences[id] = nil
            return removal
        }
        switch outcome {
        case .completed:
            sequence.status = .running
            insertByArrival(id, into: &running)
        case .failed:
            resetForRecompute(&sequence)
        }
        sequences[id] = sequence
        return removal
    }

    private func insertByArrival(_ id: SequenceID, into queue: inout [SequenceID]) {
        let arrival = sequences[id]!.arrival
        let position = queue.firstIndex { sequences[$0]!.arrival > arrival } ?? queue.endIndex
        queue.insert(id, at: position)
    }
}
