/// Continuous batching with preemption and a prefix cache: decides each step which sequences
/// compute which tokens, which are preempted (swapped out or recomputed), which swapped ones
/// come back, and which blocks move between the device and the tiers below it.
///
/// Policy: first come, first served within a request, least attained service between requests
/// (`FairShare`). Running sequences are served in that order, each with its next prefill chunk
/// (under the step's token budget) or its one decode token; a request that has had more service
/// takes no more of a step than those before it, nor more time than `config.sharedStepSlowdown`
/// allows by the step-time model (`FairShare.Step`). When the device has too few free blocks for one
/// of them, the last running sequence in that order is preempted (possibly the one asking): the
/// newest of the most-served request, as in vLLM when there is one request; blocks still read by
/// writes in flight count as arriving, so no more is preempted than needed. Swapped sequences
/// resume before any new request is admitted, except a request whose service is a step's tokens
/// below the most-served running request's: it is admitted first, preempting that one's sequences
/// if it must (`admitUnderserved`), and planned before the running sequences, so that the others
/// are held to their share of its first step as of its later ones.
///
/// Prefix cache: every full block is named by its content hash (`PrefixHash`). A sequence being
/// admitted takes the cached device blocks of its longest cached prefix and, past them, the
/// blocks found on flash when loading them is faster than computing them (`KVCostModel`); it
/// computes only the rest. Swaps write blocks under the same keys, so a block already in the tier
/// is never written twice, and a swapped sequence resumes from whatever of it the device still
/// caches.
///
/// The scheduler does no I/O: the engine carries out a `StepPlan`, then reports what finished with
/// `completeStep`, `writeCompleted`, `readCompleted` and `finish`. Device blocks are the
/// `KVCacheManager`'s; tier contents are `TierContents`'.
public struct Scheduler: Sendable {
    /// The limits and policies.
    public let config: SchedulerConfig
    /// Decides between moving KV and recomputing it; the engine feeds it measurements.
    public var costModel: KVCostModel
    /// The device's blocks.
    public private(set) var kv: KVCacheManager
    /// What the tiers below the device hold.
    public private(set) var tiers: TierContents

    private var sequences: [SequenceID: GenerationSequence] = [:]
    private var nextArrival: UInt64 = 0
    /// Each queue is kept in arrival order.
    private var waiting: [SequenceID] = []
    private var running: [SequenceID] = []
    private var loading: [SequenceID] = []
    /// Swapping out or swapped.
    private var swapped: [SequenceID] = []
    private var writes: [TransferID: StepPlan.Write] = [:]
    /// Writes in flight whose blocks are copied off the device already (their device blocks free).
    private var stagedWrites = Set<TransferID>()
    private var reads: [TransferID: PendingRead] = [:]
    private var nextTransfer: TransferID = 1
    /// Tier keys a swapping-out sequence still waits to see stored.
    private var swapOutWaits: [SequenceID: Set<BlockKey>] = [:]
    /// The tier keys each swapped sequence needs (pinned in `tiers`).
    private var tierHolds: [SequenceID: (tier: SwapTier, keys: [BlockKey])] = [:]
    /// Most tokens each sequence ever had computed, to count tokens computed twice.
    private var highWater: [SequenceID: Int] = [:]
    /// Blocks committed since they were last offered to a write-through prefix cache.
    private var committedForWriteThrough: [(block: Int, hash: PrefixHash)] = []
    private var prefixBlocksBeingWritten = 0
    /// When prefix saves may be planned again after one failed, and the pause after the next failure.
    private var prefixSaveBackoff = PrefixSaveBackoff()
    /// Prefix blocks dropped from flash to keep its room while the device may still cache them,
    /// with the device block and its hit count when a save first saw it since (nil before): such
    /// a block is saved again only once it is reused (or computed again into another block), or
    /// every save would push another one out and be pushed out in turn (on the H200 each 8 MiB
    /// block was written 2.25 times on average).
    private var trimmedFromFlash: [BlockKey: TrimmedBlockSighting] = [:]

    /// Where a save first saw a block trimmed from flash, and its hits then.
    private struct TrimmedBlockSighting {
        var seen: (block: Int, hits: Int)?
    }
    /// Prefix saves in flight when the prefix cache was reset: their blocks are deleted, not kept.
    private var discardedSaves = Set<TransferID>()
    private var swapInsInFlight = 0
    /// Swapped sequences whose blocks are being read, or were read, into host memory ahead of
    /// their resume (`SwapPrefetchDecision`); the swap-in that resumes one takes its prefetch.
    private var prefetched: [SequenceID: StepPlan.Prefetch] = [:]
    /// Prefetches whose reads have not ended, wanted or dropped.
    private var prefetchesInFlight = Set<TransferID>()
    /// Prefetches dropped since the last plan or `takeDroppedPrefetches`.
    private var droppedPrefetches: [TransferID] = []
    private var pendingDeletes: [StepPlan.Delete] = []
    private var events = SchedulerEvents()
    private let defaultRoot: PrefixHash
    /// Each request's attained service, for the order between requests.
    private var fairShare = FairShare()
    /// Seconds of a shared step's time budget saved for a trailing request's next token.
    private var carriedSlack = 0.0

    /// A read in flight and what its sequence becomes when it completes.
    private struct PendingRead: Sendable {
        var read: StepPlan.Read
        /// Whether loaded tokens count as the request's cached prompt tokens.
        var countsAsCached: Bool
    }

    /// A scheduler with an empty device of `config.deviceBlocks` blocks and empty tiers.
    public init(config: SchedulerConfig, costModel: KVCostModel = KVCostModel()) {
        self.config = config
        self.costModel = costModel
        self.costModel.chunkTokens = config.maxStepTokens
        kv = KVCacheManager(blockTokens: config.blockTokens, blocks: config.deviceBlocks, prefixCaching: config.prefixCaching)
        tiers = TierContents(keepsPrefixBlocks: config.savesPrefixesToFlash, prefixCapacityBlocks: config.prefixFlashBlocks)
        defaultRoot = PrefixHash.root(namespace: config.namespace)
    }

    // MARK: Reading

