import Backend
import Foundation
import HiFCCore
import Logging
import Models

/// Why an engine could not start.
public enum EngineError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The KV budget holds no block, or fewer than one sequence needs.
    case kvBudgetTooSmall(budget: String, blockBytes: Int)
    /// `swap-flash` or `auto` was asked for without a flash store.
    case noFlashTier(PreemptionMode)
    /// `sharedStepSlowdown` is not above 1.
    case sharedStepSlowdownNotAboveOne(Double)

    public var description: String {
        switch self {
        case .kvBudgetTooSmall(let budget, let blockBytes):
            return "the KV budget \(budget) holds no KV block of \(blockBytes) bytes; raise --kv-budget"
        case .noFlashTier(let mode):
            return "--preemption \(mode) needs a flash store; give --flash-path"
        case .sharedStepSlowdownNotAboveOne(let slowdown):
            return "--fair-step-slowdown \(slowdown) must be above 1, or the more-served requests never advance"
        }
    }
}

/// The engine's step, run synchronously on one thread: the scheduler, the model runner, the
/// transfers and the sampler, with requests' outputs returned as events. `LLMEngine` runs it in
/// a loop on its own thread; tests and the bench may drive it directly.
///
/// One step, as nano-vllm has it: schedule -> run -> postprocess. Take the transfers that
/// finished and report them to the scheduler; ask it for a `StepPlan`; start the plan's writes,
/// reads and deletes (their I/O overlaps the compute); run the forward pass over the resident
/// sequences; sample; return the new tokens, text and finishes. When nothing can compute until a
/// transfer completes, the step waits for it, and that wait is the swap time left exposed. Each
/// step's figures are one `EngineStats`, which feeds the totals and the metrics.
///
/// Not thread-safe: one thread owns it.
public final class EngineCore {
    /// The configuration it runs with.
    public let configuration: EngineConfiguration
    /// The model, its tokenizer and chat template.
    public let loaded: LoadedModel
    /// The device KV pool.
    public let kv: any KVCachePool
    /// Tokens of one sequence at most: the model's context, or the KV budget when smaller.
    public let maxSequenceTokens: Int
    /// The prefix cache's namespace (model, KV layout, backend).
    public let namespace: PrefixNamespace

    private var scheduler: Scheduler
    private let runner: ModelRunner
    private let transfers: KVTransfers
    private let outcomes = Inbox<TransferEvent>()
    /// Longest a step with nothing to compute waits for a transfer before it returns.
    var transferWaitTimeout: TimeInterval = 1
    private let flashTier: (any KVTierStore)?
    /// The flash tier's daily write budget, all regions together.
    private let flashBudget: FlashWriteBudget
    private var requests: [SequenceID: RequestProgress] = [:]
    /// Totals since start.
    private var totals = EngineStats()
    private let metrics: EngineMetrics
    private let logger = Logger(label: "hifc.engine")

