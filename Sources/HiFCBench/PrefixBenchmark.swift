import Backend
import Engine
import FlashStore
import Foundation
import HiFCCore
import Models
import Synchronization

/// `hifc bench prefix`'s runs: each workload through a fresh engine per setup (cache off, device
/// cache only, device and flash, and after a restart), and the sweep that times loading a known
/// prefix from flash against computing it, size by size.
public struct PrefixBenchmark: Sendable {
    /// How the engine's prefix cache is set up for a run.
    public enum Setup: String, CaseIterable, Codable, Sendable {
        /// No prefix cache: every prompt is computed.
        case cold
        /// The device's prefix cache only (no flash tier).
        case device
        /// The device's cache and flash behind it, starting empty.
        case flash
        /// Device and flash, measured on a second engine after the first ran the same workload
        /// and shut down (its flash region reopened, the device empty).
        case restart
    }

    /// The figures of one workload in one setup.
    public struct Figures: Codable, Sendable {
        public var workload: String
        public var setup: Setup
        /// When prefix blocks were saved to flash (`--prefix-cache-write`).
        public var write_policy: String
        public var requests: Int
        public var prompt_tokens: Int
        public var output_tokens: Int
        public var seconds: Double
        public var output_tokens_per_s: Double
        public var ttft_mean_s: Double
        public var ttft_p50_s: Double
        public var ttft_p99_s: Double
        /// Prompt tokens the responses reported as cached (`usage.cached_tokens`) over all prompt tokens.
        public var cached_token_rate: Double
        /// Tokens taken from the device cache and loaded from flash, as the engine counts them: a
        /// preempted request admitted again counts again, so these can exceed the prompt tokens.
        public var device_hit_tokens: Int
        public var flash_hit_tokens: Int
        public var loaded_bytes: Int
        public var load_seconds: Double
        public var load_failures: Int
        public var declined_loads: Int
        public var flash_bytes_written: Int
    }

    /// One prefix size of the sweep: its first token's latency when the prefix is recomputed,
    /// loaded from flash, and left to the cost model.
    public struct SweepRow: Codable, Sendable {
        public var prefix_tokens: Int
        public var kv_bytes: Int
        public var ttft_recompute_s: Double
        public var ttft_load_s: Double
        public var ttft_auto_s: Double
        /// Whether the cost model loaded the prefix in every round.
        public var auto_loaded: Bool
        /// The cost model's latency over the faster of the other two (1 is the best possible).
        public var auto_over_best: Double
        /// The load's bytes over its I/O time.
        public var load_gbps: Double
    }

    /// The model the workloads run on.
    let loaded: LoadedModel
    /// Budget, block size, step and running limits; prefix settings are set per setup.
    let configuration: EngineConfiguration
    /// Scratch regions are made (and removed) under this directory.
    let flashRoot: String
    let flashCapacity: ByteSize
    let shape: PrefixWorkloadShape
    let source: TokenSource
    /// A backend's direct device<->flash path (cuFile), when the model runs on a GPU.
    let deviceSwapper: @Sendable (any KVCachePool, FlashStore) -> (any DeviceKVSwapper)?
    /// Where progress lines go.
    let progress: @Sendable (String) -> Void
    /// Records every engine's flash transfers (prefix saves and loads), when given (`--trace`).
    public var trace: TransferTraceRecorder?

    /// A benchmark of `loaded`; scratch flash regions of `flashCapacity` go under `flashRoot`.
    public init(
        loaded: LoadedModel, configuration: EngineConfiguration, flashRoot: String, flashCapacity: ByteSize, shape: PrefixWorkloadShape,
        source: TokenSource, deviceSwapper: @escaping @Sendable (any KVCachePool, FlashStore) -> (any DeviceKVSwapper)?,
        progress: @escaping @Sendable (String) -> Void
    ) {
        self.loaded = loaded
        self.configuration = configuration
        self.flashRoot = flashRoot
        self.flashCapacity = flashCapacity
        self.shape = shape
        self.source = source
        self.deviceSwapper = deviceSwapper
        self.progress = progress
    }

    // MARK: Workloads