    /// The sequence with `id`, if it is still scheduled.
    public func sequence(_ id: SequenceID) -> GenerationSequence? { sequences[id] }
    /// The device blocks of sequence `id`, in token order.
    public func blockTable(of id: SequenceID) -> [Int] { kv.blocks(of: id) }
    /// Sequences waiting for admission (new or to recompute).
    public var waitingCount: Int { waiting.count }
    /// Sequences with KV on the device, or loading it.
    public var runningCount: Int { running.count + loading.count }
    /// Sequences swapping out or swapped.
    public var swappedCount: Int { swapped.count }
    /// Whether no sequence is left and no transfer is in flight.
    public var isIdle: Bool { sequences.isEmpty && !hasTransfersInFlight }
    /// Whether a transfer is in flight (a swap prefetch too).
    public var hasTransfersInFlight: Bool { !writes.isEmpty || !reads.isEmpty || !prefetchesInFlight.isEmpty }

    /// The events since the last call.
    public mutating func takeEvents() -> SchedulerEvents {
        defer { events = SchedulerEvents() }
        return events
    }

    /// Swap prefetches dropped since the last plan (their sequences ended between steps): the
    /// engine frees their host copies.
    public mutating func takeDroppedPrefetches() -> [TransferID] {
        defer { droppedPrefetches = [] }
        return droppedPrefetches
    }

    /// Tier blocks to delete decided since the last plan (by finished or aborted requests).
    public mutating func takeDeletes() -> [StepPlan.Delete] {
        defer { pendingDeletes = [] }
        return pendingDeletes
    }

    // MARK: Requests

    /// Adds a waiting sequence of `prompt` that may grow to `maxTotalTokens` tokens in all, at
    /// most `config.maxSequenceTokens` (the caller checks requests against it: a longer sequence
    /// could never fit the device). `cacheSalt` (a request's `cache_salt`) keeps its cached
    /// prefixes apart from other salts'. `group` names the request it belongs to (see `FairShare`;
    /// nil: one group with every other sequence that names none).
    public mutating func add(id: SequenceID, prompt: [Int], maxTotalTokens: Int, cacheSalt: String? = nil, group: FairShare.Group = nil) {
        precondition(sequences[id] == nil, "sequence \(id) added twice")
        precondition(
            maxTotalTokens <= config.maxSequenceTokens,
            "a sequence of up to \(maxTotalTokens) tokens cannot fit \(config.maxSequenceTokens) tokens of KV")
        let root = cacheSalt.map { $0.isEmpty ? defaultRoot : PrefixHash.root(namespace: config.namespace, salt: $0) } ?? defaultRoot
        let sequence = GenerationSequence(
            id: id, arrival: nextArrival, prompt: prompt, maxTotalTokens: maxTotalTokens, blockTokens: config.blockTokens, hashRoot: root)
        nextArrival += 1
        sequences[id] = sequence
        fairShare.join(id, group: group)
        insertByArrival(id, into: &waiting)
    }

    /// Removes a sequence (finished or aborted), freeing its device blocks and its tier blocks
    /// (through `takeDeletes`). A sequence with transfers in flight goes when they complete.
    public mutating func finish(_ id: SequenceID) {
        guard var sequence = sequences[id] else { return }
        switch sequence.status {
        case .waiting:
            waiting.removeAll { $0 == id }
        case .running:
            running.removeAll { $0 == id }
            kv.free(id)
        case .swapped:
            swapped.removeAll { $0 == id }
        case .swappingOut, .loading:
            sequence.abortRequested = true
            sequences[id] = sequence
            return
        }
        forget(id)
    }

    // MARK: Planning

    /// Plans the next step and updates the queues and block tables as if it will be carried out.
    public mutating func schedule() -> StepPlan {
        var plan = StepPlan()
        plan.deletes = takeDeletes()
        var budget = config.maxStepTokens
        var preempted = false
        // Once a sequence waits for blocks, later ones may not take new blocks ahead of it.
        var starved = false

        var share = startShare()
        defer { carriedSlack = share.carriedSlack }
        // An underserved request's waiting sequences are planned first, so that the more-served
        // requests' running sequences take their capped share of its first step as of the others
        // (planned after them, they would fill that step before it got in).
        preempted = admitUnderserved(budget: &budget, share: &share, into: &plan)
        let admitted = Set(plan.chunks.map(\.sequence))
        for id in fairOrder(running) where budget > 0 && !admitted.contains(id) {
            // A victim of an earlier sequence's growth.
            guard let sequence = sequences[id], sequence.status == .running else { continue }
            let count = share.grant(min(sequence.uncomputed, budget), to: id, from: sequence.computed)
            guard count > 0 else { continue }
            let missing = kv.blocksMissing(id, forTokens: sequence.computed + count)
            if missing > 0 {
                if starved { continue }
                var selfPreempted = false
                while kv.freeBlocks < missing, kv.freeBlocks + kv.arrivingBlocks < missing, let victim = takeVictim() {
                    preempt(victim, into: &plan)
                    preempted = true
                    if victim == id {
                        selfPreempted = true
                        break
                    }
                }
                if selfPreempted { break }
                guard kv.grow(id, toHold: sequence.computed + count) != nil else {
                    starved = true
                    continue
                }
            }
            append(chunk: id, count: count, to: &plan)
            share.take(count, by: id, from: sequence.computed)
            budget -= count
        }

        if !preempted, !starved {
            resumeSwapped(into: &plan)
            if swapped.isEmpty, swapInsInFlight == 0 { admitWaiting(budget: &budget, share: &share, into: &plan) }
        }
        planPrefetches(into: &plan)
        planUpkeep(into: &plan)
        return plan
    }