    /// An engine for `loaded` whose KV pool is sized by `configuration.kvBudget`. `flashTier` is
    /// the flash cache (`FlashTier` over a `FlashStore`): needed by `swap-flash` and `auto`, and
    /// the prefix cache's second level in any mode. `deviceSwapper`, given the KV pool, may
    /// return a backend's direct device<->flash swapper (GPUDirect Storage) for the flash tier.
    public init(
        loaded: LoadedModel, configuration: EngineConfiguration, flashTier: (any KVTierStore)? = nil,
        deviceSwapper: ((any KVCachePool) throws -> (any DeviceKVSwapper)?)? = nil
    ) throws {
        self.configuration = configuration
        self.loaded = loaded
        metrics = EngineMetrics(replica: configuration.replica)
        let model = loaded.model
        let layout = model.kvLayout(blockTokens: configuration.blockTokens, dtype: configuration.kvDType)
        let stride = FlashLayout.padded(layout.blockBytes)
        let blocks = configuration.kvBudget.blockCount(blockBytes: stride)
        guard blocks > 0 else { throw EngineError.kvBudgetTooSmall(budget: "\(configuration.kvBudget)", blockBytes: stride) }
        if let slowdown = configuration.sharedStepSlowdown, !(slowdown > 1) {
            throw EngineError.sharedStepSlowdownNotAboveOne(slowdown)
        }
        if flashTier == nil, configuration.preemption == .swapFlash || configuration.preemption == .auto {
            throw EngineError.noFlashTier(configuration.preemption)
        }
        kv = try model.makeKVCachePool(blockTokens: configuration.blockTokens, blocks: blocks, dtype: configuration.kvDType)
        self.flashTier = flashTier

        flashBudget = configuration.flashWriteBudget(regions: flashTier?.regionCount ?? 1)
        // The DRAM tier (`--dram-swap` bytes), for swap-dram, for auto (its first choice while it
        // has room), and beside flash in swap-flash under a flash write budget (where swaps go
        // once the day's budget is spent): the backend's pinned host pool where the KV pool is
        // device memory (a GPU), else host memory the blocks are copied to in place.
        let dramBesideFlash = flashTier != nil && configuration.preemption == .swapFlash && flashBudget.dailyBytes != nil
        let hasDRAMTier = configuration.preemption == .swapDRAM || configuration.preemption == .auto || dramBesideFlash
        let dramBlocks = Int(configuration.hostSwapCapacity.bytes) / kv.blockStride
        var tiers: [any KVTierStore] = []
        var hostSwapper: (any DeviceHostSwapper)?
        if hasDRAMTier {
            hostSwapper = try kv.makeHostSwapper(capacityBlocks: dramBlocks)
            if hostSwapper == nil { tiers.append(HostMemoryTier(blockBytes: kv.blockStride, capacityBlocks: dramBlocks)) }
        }
        if let flashTier {
            tiers.append(flashTier)
            // Staged swap-outs, prefix saves and swap prefetches borrow these; pinned now, a run's
            // first swap-outs would pin them (about 0.1 s for a 576 MiB sequence on the H200).
            kv.prepareStagingBuffers(count: min(blocks, Self.preparedStagingBytes / kv.blockStride))
        }
        let inbox = outcomes
        let direct = try flashTier != nil ? deviceSwapper?(kv) : nil
        transfers = KVTransfers(
            pool: kv, tiers: tiers, deviceSwapper: direct, hostSwapper: hostSwapper, stagesFlashWrites: configuration.stagesFlashWrites
        ) { inbox.post($0) }
        runner = ModelRunner(model: model, kv: kv)
        overlapsSteps = configuration.stepOverlap.enabled(backendRunsAhead: model.backend.runsAhead)

        namespace = PrefixNamespace(modelIdentity: loaded.fingerprint, layout: layout, backend: model.backend.name)
        let prefixFlashBytes = configuration.prefixCacheFlashSize?.bytes ?? (flashTier?.capacityBytes).map { $0 / 2 } ?? 0
        let schedulerConfig = SchedulerConfig(
            blockTokens: configuration.blockTokens, deviceBlocks: blocks, blockBytes: layout.blockBytes,
            maxStepTokens: configuration.maxStepTokens, maxRunning: configuration.maxRunning,
            preemption: configuration.preemption, prefetchDepth: configuration.prefetchDepth,
            swapPrefetchBlocks: flashTier == nil ? 0 : Int(configuration.swapPrefetchCapacity.bytes) / kv.blockStride,
            resumeHeadroomTokens: configuration.resumeHeadroomTokens,
            prefixCaching: configuration.prefixCaching, namespace: namespace, hasFlashTier: flashTier != nil, hasDRAMTier: hasDRAMTier,
            dramBlocks: dramBlocks,
            prefixWritePolicy: configuration.prefixCacheWrite,
            prefixFlashBlocks: Int(prefixFlashBytes / Int64(FlashLayout.slotFootprint(payloadLength: layout.blockBytes))),
            prefixLoadDecision: configuration.prefixLoadDecision, sharedStepSlowdown: configuration.sharedStepSlowdown)
        scheduler = Scheduler(config: schedulerConfig)
        maxSequenceTokens = min(loaded.config.maxPositions, schedulerConfig.maxSequenceTokens)
        flashTier?.adoptNamespace(namespace)
        restoreStepTimeModel()
        if let flashTier, schedulerConfig.savesPrefixesToFlash {
            let recovered = flashTier.storedContentKeys
            scheduler.learnStoredBlocks(recovered, in: .flash, owned: true)
            if !recovered.isEmpty { logger.info("the flash tier holds \(recovered.count) prefix blocks from earlier runs") }
            measureFlashReads()
            if flashTier.isShared {
                let shared = refreshSharedBlocks(every: 0)
                logger.info("shared flash directory: \(shared) prefix blocks of other instances readable")
            }
        }
    }