    /// Runs `workload` (chat or docqa) in `setup` and measures it.
    public func run(_ workload: PrefixWorkload, _ setup: Setup, writePolicy: PrefixWritePolicy? = nil) async throws -> Figures {
        let policy = writePolicy ?? configuration.prefixCacheWrite
        let directory = try scratchDirectory("\(workload)-\(setup)")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        if setup == .restart {
            progress("\(workload) \(setup): first engine")
            let store = try openStore(directory)
            let first = try makeEngine(prefixCaching: true, store: store, policy: policy)
            _ = try await drive(workload, through: first)
            first.shutdown()
            store.close()
        }
        let store = setup == .flash || setup == .restart ? try openStore(directory) : nil
        defer { store?.close() }
        let engine = try makeEngine(prefixCaching: setup != .cold, store: store, policy: policy)
        defer { engine.shutdown() }
        progress("\(workload) \(setup), prefix saves \(policy)")
        let started = ContinuousClock.now
        let timings = try await drive(workload, through: engine)
        let seconds = Self.seconds(since: started)
        let stats = engine.stats()
        let ttfts = timings.map(\.ttft).sorted()
        let prompt = max(stats.promptTokens, 1)
        return Figures(
            workload: workload.rawValue, setup: setup, write_policy: policy.rawValue, requests: timings.count, prompt_tokens: stats.promptTokens,
            output_tokens: stats.generatedTokens, seconds: seconds, output_tokens_per_s: Double(stats.generatedTokens) / seconds,
            ttft_mean_s: ttfts.reduce(0, +) / Double(max(ttfts.count, 1)), ttft_p50_s: Self.percentile(ttfts, 0.5),
            ttft_p99_s: Self.percentile(ttfts, 0.99), cached_token_rate: Double(timings.reduce(0) { $0 + $1.cachedTokens }) / Double(prompt),
            device_hit_tokens: stats.deviceHitTokens, flash_hit_tokens: stats.flashHitTokens, loaded_bytes: stats.prefixLoadBytes,
            load_seconds: stats.prefixLoadSeconds, load_failures: stats.prefixLoadFailures, declined_loads: stats.declinedLoads,
            flash_bytes_written: stats.flashBytesWritten)
    }

    /// One request's timing.
    struct Timing: Sendable {
        var ttft: Double
        var tokens: [Int]
        /// The prompt tokens the response reported as cached.
        var cachedTokens = 0
    }

    /// Sends `workload`'s requests through `engine` and returns each one's timing.
    private func drive(_ workload: PrefixWorkload, through engine: LLMEngine) async throws -> [Timing] {
        switch workload {
        case .chat:
            // Conversations run side by side; within one, each turn waits for the last answer.
            return try await withThrowingTaskGroup(of: [Timing].self) { group in
                for conversation in 0..<shape.conversations {
                    group.addTask { [self] in
                        var prompt: [Int] = []
                        var timings: [Timing] = []
                        for turn in 0..<shape.turns {
                            prompt += shape.message(source, conversation: conversation, turn: turn)
                            let timing = try await request(prompt, maxTokens: shape.answerTokens, through: engine)
                            timings.append(timing)
                            prompt += timing.tokens
                        }
                        return timings
                    }
                }
                var all: [Timing] = []
                for try await timings in group { all += timings }
                return all
            }
        case .docqa:
            let requests = shape.documentQuestions(source)
            let next = NextIndex()
            return try await withThrowingTaskGroup(of: [Timing].self) { group in
                for _ in 0..<shape.concurrency {
                    group.addTask { [self] in
                        var timings: [Timing] = []
                        while true {
                            let index = next.take()
                            guard index < requests.count else { return timings }
                            timings.append(try await request(requests[index].prompt, maxTokens: shape.answerTokens, through: engine))
                        }
                    }
                }
                var all: [Timing] = []
                for try await timings in group { all += timings }
                return all
            }
        case .sweep:
            preconditionFailure("the sweep has its own runner")
        }
    }

    /// Sends one greedy request and waits for its end.
    private func request(_ prompt: [Int], maxTokens: Int, through engine: LLMEngine) async throws -> Timing {
        var sampling = SamplingParams.greedy(maxTokens: maxTokens)
        sampling.ignoreEOS = true
        let started = ContinuousClock.now
        var ttft: Double?
        var tokens: [Int] = []
        var cached = 0
        for try await event in engine.generate(GenerationRequest(id: "prefix-bench", promptTokens: prompt, sampling: sampling)) {
            switch event {
            case .delta(let ids, _, _):
                if ttft == nil { ttft = Self.seconds(since: started) }
                tokens += ids
            case .finished(_, let usage): cached = usage.cachedTokens
            }
        }
        return Timing(ttft: ttft ?? Self.seconds(since: started), tokens: tokens, cachedTokens: cached)
    }

    // MARK: The sweep