    /// Plans the step after `plan` before `plan`'s sampled tokens are known, so that the engine
    /// can launch it behind `plan` on a device that runs ahead of the host (vLLM's asynchronous
    /// scheduling): each running sequence computes the token `plan` samples for it. Nil when that
    /// is not the step `schedule` would plan, and the engine waits for `plan` and schedules:
    /// something waits, is swapped or loading; a running sequence was not sampled in `plan` (a
    /// prefill goes on); or the device lacks a block for one of them without preempting.
    ///
    /// A sequence whose sampled token reaches its length limit ends with `plan` and is left out;
    /// one that ends otherwise (an end-of-sequence token, a stop string) computes one token for
    /// nothing, and `finish` frees its blocks while the device may still write that token's K
    /// and V: the device runs the steps in order, so whatever takes those blocks next writes
    /// after it. `completeStep(plan)` comes before `completeStep` of the step returned.
    public mutating func planContinuation(of plan: StepPlan) -> StepPlan? {
        guard waiting.isEmpty, swapped.isEmpty, loading.isEmpty, !running.isEmpty else { return nil }
        var next: [SequenceID: Int] = [:]
        for chunk in plan.chunks {
            guard let sequence = sequences[chunk.sequence], sequence.status == .running else { continue }
            guard chunk.samples, sequence.computed == chunk.start else { return nil }
            next[chunk.sequence] = chunk.start + chunk.count
        }
        guard next.count == running.count, running.allSatisfy({ next[$0] != nil }) else { return nil }
        // The sampled token, at position `start`, ends the request when it reaches its limit.
        let continuing = fairOrder(running).filter { next[$0]! + 1 < sequences[$0]!.maxTotalTokens }
        let missing = continuing.reduce(0) { $0 + kv.blocksMissing($1, forTokens: next[$1]! + 1) }
        guard !continuing.isEmpty, continuing.count <= config.maxStepTokens, missing <= kv.freeBlocks else { return nil }
        var share = startShare()
        for id in continuing {
            guard share.grant(1, to: id, from: next[id]!) == 1 else { return nil }
            share.take(1, by: id, from: next[id]!)
        }
        carriedSlack = share.carriedSlack
        var continuation = StepPlan()
        continuation.deletes = takeDeletes()
        for id in continuing {
            _ = kv.grow(id, toHold: next[id]! + 1)
            continuation.decodes.append(StepPlan.Chunk(sequence: id, start: next[id]!, count: 1, samples: true))
        }
        planUpkeep(into: &continuation)
        return continuation
    }

    /// The requests' shares of a step planned now (`FairShare.Step`), with the time budget the
    /// steps before saved up.
    private func startShare() -> FairShare.Step {
        let pace = config.sharedStepSlowdown.map { FairShare.Pace(model: costModel.steps, slowdown: $0) }
        return fairShare.step(margin: config.maxStepTokens, pace: pace, carried: carriedSlack)
    }

    /// What every plan does besides computing: prefix saves to flash, the flash prefix blocks
    /// trimmed to their room, and the deletes its writes make void.
    private mutating func planUpkeep(into plan: inout StepPlan) {
        savePrefixBlocks(into: &plan)
        let trimmed = tiers.trimPrefixBlocks()
        rememberTrimmed(trimmed)
        if !trimmed.isEmpty {
            plan.deletes.append(.init(tier: .flash, keys: trimmed))
            events.flashPrefixEvictions += trimmed.count
        }
        keepRewrittenBlocks(in: &plan)
    }

    /// Drops from `plan`'s deletes the keys its writes write again. A sequence swapped back in
    /// releases its partial last block (it will change), and when the same step preempts it again
    /// before it computes anything, that block is written again under the same key: the new
    /// copy replaces the old one in the tier, and a delete of the key, landing after the new
    /// write, would lose it (the next swap-in would find the block missing).
    private func keepRewrittenBlocks(in plan: inout StepPlan) {
        guard !plan.writes.isEmpty, !plan.deletes.isEmpty else { return }
        var written: [SwapTier: Set<BlockKey>] = [:]
        for write in plan.writes { written[write.tier, default: []].formUnion(write.keys) }
        plan.deletes = plan.deletes.compactMap { delete in
            guard let rewritten = written[delete.tier] else { return delete }
            let keys = delete.keys.filter { !rewritten.contains($0) }
            return keys.isEmpty ? nil : StepPlan.Delete(tier: delete.tier, keys: keys)
        }
    }

    /// Blocks kept free after a resume or admission so the running sequences can grow a step.
    private var reserveBlocks: Int { running.count + loading.count }

    /// Blocks kept free after resuming `resumed` so that it and the sequences on the device can
    /// all grow by `config.resumeHeadroomTokens` tokens (each up to its request's limit) before
    /// anyone must be preempted again: hysteresis, so that a sequence swapped in is not swapped
    /// straight back out. At least `reserveBlocks`.
    private func resumeReserve(for resumed: GenerationSequence, holding blocks: Int) -> Int {
        let headroom = config.resumeHeadroomTokens
        guard headroom > 0 else { return reserveBlocks }
        func growth(_ sequence: GenerationSequence, holding held: Int) -> Int {
            let tokens = min(sequence.tokens.count + headroom, sequence.maxTotalTokens)
            return max(0, kv.blocks(forTokens: tokens) - held)
        }
        var reserve = growth(resumed, holding: blocks)
        for id in running + loading {
            reserve += growth(sequences[id]!, holding: kv.blocks(of: id).count)
        }
        return max(reserve, reserveBlocks)
    }

    private mutating func resumeSwapped(into plan: inout StepPlan) {
        for id in swapped {
            guard swapInsInFlight < config.prefetchDepth, running.count + loading.count < config.maxRunning else { return }
            let sequence = sequences[id]!
            guard case .swapped(let tier) = sequence.status else {
                // An older sequence still swapping out keeps its place: no overtaking.
                if case .swappingOut = sequence.status { return }
                continue
            }
            let stored = sequence.computed
            let needed = sequence.computedBlocks
            let (hits, keys) = resumeBlocks(of: sequence, from: tier)
            let available = hits.count + keys.count
            let tokens = available == needed ? stored : available * config.blockTokens
            let reserve = resumeReserve(for: sequence, holding: hits.count + keys.count)
            guard kv.freeBlocks - keys.count - kv.freeBlocksTaken(by: hits) >= reserve else { return }
            swapped.removeAll { $0 == id }
            let prefetch = prefetched.removeValue(forKey: id)
            kv.adopt(id, cached: hits)
            let blocks = kv.grow(id, toHold: tokens)!
            sequences[id]!.computed = hits.count * config.blockTokens
            if keys.isEmpty {
                if let prefetch { droppedPrefetches.append(prefetch.id) }
                sequences[id]!.computed = tokens
                sequences[id]!.status = .running
                insertByArrival(id, into: &running)
                releaseTierHolds(of: id, keepingContentOnFlash: true)
                continue
            }
            let read = StepPlan.Read(
                id: takeTransferID(), tier: tier, purpose: .swapIn, sequence: id, blocks: blocks, keys: keys,
                tokens: tokens - hits.count * config.blockTokens, prefetch: prefetch?.id)
            reads[read.id] = PendingRead(read: read, countsAsCached: false)
            plan.reads.append(read)
            sequences[id]!.status = .loading(tier)
            loading.append(id)
            swapInsInFlight += 1
        }
    }