    /// Whether the cost model has a measured flash read bandwidth (a probe, or a read done).
    private var flashReadsMeasured = false
    /// Whether a real flash read (not the probe) has been measured.
    private var flashReadDone = false
    private var stepsSinceProbe = 0

    /// Seeds the cost model's flash read bandwidth with a measurement of reading back blocks
    /// flash holds, until a real read has measured it. Without it the model starts from a guess
    /// (3 GB/s), and a disk slower than the guess loads prefixes that recomputing would serve
    /// sooner. Tried at start and then every 256 steps while flash holds too little to measure.
    private func measureFlashReads() {
        guard !flashReadsMeasured, configuration.prefixCaching, let flashTier else { return }
        stepsSinceProbe = 0
        guard let bandwidth = flashTier.measureReadBandwidth() else { return }
        scheduler.costModel.readBytesPerSecond[.flash] = bandwidth
        flashReadsMeasured = true
        logger.info("flash read bandwidth measured on stored blocks: \(String(format: "%.2f", bandwidth / 1e9)) GB/s")
    }

    /// Last look at the other instances' regions in a shared flash directory.
    private var lastSharedRefresh = ContinuousClock.now

    /// In a shared flash directory, learns the blocks other instances wrote (not this one's to
    /// delete) and forgets those they lost, when `seconds` have passed since the last look.
    /// Returns the blocks newly found. The scan reads only slot headers written since the last.
    @discardableResult
    private func refreshSharedBlocks(every seconds: Double) -> Int {
        guard let flashTier, flashTier.isShared, configuration.prefixCaching,
            Self.seconds(since: lastSharedRefresh) >= seconds
        else { return 0 }
        lastSharedRefresh = .now
        let change = flashTier.refreshSharedBlocks()
        scheduler.learnStoredBlocks(change.found, in: .flash, owned: false)
        scheduler.forgetSharedBlocks(change.gone, in: .flash)
        return change.found.count
    }

    /// Whether no request is left and no transfer or step is in flight.
    public var isIdle: Bool { scheduler.isIdle && inFlight == nil }

    /// Whether a step is launched behind the one before it, before that one's tokens are back.
    public let overlapsSteps: Bool
    /// The step launched ahead, whose events the next `step` returns.
    private var inFlight: LaunchedStep?
    /// When the last step's outputs came back.
    private var lastCollected = ContinuousClock.now

    // MARK: Requests

