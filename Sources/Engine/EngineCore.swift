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

    public var description: String {
        switch self {
        case .kvBudgetTooSmall(let budget, let blockBytes):
            return "the KV budget \(budget) holds no KV block of \(blockBytes) bytes; raise --kv-budget"
        case .noFlashTier(let mode):
            return "--preemption \(mode) needs a flash store; give --flash-path"
        }
    }
}

/// The engine's step, run synchronously on one thread: the scheduler, the model runner, the
/// swapper and the sampler, with requests' outputs returned as events. `LLMEngine` runs it in a
/// loop on its own thread; tests and the bench may drive it directly.
///
/// One step: take the finished swaps; ask the scheduler for a `StepPlan`; start its swap-outs and
/// swap-ins on the swapper's I/O threads; run the forward pass over the resident sequences while
/// that I/O proceeds; sample; return the new tokens, text and finishes. When nothing can compute
/// until a swap completes, the step waits for it, and that wait is the swap time left exposed.
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
    /// Counters since start.
    public private(set) var stats = EngineStats()

    private var scheduler: Scheduler
    private let runner: ModelRunner
    private let swapper: Swapper
    private let completions = SwapCompletionInbox()
    private var requests: [SequenceID: RequestProgress] = [:]
    private var swapsInFlight: [SequenceID: StepPlan.Swap] = [:]
    private let metrics: EngineMetrics
    private let logger = Logger(label: "hifc.engine")
    private let started = ContinuousClock.now

    /// An engine for `loaded` whose KV pool is sized by `configuration.kvBudget`. `flashTier` is
    /// the flash cache (`FlashTier` over a `FlashStore`), needed by `swap-flash` and `auto`.
    /// `deviceSwapper`, given the KV pool, may return a backend's direct device<->flash swapper
    /// (GPUDirect Storage) for the flash tier's store.
    public init(
        loaded: LoadedModel, configuration: EngineConfiguration, flashTier: (any KVTierStore)? = nil,
        deviceSwapper: ((any KVCachePool) throws -> (any DeviceKVSwapper)?)? = nil
    ) throws {
        self.configuration = configuration
        self.loaded = loaded
        metrics = EngineMetrics(replica: configuration.replica)
        let model = loaded.model
        let layout = model.kvLayout(blockTokens: configuration.blockTokens)
        let stride = (layout.blockBytes + 4095) / 4096 * 4096
        let blocks = configuration.kvBudget.blockCount(blockBytes: stride)
        guard blocks > 0 else { throw EngineError.kvBudgetTooSmall(budget: "\(configuration.kvBudget)", blockBytes: stride) }
        kv = try model.makeKVCachePool(blockTokens: configuration.blockTokens, blocks: blocks)

        var tiers: [any KVTierStore] = []
        switch configuration.preemption {
        case .recompute: break
        case .swapDRAM:
            let capacity = Int(configuration.hostSwapCapacity.bytes) / kv.blockStride
            tiers.append(HostMemoryTier(blockBytes: kv.blockStride, capacityBlocks: capacity))
        case .swapFlash, .auto:
            guard let flashTier else { throw EngineError.noFlashTier(configuration.preemption) }
            tiers.append(flashTier)
        }
        let inbox = completions
        let direct = try tiers.contains { $0.tier == .flash } ? deviceSwapper?(kv) : nil
        swapper = Swapper(pool: kv, tiers: tiers, deviceSwapper: direct) { inbox.post($0) }
        runner = ModelRunner(model: model, kv: kv)

        let schedulerConfig = SchedulerConfig(
            blockTokens: configuration.blockTokens, deviceBlocks: blocks, blockBytes: layout.blockBytes,
            maxStepTokens: configuration.maxStepTokens, maxRunning: configuration.maxRunning,
            preemption: configuration.preemption, prefetchDepth: configuration.prefetchDepth)
        var costModel = PreemptionCostModel()
        costModel.flashWriteBudgetBytesPerDay = configuration.flashDailyWriteBudget.map { Double($0.bytes) }
        scheduler = Scheduler(config: schedulerConfig, costModel: costModel)
        maxSequenceTokens = min(loaded.config.maxPositions, schedulerConfig.maxSequenceTokens)
    }

    /// Whether no request is left (and no swap I/O is in flight).
    public var isIdle: Bool { scheduler.isIdle && swapsInFlight.isEmpty }

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
        let total = request.promptTokens.count + sampling.maxTokens
        guard total <= maxSequenceTokens else {
            throw .contextTooLong(promptTokens: request.promptTokens.count, maxTokens: sampling.maxTokens, limit: maxSequenceTokens)
        }
        do {
            try scheduler.add(id: id, prompt: request.promptTokens, maxTotalTokens: total)
        } catch {
            throw .contextTooLong(promptTokens: request.promptTokens.count, maxTokens: sampling.maxTokens, limit: maxSequenceTokens)
        }
        requests[id] = RequestProgress(request: request, tokenizer: loaded.tokenizer, eos: loaded.eosTokenIDs)
        stats.promptTokens += request.promptTokens.count
        metrics.promptTokens.increment(by: request.promptTokens.count)
    }

    /// Aborts a request: its blocks are freed (at once, or when its swap I/O completes). Returns
    /// its last event, or nil when it was not running.
    @discardableResult
    public func abort(id: SequenceID) -> GenerationEvent? {
        guard let progress = requests.removeValue(forKey: id) else { return nil }
        release(scheduler.finish(id), of: id)
        stats.finishedRequests += 1
        return .finished(.abort, progress.usage)
    }

    // MARK: The step

    /// Runs one step and returns the requests' new events in order.
    public func step() throws -> [(SequenceID, GenerationEvent)] {
        apply(completions.drain())
        let plan = scheduler.schedule()
        for swap in plan.swapOuts {
            swapsInFlight[swap.sequence] = swap
            swapper.swapOut(swap)
        }
        for swap in plan.swapIns {
            swapsInFlight[swap.sequence] = swap
            swapper.swapIn(swap)
        }
        stats.preemptions += plan.swapOuts.count + plan.recomputes.count
        metrics.preemptions.increment(by: plan.swapOuts.count + plan.recomputes.count)
        let recomputed = plan.recomputes.reduce(0) { $0 + $1.tokens }
        stats.recomputedTokens += recomputed
        metrics.recomputedTokens.increment(by: recomputed)

        var events: [(SequenceID, GenerationEvent)] = []
        if plan.hasCompute {
            let clock = ContinuousClock.now
            let outputs = try runner.run(plan, sequences: { scheduler.sequence($0)! }, greedy: { requests[$0]!.isGreedy })
            let seconds = Self.seconds(since: clock)
            stats.computeSeconds += seconds
            if !plan.prefills.isEmpty, seconds > 0 {
                let speed = Double(plan.scheduledTokens) / seconds
                scheduler.costModel.prefillTokensPerSecond = 0.8 * scheduler.costModel.prefillTokensPerSecond + 0.2 * speed
            }
            var sampled: [SequenceID: Int] = [:]
            for (id, output) in outputs {
                switch output {
                case .greedyToken(let token): sampled[id] = token
                case .logits(let row): sampled[id] = requests[id]!.sample(row)
                case .none: break
                }
            }
            scheduler.completeStep(plan, sampled: sampled)
            for chunk in plan.chunks where chunk.samples {
                events += emit(chunk.sequence)
            }
            stats.steps += 1
            metrics.stepSeconds.recordSeconds(seconds)
        } else if !swapsInFlight.isEmpty {
            // Nothing can compute until a swap completes: this wait is exposed swap time.
            let clock = ContinuousClock.now
            let arrived = completions.wait(timeout: 1)
            let waited = Self.seconds(since: clock)
            stats.exposedSwapSeconds += waited
            metrics.exposedSwapSeconds.increment(by: waited)
            apply(arrived)
        }
        publishQueues()
        return events
    }

    /// Waits until every swap in flight has completed (or failed) and applies the outcomes, so
    /// that nothing still reads or writes the KV pool or the flash store after shutdown.
    public func finishSwapsInFlight() {
        while !swapsInFlight.isEmpty {
            apply(completions.wait(timeout: 1))
        }
    }

    /// A snapshot of the counters, with the queues and KV use of now.
    public func snapshot() -> EngineStats {
        var now = stats
        now.kvUtilization = scheduler.pool.utilization
        now.waiting = scheduler.waitingCount
        now.running = scheduler.runningCount
        now.swapped = scheduler.swappedCount
        return now
    }

    // MARK: Outputs

    private func emit(_ id: SequenceID) -> [(SequenceID, GenerationEvent)] {
        guard var progress = requests[id], let sequence = scheduler.sequence(id) else { return [] }
        let token = sequence.tokens.last!
        stats.generatedTokens += 1
        metrics.generatedTokens.increment()
        let (text, reason) = progress.advance(sequence, maxSequenceTokens: maxSequenceTokens)
        var events: [(SequenceID, GenerationEvent)] = [(id, .delta(tokenIDs: [token], text: text))]
        if let reason {
            events.append((id, .finished(reason, progress.usage)))
            requests[id] = nil
            release(scheduler.finish(id), of: id)
            stats.finishedRequests += 1
        } else {
            requests[id] = progress
        }
        return events
    }

    // MARK: Swap bookkeeping

    private func apply(_ arrived: [SwapCompletion]) {
        for completion in arrived {
            let swap = swapsInFlight.removeValue(forKey: completion.sequence)
            metrics.record(completion)
            stats.swapSeconds += completion.seconds
            let outcome: Scheduler.IOOutcome = completion.failure == nil ? .completed : .failed
            if completion.failure != nil {
                stats.swapFailures += 1
                if let swap, scheduler.sequence(completion.sequence) != nil {
                    stats.recomputedTokens += swap.tokens
                    metrics.recomputedTokens.increment(by: swap.tokens)
                }
            } else {
                learnBandwidth(completion)
            }
            switch completion.direction {
            case .out:
                if outcome == .completed {
                    stats.swapOuts += 1
                    stats.swapOutBytes += completion.bytes
                    if completion.tier == .flash {
                        stats.flashBytesWritten += completion.bytes
                        scheduler.costModel.flashBytesWrittenToday = flashBytesToday(adding: completion.bytes)
                    }
                }
                release(scheduler.swapOutCompleted(completion.sequence, outcome), of: completion.sequence)
            case .in:
                if outcome == .completed {
                    stats.swapIns += 1
                    stats.swapInBytes += completion.bytes
                }
                release(scheduler.swapInCompleted(completion.sequence, outcome), of: completion.sequence)
            }
        }
        if stats.swapSeconds > 0 {
            scheduler.costModel.exposedSwapFraction = min(stats.exposedSwapSeconds / stats.swapSeconds, 1)
        }
    }

    private func release(_ removal: Scheduler.Removal, of id: SequenceID) {
        if case .freeTier(let tier, let blocks) = removal {
            swapper.free(sequence: id, blocks: blocks, in: tier)
        }
    }

    private func learnBandwidth(_ completion: SwapCompletion) {
        guard completion.seconds > 0, completion.bytes > 0 else { return }
        let speed = Double(completion.bytes) / completion.seconds
        func blend(_ old: Double?) -> Double { old.map { 0.8 * $0 + 0.2 * speed } ?? speed }
        switch completion.direction {
        case .out: scheduler.costModel.writeBytesPerSecond[completion.tier] = blend(scheduler.costModel.writeBytesPerSecond[completion.tier])
        case .in: scheduler.costModel.readBytesPerSecond[completion.tier] = blend(scheduler.costModel.readBytesPerSecond[completion.tier])
        }
    }

    private var flashDay = 0
    private var flashBytesDay = 0.0

    /// Flash bytes written in the engine's current day (days counted from its start).
    private func flashBytesToday(adding bytes: Int) -> Double {
        let day = Int(Self.seconds(since: started) / 86_400)
        if day != flashDay {
            flashDay = day
            flashBytesDay = 0
        }
        flashBytesDay += Double(bytes)
        return flashBytesDay
    }

    private func publishQueues() {
        metrics.recordQueues(snapshot())
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = (ContinuousClock.now - start).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
    }
}