    /// The device's cached blocks of swapped `sequence`'s leading blocks, and past them the keys
    /// of its blocks stored in `tier`, in order up to the first one missing: what its swap-in
    /// takes from the device cache and reads from the tier.
    private func resumeBlocks(of sequence: GenerationSequence, from tier: SwapTier) -> (hits: [Int], keys: [BlockKey]) {
        let stored = sequence.computed
        let hits = kv.cachedPrefix(sequence.blockHashes.prefix(stored / config.blockTokens))
        var keys: [BlockKey] = []
        for block in hits.count..<sequence.computedBlocks {
            let key = sequence.key(ofBlock: block, computedTokens: stored)
            guard tiers.isStored(key, in: tier) else { break }
            keys.append(key)
        }
        return (hits, keys)
    }

    /// The keys of swapped `sequence`'s blocks stored in `tier`, from its first block up to the
    /// first one missing, the ones the device's prefix cache still holds too.
    private func tierKeys(of sequence: GenerationSequence, in tier: SwapTier) -> [BlockKey] {
        var keys: [BlockKey] = []
        for block in 0..<sequence.computedBlocks {
            let key = sequence.key(ofBlock: block, computedTokens: sequence.computed)
            guard tiers.isStored(key, in: tier) else { break }
            keys.append(key)
        }
        return keys
    }

    /// Starts reading the flash blocks of the next swapped sequences to resume into host memory
    /// while their device blocks are not free yet, and drops the prefetches no longer wanted
    /// (`SwapPrefetchDecision`). The swap-in that resumes a prefetched sequence copies its blocks
    /// from host memory instead of waiting on the disk. A prefetch reads the blocks the device
    /// still caches too: the starved device reuses them before the resume (on the H200, govreport
    /// x0.25: 168 of a victim's 256 MiB were cached when its prefetch started, 48 at its resume,
    /// and the 120 MiB read at resume kept it 100 ms from running), and the swap-in copies only
    /// those it lacks then.
    private mutating func planPrefetches(into plan: inout StepPlan) {
        if config.swapPrefetchBlocks > 0 || !prefetched.isEmpty {
            let candidates = swapped.prefix(config.prefetchDepth).map { id -> SwapPrefetchDecision.Candidate in
                let sequence = sequences[id]!
                guard config.swapPrefetchBlocks > 0, case .swapped(.flash) = sequence.status else {
                    return .init(sequence: id, blocks: 0, prefetchable: false)
                }
                return .init(sequence: id, blocks: tierKeys(of: sequence, in: .flash).count, prefetchable: true)
            }
            let change = SwapPrefetchDecision.decide(
                candidates: candidates, held: prefetched.mapValues(\.keys.count), depth: config.prefetchDepth,
                capacityBlocks: config.swapPrefetchBlocks)
            for id in change.drop {
                if let dropped = prefetched.removeValue(forKey: id) { droppedPrefetches.append(dropped.id) }
            }
            for (id, blocks) in change.start {
                let keys = tierKeys(of: sequences[id]!, in: .flash).prefix(blocks)
                let prefetch = StepPlan.Prefetch(id: takeTransferID(), tier: .flash, sequence: id, keys: Array(keys))
                prefetched[id] = prefetch
                prefetchesInFlight.insert(prefetch.id)
                plan.prefetches.append(prefetch)
            }
        }
        plan.droppedPrefetches = takeDroppedPrefetches()
    }

    /// Admits waiting sequences in fair order while they fit and their request's `share` of the
    /// step allows; with `underservedOnly`, only those of requests `isUnderserved` says may pass.
    private mutating func admitWaiting(
        budget: inout Int, share: inout FairShare.Step, underservedOnly: Bool = false, into plan: inout StepPlan
    ) {
        var beingLoaded = keysBeingLoaded()
        while let id = fairOrder(waiting).first(where: { !awaitsLoad(of: $0, beingLoaded) }), budget > 0,
            running.count + loading.count < config.maxRunning
        {
            if underservedOnly, !isUnderserved(id) { return }
            let sequence = sequences[id]!
            let blockTokens = config.blockTokens
            // At least the last token is computed: its logits pick the next one.
            let reusable = (sequence.tokens.count - 1) / blockTokens
            let hits = kv.cachedPrefix(sequence.blockHashes.prefix(reusable))
            let hitTokens = hits.count * blockTokens
            let flashKeys = prefixBlocksWorthLoading(sequence, after: hits.count, upTo: reusable)
            if !flashKeys.isEmpty {
                guard kv.freeBlocks - flashKeys.count - kv.freeBlocksTaken(by: hits) >= reserveBlocks else { return }
                waiting.removeAll { $0 == id }
                admit(id, hits: hits)
                let blocks = kv.grow(id, toHold: hitTokens + flashKeys.count * blockTokens)!
                flashKeys.forEach { tiers.touch($0) }
                let read = StepPlan.Read(
                    id: takeTransferID(), tier: .flash, purpose: .loadPrefix, sequence: id, blocks: blocks, keys: flashKeys,
                    tokens: flashKeys.count * blockTokens)
                reads[read.id] = PendingRead(read: read, countsAsCached: sequence.generatedCount == 0 && !sequence.admitted)
                beingLoaded.formUnion(flashKeys)
                plan.reads.append(read)
                sequences[id]!.status = .loading(.flash)
                loading.append(id)
                continue
            }
            let count = share.grant(min(sequence.tokens.count - hitTokens, budget), to: id, from: hitTokens)
            guard count > 0 else { return }
            let missing = kv.blocks(forTokens: hitTokens + count) - hits.count
            guard kv.freeBlocks - missing - kv.freeBlocksTaken(by: hits) >= reserveBlocks else { return }
            waiting.removeAll { $0 == id }
            admit(id, hits: hits)
            _ = kv.grow(id, toHold: hitTokens + count)!
            sequences[id]!.status = .running
            insertByArrival(id, into: &running)
            append(chunk: id, count: count, to: &plan)
            share.take(count, by: id, from: hitTokens)
            budget -= count
        }
    }