    /// Adds a request under `id`; its events come from later `step`s.
    public func add(id: SequenceID, _ request: GenerationRequest) throws(GenerationError) {
        let sampling = request.sampling
        guard !request.promptTokens.isEmpty else { throw .emptyPrompt }
        guard sampling.maxTokens >= 1 else { throw .invalidParameter(parameter: "max_tokens", reason: "must be at least 1") }
        guard sampling.temperature >= 0 else { throw .invalidParameter(parameter: "temperature", reason: "must not be negative") }
        guard sampling.topP > 0, sampling.topP <= 1 else { throw .invalidParameter(parameter: "top_p", reason: "must be in (0, 1]") }
        if let bad = request.promptTokens.first(where: { $0 < 0 || $0 >= loaded.config.vocabSize }) {
            throw .invalidParameter(parameter: "prompt", reason: "token id \(bad) is outside the vocabulary of \(loaded.config.vocabSize)")
        }
        if let bad = sampling.logitBias.keys.sorted().first(where: { $0 < 0 || $0 >= loaded.config.vocabSize }) {
            throw .invalidParameter(parameter: "logit_bias", reason: "token id \(bad) is outside the vocabulary of \(loaded.config.vocabSize)")
        }
        if let alternatives = sampling.logprobs, alternatives < 0 {
            throw .invalidParameter(parameter: "logprobs", reason: "the number of alternatives must not be negative")
        }
        let total = request.promptTokens.count + sampling.maxTokens
        // The engine's one length check: `maxSequenceTokens` is the smaller of the model's context
        // and what the whole KV budget holds, the scheduler's limit.
        guard total <= maxSequenceTokens else {
            throw .contextTooLong(promptTokens: request.promptTokens.count, maxTokens: sampling.maxTokens, limit: maxSequenceTokens)
        }
        // A new request may share a prefix another instance wrote a moment ago.
        refreshSharedBlocks(every: Self.sharedRefreshOnRequest)
        scheduler.add(id: id, prompt: request.promptTokens, maxTotalTokens: total, cacheSalt: request.cacheSalt, group: request.fairnessGroup)
        requests[id] = RequestProgress(request: request, tokenizer: loaded.tokenizer, eos: loaded.eosTokenIDs)
        var added = EngineStats()
        added.promptTokens = request.promptTokens.count
        record(&added)
    }

    /// Aborts a request: its blocks are freed (at once, or when its transfers complete). Returns
    /// its last event, or nil when it was not running.
    @discardableResult
    public func abort(id: SequenceID) -> GenerationEvent? {
        guard let progress = requests.removeValue(forKey: id) else { return nil }
        scheduler.finish(id)
        var aborted = EngineStats()
        aborted.finishedRequests = 1
        record(&aborted)
        return .finished(.abort, progress.usage)
    }

    /// Forgets the device's cached prefixes and, with `flash`, the prefix blocks this instance
    /// keeps on flash (`POST /reset_prefix_cache`). Returns the numbers of blocks forgotten.
    @discardableResult
    public func resetPrefixCache(flash: Bool) -> (device: Int, flash: Int) {
        let dropped = scheduler.resetPrefixCache(flash: flash)
        var reset = EngineStats()
        record(&reset)
        logger.info("prefix cache reset: \(dropped.device) device blocks and \(dropped.flash) flash blocks forgotten")
        return dropped
    }

    // MARK: The step

    /// Runs one step and returns the requests' new events in order.
    ///
    /// Where the backend runs ahead of the host (`overlapsSteps`), a step whose sequences all
    /// decode greedily launches the next one before taking its own tokens back
    /// (`Scheduler.planContinuation`): that step reads this one's tokens on the device, and its
    /// planning, launch and this step's bookkeeping run while the device computes. Its events
    /// come from the next call, which does the same for the step after it.
    public func step() throws -> [(SequenceID, GenerationEvent)] {
        var step = EngineStats()
        apply(outcomes.drain(), to: &step)
        updateFlashBudget()
        refreshSharedBlocks(every: Self.sharedRefreshInterval)
        stepsSinceProbe += 1
        if !flashReadsMeasured, stepsSinceProbe >= 256 { measureFlashReads() }
        var events: [(SequenceID, GenerationEvent)] = []
        if let launched = inFlight {
            // Cleared first, so that a launch that fails leaves no step in flight.
            inFlight = nil
            inFlight = try launchContinuation(of: launched, into: &step)
            events = try collect(launched, into: &step)
            record(&step)
            return events
        }
        let plan = scheduler.schedule()
        start(plan, into: &step)
        if plan.hasCompute {
            let launched = try runner.launch(
                plan, sequences: { scheduler.sequence($0)! }, blockTables: { scheduler.blockTable(of: $0) },
                pick: { requests[$0]!.backendPick() })
            inFlight = try launchContinuation(of: launched, into: &step)
            events = try collect(launched, into: &step)
        } else if scheduler.hasTransfersInFlight {
            // Nothing can compute until a transfer completes, or a request arrives (`waker`).
            // Waiting on a swap or a load that a request needs is exposed swap time; waiting on
            // prefix saves alone is not.
            let clock = ContinuousClock.now
            let arrived = outcomes.wait(timeout: transferWaitTimeout)
            if !requests.isEmpty { step.exposedSwapSeconds += Self.seconds(since: clock) }
            apply(arrived, to: &step)
        }
        record(&step)
        return events
    }