    /// For each prefix size: writes the prefix to flash with one engine, then times a request
    /// that reuses it on fresh engines that recompute it, load it, and leave it to the cost model.
    public func sweep() async throws -> [SweepRow] {
        let directory = try scratchDirectory("sweep")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let requests = shape.sweepSizes.map { shape.sweepRequest(source, size: $0) }
        do {
            progress("sweep: writing the prefixes to flash")
            let store = try openStore(directory)
            let writer = try makeEngine(prefixCaching: true, store: store, policy: .writeThrough)
            for request in requests { _ = try await self.request(request.prefix + request.question, maxTokens: 1, through: writer) }
            writer.shutdown()
            store.close()
        }
        // Two rounds, the decisions in opposite orders, so that whatever the first engine of a
        // run pays (kernels loaded for new shapes, clocks rising) does not favour one decision;
        // each figure is the mean of the rounds.
        let sizes = shape.sweepSizes.count
        var ttft: [PrefixLoadDecision: [Double]] = [.never: [], .always: [], .costModel: []].mapValues { _ in Array(repeating: 0, count: sizes) }
        var loaded = Array(repeating: true, count: sizes)
        var bandwidth = Array(repeating: 0.0, count: sizes)
        let rounds = 2
        // First an engine whose figures are dropped: the process's one-time costs (kernels loaded
        // for new shapes, first touches of the weights) fall on it, not on the first measured one.
        var passes: [(decision: PrefixLoadDecision, round: Int?)] = [(.always, nil)]
        for round in 0..<rounds {
            let order: [PrefixLoadDecision] = round % 2 == 0 ? [.never, .always, .costModel] : [.costModel, .always, .never]
            passes += order.map { ($0, round) }
        }
        for (decision, round) in passes {
            let store = try openStore(directory)
            let engine = try makeEngine(prefixCaching: true, store: store, decision: decision)
            // A long unrelated prompt first: the step time model learns what computing a long
            // context costs, as a server would from its earlier traffic.
            let warmUp = source.tokens(shape.sweepSizes.max()!, seed: 99)
            _ = try await request(warmUp, maxTokens: 1, through: engine)
            for (n, request) in requests.enumerated() {
                if let round { progress("sweep \(shape.sweepSizes[n]) tokens, \(decision), round \(round + 1) of \(rounds)") }
                let before = engine.stats()
                let timing = try await self.request(request.prefix + request.question, maxTokens: 1, through: engine)
                let after = engine.stats()
                guard round != nil else { continue }
                ttft[decision]![n] += timing.ttft / Double(rounds)
                if decision == .costModel { loaded[n] = loaded[n] && after.flashHitTokens > before.flashHitTokens }
                if decision == .always {
                    let seconds = after.prefixLoadSeconds - before.prefixLoadSeconds
                    let rate = seconds > 0 ? Double(after.prefixLoadBytes - before.prefixLoadBytes) / seconds / 1e9 : 0
                    bandwidth[n] += rate / Double(rounds)
                }
            }
            // The warm-up's and the sweep's blocks need not be saved again at shutdown.
            _ = await engine.resetPrefixCache(flash: false)
            engine.shutdown()
            store.close()
        }
        let blockBytes = self.loaded.model.kvLayout(blockTokens: configuration.blockTokens).blockBytes
        return shape.sweepSizes.indices.map { n in
            let recompute = ttft[.never]![n]
            let load = ttft[.always]![n]
            let auto = ttft[.costModel]![n]
            return SweepRow(
                prefix_tokens: shape.sweepSizes[n], kv_bytes: shape.sweepSizes[n] / configuration.blockTokens * blockBytes,
                ttft_recompute_s: recompute, ttft_load_s: load, ttft_auto_s: auto, auto_loaded: loaded[n],
                auto_over_best: auto / min(recompute, load), load_gbps: bandwidth[n])
        }
    }

    // MARK: Engines and regions

    private func makeEngine(
        prefixCaching: Bool, store: FlashStore?, decision: PrefixLoadDecision = .costModel, policy: PrefixWritePolicy? = nil
    ) throws -> LLMEngine {
        var configuration = self.configuration
        configuration.preemption = .recompute
        configuration.prefixCaching = prefixCaching
        configuration.prefixLoadDecision = decision
        if let policy { configuration.prefixCacheWrite = policy }
        let swapper = deviceSwapper
        let trace = self.trace
        let tier: (any KVTierStore)? = store.map { store -> any KVTierStore in
            guard let trace else { return FlashTier(store: store) }
            return TracedTierStore(FlashTier(store: store), recorder: trace)
        }
        return try LLMEngine(
            loaded: loaded, configuration: configuration, flashTier: tier,
            deviceSwapper: { pool in
                let direct = store.flatMap { swapper(pool, $0) }
                guard let direct, let trace else { return direct }
                return TracedDeviceSwapper(direct, recorder: trace, blockBytes: pool.blockStride)
            })
    }

    private func openStore(_ directory: String) throws -> FlashStore {
        try FlashStore(configuration: FlashStoreConfiguration(paths: [directory], capacityPerPath: flashCapacity))
    }

    private func scratchDirectory(_ name: String) throws -> String {
        let directory = (flashRoot as NSString).appendingPathComponent("hifc-bench-prefix-\(getpid())-\(name)")
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    // MARK: The disk

    /// The disk's own sequential read bandwidth under the flash directory, in GB/s: `dd` with
    /// O_DIRECT over a file of `bytes` written first (8 MiB requests; `DiskBandwidth`).
    public func ddReadGBps(bytes: Int64) throws -> Double {
        let directory = try scratchDirectory("dd")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try DiskBandwidth.measure(in: directory, bytes: bytes).readGBps
    }

    // MARK: Arithmetic

    static func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, max(0, Int((Double(sorted.count) * fraction).rounded(.up)) - 1))]
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        (ContinuousClock.now - start).inSeconds
    }
}

/// Hands out 0, 1, 2, ... to the tasks that share it.
private final class NextIndex: Sendable {
    private let value = Mutex(0)

    func take() -> Int {
        value.withLock { value in
            defer { value += 1 }
            return value
        }
    }
}