    // MARK: Fairness between requests

    /// `ids` in serving order (see `FairShare.order`).
    private func fairOrder(_ ids: [SequenceID]) -> [SequenceID] {
        fairShare.order(ids) { sequences[$0]!.arrival }
    }

    /// Removes from `running` and returns the sequence to preempt next: the last in serving order,
    /// the newest sequence of the most-served request.
    private mutating func takeVictim() -> SequenceID? {
        guard let victim = fairOrder(running).last else { return nil }
        running.removeAll { $0 == victim }
        return victim
    }

    /// Whether waiting sequence `id`'s request has had a step's tokens less service than the
    /// most-served request with sequences on the device or swapped, so it may pass the swapped
    /// ones and preempt that request's running ones. The margin keeps two requests of equal size
    /// from preempting each other every step.
    private func isUnderserved(_ id: SequenceID) -> Bool {
        let heaviest = (running + loading + swapped).lazy.map { fairShare.service(of: $0) }.max() ?? 0
        return fairShare.service(of: id) + config.maxStepTokens < heaviest
    }

    /// Admits the waiting sequences of underserved requests (`isUnderserved`) ahead of swapped
    /// ones, preempting the most-served request's sequences for the first one's first chunk when
    /// the device is full (of blocks, or of `maxRunning` sequences). Called first in a step, before
    /// any chunk is planned. Returns whether it preempted.
    private mutating func admitUnderserved(budget: inout Int, share: inout FairShare.Step, into plan: inout StepPlan) -> Bool {
        guard let first = fairOrder(waiting).first, isUnderserved(first), budget > 0 else { return false }
        // As if nothing were cached (the admission itself reuses what is).
        let firstChunk = kv.blocks(forTokens: min(sequences[first]!.tokens.count, budget))
        var preempted = false
        while kv.freeBlocks + kv.arrivingBlocks < firstChunk + reserveBlocks || running.count + loading.count >= config.maxRunning,
            let heaviest = fairOrder(running).last,
            fairShare.service(of: first) + config.maxStepTokens < fairShare.service(of: heaviest), let victim = takeVictim()
        {
            preempt(victim, into: &plan)
            preempted = true
        }
        admitWaiting(budget: &budget, share: &share, underservedOnly: true, into: &plan)
        return preempted
    }

    /// Flash keys of the prefix loads in flight.
    private func keysBeingLoaded() -> Set<BlockKey> {
        Set(reads.values.lazy.filter { $0.read.purpose == .loadPrefix }.flatMap(\.read.keys))
    }

    /// Whether waiting sequence `id`'s next uncached block is on its way to the device in another
    /// sequence's prefix load. It waits for that load: once it arrives its blocks are cached on the
    /// device and shared, where loading them again would read the same bytes twice (requests on
    /// one document arriving together each read all of it).
    private func awaitsLoad(of id: SequenceID, _ beingLoaded: Set<BlockKey>) -> Bool {
        guard !beingLoaded.isEmpty, let sequence = sequences[id] else { return false }
        let reusable = (sequence.tokens.count - 1) / config.blockTokens
        let hits = kv.cachedPrefix(sequence.blockHashes.prefix(reusable)).count
        return hits < reusable && beingLoaded.contains(sequence.blockHashes[hits].key)
    }

    /// Takes the device cache's `hits` for a waiting sequence being admitted.
    private mutating func admit(_ id: SequenceID, hits: [Int]) {
        kv.adopt(id, cached: hits)
        let hitTokens = hits.count * config.blockTokens
        var sequence = sequences[id]!
        sequence.computed = hitTokens
        if !sequence.admitted, sequence.generatedCount == 0 { sequence.cachedPromptTokens = hitTokens }
        sequence.admitted = true
        sequences[id] = sequence
        events.deviceHitTokens += hitTokens
    }

    /// The flash keys of `sequence`'s blocks `first ..< limit` found on flash, in order up to the
    /// first missing one, when loading them is faster than computing them; else none.
    private mutating func prefixBlocksWorthLoading(_ sequence: GenerationSequence, after first: Int, upTo limit: Int) -> [BlockKey] {
        guard config.prefixCaching, config.hasFlashTier, first < limit else { return [] }
        var keys: [BlockKey] = []
        for block in first..<limit {
            let key = sequence.blockHashes[block].key
            guard tiers.isStored(key, in: .flash) else { break }
            keys.append(key)
        }
        guard !keys.isEmpty else { return [] }
        let start = first * config.blockTokens
        let end = (first + keys.count) * config.blockTokens
        let pays: Bool
        switch config.prefixLoadDecision {
        case .costModel: pays = costModel.loadPays(from: start, to: end, bytes: keys.count * config.blockBytes, tier: .flash)
        case .always: pays = true
        case .never: pays = false
        }
        guard pays else {
            events.declinedLoads += 1
            events.declinedLoadTokens += end - start
            return []
        }
        return keys
    }

    private func append(chunk id: SequenceID, count: Int, to plan: inout StepPlan) {
        let sequence = sequences[id]!
        let samples = sequence.computed + count == sequence.tokens.count
        let chunk = StepPlan.Chunk(sequence: id, start: sequence.computed, count: count, samples: samples)
        if count == 1, samples, sequence.generatedCount > 0 { plan.decodes.append(chunk) } else { plan.prefills.append(chunk) }
    }

    // MARK: Preemption