    /// Starts `plan`'s transfers: their I/O overlaps the compute.
    private func start(_ plan: StepPlan, into step: inout EngineStats) {
        // Deletes first: each was decided before the plan's writes, so it must land before them.
        plan.deletes.forEach(transfers.delete)
        plan.writes.forEach(transfers.start)
        plan.reads.forEach(transfers.start)
        plan.droppedPrefetches.forEach(transfers.drop)
        plan.prefetches.forEach(transfers.start)
        let started = ContinuousClock.now
        for read in plan.reads where read.purpose == .swapIn { swapInsStarted[read.id] = started }
        step.preemptions += plan.preemptions.count
    }

    /// Launches the step after `launched` behind it, before its tokens are back, where the
    /// backend runs ahead of the host, picks the token of every sequence of `launched` that
    /// samples (a draw only where it queues draws like the argmax: a draw made on the host has
    /// waited for the step), and the scheduler can plan it (`Scheduler.planContinuation`).
    private func launchContinuation(of launched: LaunchedStep, into step: inout EngineStats) throws -> LaunchedStep? {
        let queuesDraws = runner.model.backend.queuesDraws
        guard overlapsSteps, launched.pending.pickedTokens != nil,
            launched.plan.chunks.allSatisfy({ chunk in
                guard chunk.samples, let request = requests[chunk.sequence] else { return true }
                return request.mayBeLaunchedBehind(queuesDraws: queuesDraws)
            }),
            let plan = scheduler.planContinuation(of: launched.plan)
        else { return nil }
        start(plan, into: &step)
        step.stepsLaunchedAhead += 1
        return try runner.launch(
            plan, sequences: { scheduler.sequence($0)! }, blockTables: { scheduler.blockTable(of: $0) },
            pick: { requests[$0]?.backendPick() ?? .argmax }, feeding: launched)
    }

    /// Waits for `launched`, samples, reports it to the scheduler and returns its events.
    private func collect(_ launched: LaunchedStep, into step: inout EngineStats) throws -> [(SequenceID, GenerationEvent)] {
        let outputs = try launched.outputs()
        // The device ran this step from its launch, or from the end of the step it was queued behind.
        let now = ContinuousClock.now
        let seconds = (now - max(launched.launched, lastCollected)).inSeconds
        lastCollected = now
        let plan = launched.plan
        // An engine's first steps pay one-time costs (kernels launched for the first time at
        // these shapes, memory touched for the first time) that later steps do not: the
        // step-time model, which decides load against recompute, learns from the steps after.
        computeSteps += 1
        if computeSteps > Self.unobservedFirstSteps {
            scheduler.costModel.steps.observe(tokens: plan.scheduledTokens, pairs: plan.attendedPairs, seconds: seconds)
        }
        var sampled: [SequenceID: Int] = [:]
        var rows: [(id: SequenceID, logits: [Float])] = []
        for (id, output) in outputs {
            // A sequence aborted or finished since the launch has no request left.
            guard requests[id] != nil else { continue }
            switch output {
            case .pickedToken(let token): sampled[id] = token
            case .logits(let row): rows.append((id, row))
            case .none: break
            }
        }
        if !rows.isEmpty {
            // Taken out of the table while they sample, so that no second reference makes their
            // samplers' state copy on write.
            var progress = rows.map { requests.removeValue(forKey: $0.id)! }
            let tokens = BatchSampling.sample(&progress, rows.map(\.logits)) { $0.sample($1) }
            for (i, row) in rows.enumerated() {
                requests[row.id] = progress[i]
                sampled[row.id] = tokens[i]
            }
        }
        scheduler.completeStep(plan, sampled: sampled)
        var events: [(SequenceID, GenerationEvent)] = []
        for chunk in plan.chunks where chunk.samples {
            events += emit(chunk.sequence, into: &step)
        }
        step.steps += 1
        step.computeSeconds += seconds
        return events
    }

    /// Waits for the step launched ahead, if any, and drops its events: before work that needs
    /// the device's KV final (the shutdown's prefix saves).
    private func finishStepInFlight() {
        guard let launched = inFlight else { return }
        inFlight = nil
        var step = EngineStats()
        do { _ = try collect(launched, into: &step) } catch { logger.warning("the step launched ahead failed: \(error)") }
        record(&step)
    }

    /// Saves every cached device block that flash lacks and waits for the writes, so the device's
    /// prefix cache survives a restart (at shutdown, after the requests have stopped). Returns
    /// the blocks saved: none when the write failed (the transfers log why).
    @discardableResult
    public func saveCachedPrefixes() -> Int {
        finishStepInFlight()
        saveStepTimeModel()
        updateFlashBudget()
        guard let write = scheduler.saveAllCachedBlocks() else { return 0 }
        let savedBefore = totals.prefixBlocksSaved
        transfers.start(write)
        finishTransfersInFlight()
        let saved = totals.prefixBlocksSaved - savedBefore
        if saved == write.blocks.count {
            logger.info("saved \(saved) cached prefix blocks to flash for the next start")
        } else {
            logger.warning("saved \(saved) of \(write.blocks.count) cached prefix blocks to flash for the next start")
        }
        return saved
    }

    /// Starts the step-time model from the one the last run on this flash directory saved.
    private func restoreStepTimeModel() {
        guard configuration.prefixCaching, let directory = flashTier?.stateDirectory else { return }
        do {
            guard let saved = try StepTimeRecord(directory: directory).load(for: namespace) else { return }
            scheduler.costModel.steps = saved
            // The per-token rate is infinite when the fit puts the cost in the other terms.
            let rate = saved.tokensPerSecond.isFinite ? "\(Int(saved.tokensPerSecond)) tokens/s" : "no per-token cost"
            logger.info("step-time model of the last run restored (\(saved.observations) steps): \(rate) for the products")
        } catch {
            logger.warning("the saved step-time model in \(directory) is not readable, starting from a guess: \(error)")
        }
    }

    /// Saves the step-time model for the next start, once it has learned from enough steps.
    private func saveStepTimeModel() {
        let model = scheduler.costModel.steps
        guard configuration.prefixCaching, model.observations >= StepTimeRecord.minimumObservations,
            let directory = flashTier?.stateDirectory
        else { return }
        do {
            try StepTimeRecord(directory: directory).save(model, for: namespace)
        } catch {
            logger.warning("could not save the step-time model in \(directory): \(error)")
        }
    }

    /// Waits until every transfer in flight has completed (or failed) and applies the outcomes,
    /// so that nothing still reads or writes the KV pool or the tiers after shutdown.
    public func finishTransfersInFlight() {
        finishStepInFlight()
        while scheduler.hasTransfersInFlight {
            var step = EngineStats()
            apply(outcomes.wait(timeout: 1), to: &step)
            record(&step)
        }
    }

    /// Wakes a step that waits for transfers, from any thread: whoever hands the step thread a
    /// request calls it, so the request is admitted now and not after the transfer (a prefix
    /// save on an otherwise idle server made each request wait for it).
    public var waker: StepWaker { StepWaker(outcomes: outcomes) }