    /// The choice for one victim, from the preemption mode (and the cost model in `.auto`).
    ///
    /// `auto` takes the cheapest of the tiers that can take the victim and recomputing, by the
    /// cost model's measured speeds: the DRAM tier while it has room (the fastest by far where
    /// there is one), flash within the day's write budget, or recomputing.
    ///
    /// Under a flash write budget (`KVCostModel.flashBytesLeftToday`) flash takes only the swaps
    /// that pay, those faster than recomputing, so the budget goes where it saves the most; once
    /// a swap would pass it, the victim goes to the DRAM tier where one is configured (when that
    /// pays too), else it is recomputed. `swap-dram` recomputes a victim its tier has no room for.
    public func choice(forPreempting sequence: GenerationSequence) -> PreemptionChoice {
        guard sequence.computed > 0 else { return .recompute }
        switch config.preemption {
        case .recompute: return .recompute
        case .swapDRAM: return dramHasRoom(for: sequence) ? .swap(.dram) : .recompute
        case .swapFlash:
            guard flashBudgetAllows(blocks: blocksToWrite(sequence, to: .flash)) else { return overBudgetChoice(for: sequence) }
            guard costModel.flashBytesLeftToday != nil else { return .swap(.flash) }
            return preemptionChoice(for: sequence, tier: .flash) == .swap(.flash) ? .swap(.flash) : .recompute
        case .auto:
            var tiers: [SwapTier] = []
            if config.hasDRAMTier, dramHasRoom(for: sequence) { tiers.append(.dram) }
            if config.hasFlashTier, flashBudgetAllows(blocks: blocksToWrite(sequence, to: .flash)) { tiers.append(.flash) }
            return costModel.cheapestPreemption(computedTokens: sequence.computed, swaps: tiers.map { swapOption(for: sequence, tier: $0) })
        }
    }

    /// Whether flash may take `blocks` more blocks today on top of the flash writes in flight,
    /// which its wear ledger (`KVCostModel.flashBytesLeftToday`) does not count yet: several swaps
    /// planned in one step, or before the last ones end, never pass the day's budget together.
    /// Blocks count as the ledger counts them, at their slots' footprint on flash.
    private func flashBudgetAllows(blocks: Int) -> Bool {
        guard costModel.flashBytesLeftToday != nil else { return true }
        let inFlight = writes.values.reduce(0) { $0 + ($1.tier == .flash ? $1.blocks.count : 0) }
        return costModel.flashBudgetAllows(bytes: (inFlight + blocks) * FlashLayout.slotFootprint(payloadLength: config.blockBytes))
    }

    /// The cost model's choice between swapping `sequence` to `tier` and recomputing it.
    private func preemptionChoice(for sequence: GenerationSequence, tier: SwapTier) -> PreemptionChoice {
        costModel.cheapestPreemption(computedTokens: sequence.computed, swaps: [swapOption(for: sequence, tier: tier)])
    }

    /// What a swap of `sequence` to `tier` moves: the blocks the tier lacks now, all of them back.
    private func swapOption(for sequence: GenerationSequence, tier: SwapTier) -> SwapOption {
        SwapOption(
            tier: tier, bytesToWrite: blocksToWrite(sequence, to: tier) * config.blockBytes,
            bytesToRead: sequence.computedBlocks * config.blockBytes)
    }

    /// Where a victim goes when flash may take no more today: the DRAM tier when there is one
    /// with room for it and it pays, else recompute.
    private func overBudgetChoice(for sequence: GenerationSequence) -> PreemptionChoice {
        config.hasDRAMTier && dramHasRoom(for: sequence) ? preemptionChoice(for: sequence, tier: .dram) : .recompute
    }

    /// Whether the DRAM tier has room for the blocks of `sequence` it does not hold yet, beside
    /// those it holds and those being written to it.
    private func dramHasRoom(for sequence: GenerationSequence) -> Bool {
        tiers.occupiedCount(in: .dram) + blocksToWrite(sequence, to: .dram) <= config.dramBlocks
    }

    /// Blocks a swap of `sequence` to `tier` would write: those the tier holds not yet.
    private func blocksToWrite(_ sequence: GenerationSequence, to tier: SwapTier) -> Int {
        (0..<sequence.computedBlocks).count { block in
            let key = sequence.key(ofBlock: block, computedTokens: sequence.computed)
            return !tiers.isStored(key, in: tier) && !tiers.isPending(key, in: tier)
        }
    }

    private mutating func preempt(_ id: SequenceID, into plan: inout StepPlan) {
        let sequence = sequences[id]!
        let choice = choice(forPreempting: sequence)
        plan.preemptions.append(.init(sequence: id, choice: choice, tokens: sequence.computed))
        switch choice {
        case .recompute:
            kv.free(id)
            resetForRecompute(id)
        case .swap(let tier):
            let computed = sequence.computed
            let table = kv.blocks(of: id)
            var keys: [BlockKey] = []
            var written: (blocks: [Int], keys: [BlockKey]) = ([], [])
            var waits = Set<BlockKey>()
            for block in 0..<sequence.computedBlocks {
                let key = sequence.key(ofBlock: block, computedTokens: computed)
                keys.append(key)
                if tiers.isStored(key, in: tier) { continue }
                waits.insert(key)
                if tiers.isPending(key, in: tier) { continue }
                tiers.beginWrite(key, to: tier)
                kv.pin(table[block])
                written.blocks.append(table[block])
                written.keys.append(key)
            }
            // Blocks the tier already holds are free at once; the others once their write ends.
            kv.free(id)
            tiers.pin(keys, in: tier)
            releaseTierHolds(of: id)
            tierHolds[id] = (tier, keys)
            if !written.keys.isEmpty {
                let write = StepPlan.Write(id: takeTransferID(), tier: tier, purpose: .swapOut(id), blocks: written.blocks, keys: written.keys)
                writes[write.id] = write
                plan.writes.append(write)
            }
            if waits.isEmpty {
                sequences[id]!.status = .swapped(tier)
            } else {
                sequences[id]!.status = .swappingOut(tier)
                swapOutWaits[id] = waits
            }
            insertByArrival(id, into: &swapped)
        }
    }

    /// Puts a sequence whose device KV is gone back in the waiting queue, at its arrival rank.
    private mutating func resetForRecompute(_ id: SequenceID) {
        sequences[id]!.computed = 0
        sequences[id]!.status = .waiting
        insertByArrival(id, into: &waiting)
    }

    // MARK: The prefix cache's second level