    /// The totals since start, with the queues and KV use of now.
    public func snapshot() -> EngineStats { totals }

    /// What the engine has learned of its steps' times (the cost model's recompute side).
    public var stepTimeModel: StepTimeModel { scheduler.costModel.steps }

    // MARK: Outputs

    private func emit(_ id: SequenceID, into step: inout EngineStats) -> [(SequenceID, GenerationEvent)] {
        guard requests[id] != nil, let sequence = scheduler.sequence(id) else { return [] }
        let token = sequence.tokens.last!
        step.generatedTokens += 1
        // Advanced in place: a copy taken out of the dictionary and written back would copy the
        // request's buffers on every token.
        let (text, reason) = requests[id]!.advance(sequence, maxSequenceTokens: maxSequenceTokens)
        let logprobs = requests[id]!.lastLogprobs.map { [$0] } ?? []
        var events: [(SequenceID, GenerationEvent)] = [(id, .delta(tokenIDs: [token], text: text, logprobs: logprobs))]
        if let reason, let progress = requests.removeValue(forKey: id) {
            events.append((id, .finished(reason, progress.usage)))
            scheduler.finish(id)
            step.finishedRequests += 1
        }
        return events
    }

    // MARK: Bookkeeping

    /// Reports staged writes and finished transfers to the scheduler and counts them in `step`.
    private func apply(_ arrived: [TransferEvent], to step: inout EngineStats) {
        for event in arrived {
            let outcome: TransferOutcome
            switch event {
            case .staged(let id):
                scheduler.writeStaged(id)
                continue
            case .prefetched(let prefetch):
                applyPrefetch(prefetch, to: &step)
                continue
            case .finished(let finished): outcome = finished
            }
            switch outcome.direction {
            case .write: scheduler.writeCompleted(outcome.id, succeeded: outcome.failure == nil)
            case .read: scheduler.readCompleted(outcome.id, intactBlocks: outcome.intactBlocks)
            }
            // A swap-in that copied blocks from a prefetch's host copies says nothing of the tier's speed.
            if outcome.failure == nil, outcome.prefetchedBlocks == 0 {
                if outcome.tier == .flash, outcome.direction == .read, !flashReadDone {
                    // The start-up probe read into host buffers; a real read also moves the blocks
                    // to the device (and on a busy disk competes with writes): its speed replaces
                    // the probe's instead of being averaged with it.
                    scheduler.costModel.readBytesPerSecond[.flash] = nil
                    flashReadDone = true
                    flashReadsMeasured = true
                }
                scheduler.costModel.observe(outcome.direction, tier: outcome.tier, bytes: outcome.bytes, seconds: outcome.seconds)
            }
            if outcome.tier == .flash {
                switch outcome.direction {
                case .write: step.flashBytesWritten += outcome.bytes
                case .read: step.flashBytesRead += outcome.bytes - outcome.prefetchedBlocks * kv.blockStride
                }
            }
            switch (outcome.forPrefixCache, outcome.direction) {
            case (false, _):
                step.swapSeconds += outcome.seconds
                if outcome.failure != nil { step.swapFailures += 1 }
                if outcome.direction == .write, outcome.failure == nil {
                    step.swapOuts += 1
                    step.swapOutBytes += outcome.bytes
                } else if outcome.direction == .read {
                    step.swapIns += 1
                    step.swapInBytes += outcome.bytes
                    step.prefetchedSwapInBytes += outcome.prefetchedBlocks * kv.blockStride
                    if let started = swapInsStarted.removeValue(forKey: outcome.id) {
                        step.swapInWaitSeconds += Self.seconds(since: started)
                    }
                }
            case (true, .write):
                if outcome.failure == nil {
                    step.prefixBlocksSaved += outcome.blocks
                    step.prefixSaveBytes += outcome.bytes
                }
            case (true, .read):
                step.prefixLoads += 1
                step.prefixLoadBytes += outcome.bytes
                step.prefixLoadSeconds += outcome.seconds
                if outcome.failure != nil { step.prefixLoadFailures += 1 }
            }
        }
    }

    /// Reports a swap prefetch's end to the scheduler and counts its flash read (a real read of
    /// the disk, though into host memory: the cost model learns the flash read speed from it).
    private func applyPrefetch(_ prefetch: PrefetchOutcome, to step: inout EngineStats) {
        scheduler.prefetchCompleted(prefetch.id)
        step.swapPrefetchBytes += prefetch.bytes
        if prefetch.tier == .flash { step.flashBytesRead += prefetch.bytes }
        if prefetch.failure == nil, prefetch.bytes > 0 {
            scheduler.costModel.observe(.read, tier: prefetch.tier, bytes: prefetch.bytes, seconds: prefetch.seconds)
        }
    }

    /// Adds the scheduler's events and the state of now to `step` (a step, or a change between
    /// steps: a request added or aborted), carries out the tier deletes decided meanwhile, and
    /// records it in the totals and the metrics.
    private func record(_ step: inout EngineStats) {
        let events = scheduler.takeEvents()
        step.deviceHitTokens += events.deviceHitTokens
        step.flashHitTokens += events.flashHitTokens
        step.declinedLoads += events.declinedLoads
        step.declinedLoadTokens += events.declinedLoadTokens
        step.recomputedTokens += events.recomputedTokens
        step.flashPrefixEvictions += events.flashPrefixEvictions
        scheduler.takeDeletes().forEach(transfers.delete)
        scheduler.takeDroppedPrefetches().forEach(transfers.drop)
        let pool = scheduler.kv.pool
        step.deviceEvictions = pool.evictions - lastEvictions
        lastEvictions = pool.evictions
        step.kvUtilization = pool.utilization
        step.cachedBlocks = pool.cachedCount
        step.flashPrefixBlocks = scheduler.tiers.prefixBlocks
        step.flashDailyWriteBudget = flashBudget.dailyBytes.map { Int($0) }
        step.flashBytesLeftToday = scheduler.costModel.flashBytesLeftToday.map { Int($0) }
        step.waiting = scheduler.waitingCount
        step.running = scheduler.runningCount
        step.swapped = scheduler.swappedCount
        totals.accumulate(step)
        metrics.record(step)
        if totals.swapSeconds > 0 {
            scheduler.costModel.exposedSwapFraction = min(totals.exposedSwapSeconds / totals.swapSeconds, 1)
        }
    }

    private var lastEvictions = 0
    /// When each swap-in in flight started, for the time from a resume decision to running.
    private var swapInsStarted: [TransferID: ContinuousClock.Instant] = [:]
    /// Steps that computed something, and how many of the first ones teach the step-time model nothing.
    private var computeSteps = 0
    static let unobservedFirstSteps = 2
    /// Staging buffers made ready at start where there is a flash tier.
    static let preparedStagingBytes = 1 << 30

    /// Seconds between looks at other instances' regions while steps run, and at least between
    /// two looks on new requests.
    static let sharedRefreshInterval = 2.0
    static let sharedRefreshOnRequest = 0.25

    /// Tells the cost model how many bytes flash may still take today, from the flash tier's own
    /// wear ledger (the one daily counter) and the day's budget (configured, or set by the target
    /// lifetime, whichever is smaller).
    private func updateFlashBudget() {
        guard let written = flashTier?.bytesWrittenToday else { return }
        scheduler.costModel.flashBytesLeftToday = flashBudget.bytesLeft(afterWriting: written)
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        (ContinuousClock.now - start).inSeconds
    }
}

/// Wakes an `EngineCore` step that waits for transfers (`EngineCore.waker`).
public struct StepWaker: Sendable {
    fileprivate let outcomes: Inbox<TransferEvent>

    /// Makes the step waiting now, or the next to wait, return at once.
    public func wake() { outcomes.interrupt() }
}