    /// Plans writes of cached device blocks to flash, by the prefix write policy, within the
    /// writes allowed in flight and the day's flash budget.
    private mutating func savePrefixBlocks(into plan: inout StepPlan) {
        guard config.savesPrefixesToFlash, prefixSaveBackoff.allowsSave() else { return }
        let room = config.prefixWritesInFlight - prefixBlocksBeingWritten
        guard room > 0, flashBudgetAllows(blocks: 1) else { return }
        var candidates: [(block: Int, hash: PrefixHash)]
        switch config.prefixWritePolicy {
        case .writeThrough:
            committedForWriteThrough.removeAll { kv.pool.content(of: $0.block) != $0.hash }
            candidates = committedForWriteThrough
        case .onEvict, .reused:
            // The blocks the next steps would reuse: what one step can allocate, twice over.
            let lookahead = 2 * (config.maxStepTokens / config.blockTokens + running.count + 1)
            candidates = kv.nextEvictions(limit: lookahead)
            if config.prefixWritePolicy == .reused { candidates.removeAll { kv.pool.hits(of: $0.block) < 2 } }
        }
        var blocks: [Int] = []
        var keys: [BlockKey] = []
        var taken = Set<Int>()
        for candidate in candidates where blocks.count < room {
            let key = candidate.hash.key
            guard !tiers.isStored(key, in: .flash), !tiers.isPending(key, in: .flash) else { continue }
            if let sighting = trimmedFromFlash[key] {
                let now = (block: candidate.block, hits: kv.pool.hits(of: candidate.block))
                guard let seen = sighting.seen else {
                    trimmedFromFlash[key] = TrimmedBlockSighting(seen: now)  // the first look since the trim
                    continue
                }
                if seen.block == now.block, now.hits <= seen.hits { continue }
                trimmedFromFlash[key] = nil  // reused since, or computed again into another block
            }
            guard flashBudgetAllows(blocks: blocks.count + 1) else { break }
            tiers.beginWrite(key, to: .flash)
            kv.pin(candidate.block)
            blocks.append(candidate.block)
            keys.append(key)
            taken.insert(candidate.block)
        }
        if config.prefixWritePolicy == .writeThrough {
            committedForWriteThrough.removeAll { taken.contains($0.block) || tiers.isStored($0.hash.key, in: .flash) }
        }
        guard !blocks.isEmpty else { return }
        let write = StepPlan.Write(id: takeTransferID(), tier: .flash, purpose: .savePrefix, blocks: blocks, keys: keys)
        writes[write.id] = write
        plan.writes.append(write)
        prefixBlocksBeingWritten += blocks.count
    }

    /// Notes blocks just trimmed from flash (see `trimmedFromFlash`), and forgets those the
    /// device no longer caches once there are more of them than device blocks.
    private mutating func rememberTrimmed(_ keys: [BlockKey]) {
        for key in keys { trimmedFromFlash[key] = TrimmedBlockSighting(seen: nil) }
        guard trimmedFromFlash.count > 2 * config.deviceBlocks else { return }
        let cached = Set(kv.pool.cachedBlocks.map(\.content.key))
        trimmedFromFlash = trimmedFromFlash.filter { cached.contains($0.key) }
    }

    /// A write of every cached device block that flash lacks, whatever the prefix write policy and
    /// the writes in flight: at shutdown, so the device cache survives the restart. Nil when
    /// there is nothing to save, no flash prefix cache, or no flash budget left today.
    public mutating func saveAllCachedBlocks() -> StepPlan.Write? {
        guard config.savesPrefixesToFlash else { return nil }
        var blocks: [Int] = []
        var keys: [BlockKey] = []
        for (block, content) in kv.pool.cachedBlocks {
            let key = content.key
            guard !tiers.isStored(key, in: .flash), !tiers.isPending(key, in: .flash) else { continue }
            guard flashBudgetAllows(blocks: blocks.count + 1) else { break }
            tiers.beginWrite(key, to: .flash)
            kv.pin(block)
            blocks.append(block)
            keys.append(key)
        }
        guard !blocks.isEmpty else { return nil }
        let write = StepPlan.Write(id: takeTransferID(), tier: .flash, purpose: .savePrefix, blocks: blocks, keys: keys)
        writes[write.id] = write
        prefixBlocksBeingWritten += blocks.count
        return write
    }

    /// Forgets the device's cached prefixes and, with `flash`, the prefix blocks this instance
    /// keeps on flash (deleted through the next plan or `takeDeletes`). Returns the numbers of
    /// device and flash blocks forgotten.
    @discardableResult
    public mutating func resetPrefixCache(flash: Bool) -> (device: Int, flash: Int) {
        let device = kv.resetCache()
        committedForWriteThrough = []
        guard flash else { return (device, 0) }
        discardedSaves.formUnion(writes.values.filter { $0.purpose == .savePrefix }.map(\.id))
        let keys = tiers.dropPrefixBlocks()
        trimmedFromFlash = [:]
        if !keys.isEmpty { pendingDeletes.append(.init(tier: .flash, keys: keys)) }
        return (device, keys.count)
    }

    /// Adds blocks found in `tier` without this scheduler writing them (recovered at start, or
    /// another instance's when `owned` is false).
    public mutating func learnStoredBlocks(_ keys: [BlockKey], in tier: SwapTier, owned: Bool) {
        tiers.learn(keys, in: tier, owned: owned)
    }

    /// Forgets blocks another instance wrote and no longer holds (blocks this one owns stay).
    public mutating func forgetSharedBlocks(_ keys: [BlockKey], in tier: SwapTier) {
        tiers.forgetForeign(keys, in: tier)
    }

    // MARK: Reports from the engine

    /// Records a computed step: each chunk's tokens now have KV, and each sampling chunk's
    /// sequence gets its next token from `sampled`.
    public mutating func completeStep(_ plan: StepPlan, sampled: [SequenceID: Int]) {
        for chunk in plan.chunks {
            let id = chunk.sequence
            guard sequences[id]?.status == .running else { continue }
            precondition(sequences[id]!.computed == chunk.start, "step of sequence \(id) completed twice")
            let before = highWater[id] ?? 0
            events.recomputedTokens += max(0, min(chunk.start + chunk.count, before) - chunk.start)
            let computed = chunk.start + chunk.count
            fairShare.record(id, tokens: chunk.count)
            highWater[id] = max(before, computed)
            // Changed in place: appending to a copy taken out of the dictionary would copy the
            // sequence's whole token array on every token.
            sequences[id]!.computed = computed
            if chunk.samples, let token = sampled[id] { sequences[id]!.append(token) }
            let committed = kv.commitFullBlocks(id, hashes: sequences[id]!.blockHashes, computedTokens: computed)
            if config.savesPrefixesToFlash, config.prefixWritePolicy == .writeThrough { committedForWriteThrough += committed }
        }
    }

    /// A planned write's blocks were copied off the device into host staging: its device blocks
    /// may be reused (those its sequence freed go back to the free list now) while the write goes
    /// on. Its sequence stays swapping out, and cannot resume, until the write completes.
    public mutating func writeStaged(_ id: TransferID) {
        guard let write = writes[id], stagedWrites.insert(id).inserted else { return }
        write.blocks.forEach { kv.unpin($0) }
    }

    /// A planned write finished: every block stored, or (`succeeded` false) not all. A swap-out
    /// that depended on it completes, or falls back to recompute when the write failed.
    public mutating func writeCompleted(_ id: TransferID, succeeded: Bool) {
        guard let write = writes.removeValue(forKey: id) else { return }
        if stagedWrites.remove(id) == nil { write.blocks.forEach { kv.unpin($0) } }
        if discardedSaves.remove(id) != nil {
            prefixBlocksBeingWritten -= write.blocks.count
            for key in write.keys { _ = tiers.endWrite(key, to: write.tier, succeeded: false) }
            if succeeded { pendingDeletes.append(.init(tier: write.tier, keys: write.keys)) }
            return
        }
        var orphans: [BlockKey] = []
        for key in write.keys where tiers.endWrite(key, to: write.tier, succeeded: succeeded) { orphans.append(key) }
        if !orphans.isEmpty { pendingDeletes.append(.init(tier: write.tier, keys: orphans)) }
        if write.purpose == .savePrefix {
            prefixBlocksBeingWritten -= write.blocks.count
            prefixSaveBackoff.record(succeeded: succeeded)
        }
        let keys = Set(write.keys)
        for (sequence, waits) in swapOutWaits where !waits.isDisjoint(with: keys) {
            guard case .swappingOut(let tier) = sequences[sequence]?.status, tier == write.tier else { continue }
            if !succeeded {
                swapOutWaits[sequence] = nil
                swapOutFinished(sequence, succeeded: false)
            } else if waits.subtracting(keys).isEmpty {
                swapOutWaits[sequence] = nil
                swapOutFinished(sequence, succeeded: true)
            } else {
                swapOutWaits[sequence] = waits.subtracting(keys)
            }
        }
    }

    private mutating func swapOutFinished(_ id: SequenceID, succeeded: Bool) {
        guard let sequence = sequences[id], case .swappingOut(let tier) = sequence.status else { return }
        if sequence.abortRequested {
            swapped.removeAll { $0 == id }
            forget(id)
        } else if succeeded {
            sequences[id]!.status = .swapped(tier)
        } else {
            swapped.removeAll { $0 == id }
            releaseTierHolds(of: id)
            resetForRecompute(id)
        }
    }

    /// A swap prefetch's read ended (whether its blocks arrived is the swap-in's to find out: it
    /// reads from the tier what the prefetch did not bring).
    public mutating func prefetchCompleted(_ id: TransferID) {
        prefetchesInFlight.remove(id)
    }

    /// A planned read finished with its first `intactBlocks` blocks delivered intact (all of them
    /// on success). The sequence runs from the next step and computes whatever did not arrive.
    public mutating func readCompleted(_ id: TransferID, intactBlocks: Int) {
        guard let pending = reads.removeValue(forKey: id) else { return }
        let read = pending.read
        loading.removeAll { $0 == read.sequence }
        if read.purpose == .swapIn {
            swapInsInFlight -= 1
            releaseTierHolds(of: read.sequence, keepingContentOnFlash: true)
        }
        guard var sequence = sequences[read.sequence] else { return }
        if sequence.abortRequested {
            kv.free(read.sequence)
            forget(read.sequence)
            return
        }
        let intact = min(max(intactBlocks, 0), read.blocks.count)
        let tokens = intact == read.blocks.count ? read.tokens : intact * config.blockTokens
        sequence.computed += tokens
        if read.purpose == .loadPrefix {
            events.flashHitTokens += tokens
            if pending.countsAsCached { sequence.cachedPromptTokens += tokens }
        }
        sequence.status = .running
        sequences[read.sequence] = sequence
        kv.truncate(read.sequence, toBlocks: kv.blocks(forTokens: sequence.computed))
        kv.commitFullBlocks(read.sequence, hashes: sequence.blockHashes, computedTokens: sequence.computed)
        if intact < read.blocks.count { tiers.forget(Array(read.keys[intact...].prefix(1)), in: read.tier) }
        insertByArrival(read.sequence, into: &running)
    }

    // MARK: Bookkeeping

    /// Ends a sequence's need of its tier blocks. With `keepingContentOnFlash` (a swap-in that
    /// arrived), its full blocks stay on flash while it lives, so a later swap-out of the same
    /// sequence writes only what changed; its partial block, which will change, goes at once.
    private mutating func releaseTierHolds(of id: SequenceID, keepingContentOnFlash: Bool = false) {
        guard let hold = tierHolds.removeValue(forKey: id) else { return }
        let kept = keepingContentOnFlash && hold.tier == .flash ? hold.keys.filter { $0.kind == .content } : []
        let released = kept.isEmpty ? hold.keys : hold.keys.filter { $0.kind != .content }
        if !kept.isEmpty { tierHolds[id] = (hold.tier, kept) }
        let deleted = tiers.unpin(released, in: hold.tier)
        if !deleted.isEmpty { pendingDeletes.append(.init(tier: hold.tier, keys: deleted)) }
    }

    /// Drops a sequence that has ended, with its tier blocks.
    private mutating func forget(_ id: SequenceID) {
        if let prefetch = prefetched.removeValue(forKey: id) { droppedPrefetches.append(prefetch.id) }
        releaseTierHolds(of: id)
        sequences[id] = nil
        highWater[id] = nil
        fairShare.leave(id)
    }

    private mutating func takeTransferID() -> TransferID {
        defer { nextTransfer += 1 }
        return nextTransfer
    }

    private func insertByArrival(_ id: SequenceID, into queue: inout [SequenceID]) {
        let arrival = sequences[id]!.arrival
        let position = queue.firstIndex { sequences[$0]!.arrival > arrival } ?? queue.endIndex
        queue.insert(id, at: position)
    }
}
