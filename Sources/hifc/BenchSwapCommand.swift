import ArgumentParser
import Backend
import CUDA
import Engine
import FlashStore
import Foundation
import HiFCCore
import Models
import Server

/// `hifc bench swap`: the paper's experiment. The same requests run under each preemption mode
/// with a KV budget that starves the device, and the modes are compared side by side.
struct BenchSwapCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swap",
        abstract: "Compare preemption modes (recompute, swap-dram, swap-flash, auto) under a starved KV budget.",
        discussion: """
            Generates --requests requests whose prompt lengths follow --workload (qasper about 3.6K \
            tokens, govreport 8.7K, narrativeqa 18.4K, each with 1K output tokens, or IN:OUT), \
            multiplied by --scale, and runs them all at once through a fresh engine per mode. \
            Reports output tokens/s, mean and p99 latency, mean time to first token, preemptions, \
            swap bytes, swap time left exposed, flash bytes written and the SSD lifetime at that \
            write rate. --model takes a model directory, or synth:tiny / synth:small to write a \
            synthetic model first.
            """
    )

    @Option(help: "A model directory, or synth:tiny|small for a synthetic one.")
    var model: String

    @Option(help: "qasper, govreport, narrativeqa, or IN:OUT token counts.")
    var workload: String = "govreport"

    @Option(help: "Requests, all submitted at the start.")
    var requests: Int = 16

    @Option(name: .customLong("kv-budget"), help: "Device KV memory: a size (4GiB) or a block count.")
    var kvBudget: String = "4GiB"

    @Option(help: "Preemption modes to compare, comma-separated.")
    var mode: String = "recompute,swap-dram,swap-flash,auto"

    @Option(
        name: .customLong("flash-path"),
        help: "Directories for the flash tier, comma-separated, one per SSD (a scratch region in each, removed after).")
    var flashPath: String = NSTemporaryDirectory()

    @Option(name: .customLong("flash-placement"), help: "How blocks are spread over several flash paths: affinity, stripe or swarm.")
    var flashPlacement: String = "stripe"

    @Option(
        name: .customLong("data-parallel"),
        help: "Engine replicas behind the router, each on its own GPU from --device on (or sharing the CPU); --requests are split among them.")
    var dataParallel: Int = 1

    @Option(name: .customLong("flash-capacity"), help: "Size of the scratch flash region.")
    var flashCapacity: String = "8GiB"

    @Option(name: .customLong("flash-tbw"), help: "Endurance of the flash region, for the lifetime estimate.")
    var flashTBW: String = "6000TB"

    @Option(name: .customLong("dram-swap"), help: "Host memory of the DRAM swap tier.")
    var dramSwap: String = "16GiB"

    @Option(name: .customLong("block-size"), help: "Tokens per KV block.")
    var blockTokens: Int = 64

    @Option(name: .customLong("max-batch-tokens"), help: "Tokens computed per step (chunked prefill budget).")
    var maxStepTokens: Int = 512

    @Option(name: .customLong("prefetch-depth"), help: "Swapped sequences read back at once.")
    var prefetchDepth: Int = 2

    @Option(help: "Multiplies prompt and output lengths (to fit small machines).")
    var scale: Double = 1

    @Option(help: "Rounds over the modes (alternating their order); figures are the mean.")
    var repeats: Int = 1

    @Flag(help: "Print a JSON list, one object per mode.")
    var json = false

    @Option(help: "Also write the figures to this CSV file.")
    var csv: String?

    @Option(help: "cpu (the default here), auto, cuda or cuda:N. On a GPU, swap-flash moves blocks with cuFile.")
    var device: String = "cpu"

    @Option(help: "Record the flash transfers of the first swap-flash run to this JSONL file (for bench placement).")
    var trace: String?

    /// The figures of one mode.
    struct Result: Codable {
        var mode: String
        var requests: Int
        var output_tokens: Int
        var seconds: Double
        var output_tokens_per_s: Double
        /// The highest of the rounds' output tokens/s: the run least disturbed by other load.
        var best_output_tokens_per_s: Double
        var mean_latency_s: Double
        var p99_latency_s: Double
        var mean_ttft_s: Double
        var preemptions: Int
        var recomputed_tokens: Int
        var swap_bytes: Int
        var swap_failures: Int
        var swap_seconds: Double
        var exposed_swap_s: Double
        var flash_bytes_written: Int
        var ssd_lifetime_years: Double?

        /// The mean of several runs of one mode (counts rounded).
        static func mean(of runs: [Result]) -> Result {
            func average(_ value: (Result) -> Double) -> Double { runs.reduce(0) { $0 + value($1) } / Double(runs.count) }
            func averageCount(_ value: (Result) -> Int) -> Int { Int(average { Double(value($0)) }.rounded()) }
            let lifetimes = runs.compactMap(\.ssd_lifetime_years)
            return Result(
                mode: runs[0].mode, requests: runs[0].requests, output_tokens: averageCount(\.output_tokens),
                seconds: average(\.seconds), output_tokens_per_s: average(\.output_tokens_per_s),
                best_output_tokens_per_s: runs.map(\.output_tokens_per_s).max()!,
                mean_latency_s: average(\.mean_latency_s), p99_latency_s: average(\.p99_latency_s),
                mean_ttft_s: average(\.mean_ttft_s), preemptions: averageCount(\.preemptions),
                recomputed_tokens: averageCount(\.recomputed_tokens), swap_bytes: averageCount(\.swap_bytes),
                swap_failures: averageCount(\.swap_failures), swap_seconds: average(\.swap_seconds),
                exposed_swap_s: average(\.exposed_swap_s), flash_bytes_written: averageCount(\.flash_bytes_written),
                ssd_lifetime_years: lifetimes.isEmpty ? nil : lifetimes.reduce(0, +) / Double(lifetimes.count))
        }
    }

    func run() async throws {
        MallocTuning.keepFreedBlocksMapped()
        let modes: [PreemptionMode] = try mode.split(separator: ",").map {
            guard let mode = PreemptionMode(rawValue: $0.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("unknown mode '\($0)'; use recompute, swap-dram, swap-flash or auto")
            }
            return mode
        }
        let budget: KVBudget
        let tbw: ByteSize
        let dram: ByteSize
        let capacity: ByteSize
        let shape: BenchWorkload
        let placement: FlashPlacementPolicy
        do {
            guard let policy = FlashPlacementPolicy(rawValue: flashPlacement) else {
                throw ValidationError("unknown --flash-placement '\(flashPlacement)'; use affinity, stripe or swarm")
            }
            placement = policy
            budget = try KVBudget(parsing: kvBudget)
            tbw = try ByteSize(parsing: flashTBW)
            dram = try ByteSize(parsing: dramSwap)
            capacity = try ByteSize(parsing: flashCapacity)
            shape = try BenchWorkload(parsing: workload)
        } catch {
            throw ValidationError("\(error)")
        }
        guard requests > 0, scale > 0, repeats > 0, dataParallel > 0 else {
            throw ValidationError("--requests, --scale, --repeats and --data-parallel must be positive")
        }

        let models = try loadModels()
        let loaded = models[0]
        let work = shape.requests(count: requests, scale: scale, vocabulary: min(loaded.tokenizer.vocabularySize, loaded.config.vocabSize))
        let layout = loaded.model.kvLayout(blockTokens: blockTokens)
        let meanTokens = work.reduce(0) { $0 + $1.prompt.count + $1.maxTokens } / work.count
        let stride = (layout.blockBytes + 4095) / 4096 * 4096
        let blocks = budget.blockCount(blockBytes: stride)
        let heading =
            "bench swap: \(loaded.name), workload \(shape) x\(scale) (\(requests) requests, mean \(meanTokens) tokens each), "
            + "KV budget \(budget) = \(blocks) blocks of \(blockTokens) tokens, about \(blocks * blockTokens / max(meanTokens, 1)) requests"
            + (dataParallel > 1 ? ", per replica; \(dataParallel) replicas" : "")
            + ", flash \(FlashStoreConfiguration.parsePaths(flashPath).count) path(s), \(placement.rawValue) placement"
        if !json { FileHandle.standardError.write(Data((heading + "\n").utf8)) }

        // Rounds alternate the order of the modes (forward, backward, ...) so that a drift in the
        // machine's load does not favour the modes that run first; each mode's figures are the
        // mean over the rounds.
        var runs: [PreemptionMode: [Result]] = [:]
        var recorder = try trace.map { try TransferTraceRecorder(path: $0) }
        for round in 0..<repeats {
            for mode in round % 2 == 0 ? modes : modes.reversed() {
                let traced = mode == .swapFlash ? recorder : nil
                if traced != nil { recorder = nil }
                runs[mode, default: []].append(
                    try await runOnce(
                        mode, models: models, work: work, budget: budget, tbw: tbw, dram: dram, capacity: capacity, placement: placement,
                        trace: traced))
                traced?.close()
            }
        }
        let results = modes.map { Result.mean(of: runs[$0]!) }
        try report(results, heading: heading)
    }

    /// One mode's run through fresh engines, one per model (and, for the flash modes, fresh
    /// scratch regions: one region file per replica on each path), their flash transfers
    /// recorded in `trace` when given.
    private func runOnce(
        _ mode: PreemptionMode, models: [LoadedModel], work: [BenchWorkload.Request], budget: KVBudget, tbw: ByteSize,
        dram: ByteSize, capacity: ByteSize, placement: FlashPlacementPolicy, trace: TransferTraceRecorder? = nil
    ) async throws -> Result {
        var stores: [FlashStore] = []
        var directories: [String] = []
        defer {
            stores.forEach { $0.close() }
            directories.forEach { try? FileManager.default.removeItem(atPath: $0) }
        }
        if mode == .swapFlash || mode == .auto {
            for path in FlashStoreConfiguration.parsePaths(flashPath) {
                let directory = (path as NSString).appendingPathComponent("hifc-bench-swap-\(getpid())")
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                directories.append(directory)
            }
            for replica in models.indices {
                stores.append(
                    try FlashStore(
                        configuration: FlashStoreConfiguration(
                            paths: directories, capacityPerPath: ByteSize(capacity.bytes / Int64(models.count)), placement: placement,
                            gpuIndex: replica, regionName: models.count == 1 ? FlashStoreConfiguration.regionFileName : "hifc-flash-\(replica).region"
                        ))
                )
            }
        }
        var engines: [LLMEngine] = []
        defer { engines.forEach { $0.shutdown() } }
        for (replica, loaded) in models.enumerated() {
            let configuration = EngineConfiguration(
                kvBudget: budget, blockTokens: blockTokens, maxStepTokens: maxStepTokens, maxRunning: requests,
                preemption: mode, prefetchDepth: prefetchDepth, hostSwapCapacity: dram, replica: replica)
            let store = stores.isEmpty ? nil : stores[replica]
            let tier: (any KVTierStore)? = store.map { store -> any KVTierStore in
                guard let trace else { return FlashTier(store: store) }
                return TracedTierStore(FlashTier(store: store), recorder: trace, replica: replica)
            }
            engines.append(
                try LLMEngine(
                    loaded: loaded, configuration: configuration, flashTier: tier,
                    deviceSwapper: { pool in
                        let direct: (any DeviceKVSwapper)? = store.flatMap { (pool as? CUDAKVCachePool)?.makeFlashSwapper(store: $0) }
                        guard let direct, let trace else { return direct }
                        return TracedDeviceSwapper(direct, recorder: trace, blockBytes: pool.blockStride, replica: replica)
                    }))
        }
        let service: any GenerationService =
            engines.count == 1 ? engines[0] : DataParallelService(replicas: engines, blockTokens: blockTokens, prefixAffinity: false)
        return try await measure(service, stats: { [engines] in EngineStats.summed(engines.map { $0.stats() }) }, mode: mode, work: work, tbw: tbw)
    }

    /// The model on each replica's device (`--data-parallel`): replica `i` on GPU `cuda:(K + i)`
    /// for `--device cuda:K`, or on the CPU.
    private func loadModels() throws -> [LoadedModel] {
        if dataParallel == 1 { return [try BenchModelSource.load(model, device: device)] }
        let first: DeviceSelection
        if device == "cpu" {
            first = .cpu
        } else if let selection = DeviceSelection(parsing: device) {
            first = selection
        } else {
            throw ValidationError("--device \(device) with --data-parallel: give cpu, cuda or cuda:N")
        }
        return try (0..<dataParallel).map { index in
            switch first {
            case .cpu: return try BenchModelSource.load(model, device: "cpu")
            case .cuda(let ordinal): return try BenchModelSource.load(model, device: "cuda:\(ordinal + index)")
            }
        }
    }

    /// Runs every request at once through `service` and collects the figures (`stats`: the
    /// engines' counters).
    private func measure(
        _ service: any GenerationService, stats: () -> EngineStats, mode: PreemptionMode, work: [BenchWorkload.Request], tbw: ByteSize
    ) async throws -> Result {
        let expected = work.reduce(0) { $0 + $1.maxTokens }
        let progress = BenchProgress(label: mode.rawValue, total: expected, enabled: true)
        let started = ContinuousClock.now
        let timings = try await withThrowingTaskGroup(of: (latency: Double, ttft: Double, tokens: Int).self) { group in
            for (n, request) in work.enumerated() {
                var sampling = SamplingParams.greedy(maxTokens: request.maxTokens)
                sampling.ignoreEOS = true
                let stream = service.generate(GenerationRequest(id: "bench-\(n)", promptTokens: request.prompt, sampling: sampling))
                group.addTask {
                    var ttft: Double?
                    var tokens = 0
                    for try await event in stream {
                        if case .delta(let ids, _) = event {
                            if ttft == nil { ttft = BenchProgress.seconds(since: started) }
                            tokens += ids.count
                            progress.advance(by: ids.count)
                        }
                    }
                    return (BenchProgress.seconds(since: started), ttft ?? 0, tokens)
                }
            }
            var all: [(latency: Double, ttft: Double, tokens: Int)] = []
            for try await timing in group { all.append(timing) }
            return all
        }
        let seconds = BenchProgress.seconds(since: started)
        progress.finish()
        let stats = stats()
        let latencies = timings.map(\.latency).sorted()
        let tokens = timings.reduce(0) { $0 + $1.tokens }
        let bytesPerDay = Double(stats.flashBytesWritten) / seconds * 86_400
        return Result(
            mode: mode.rawValue, requests: work.count, output_tokens: tokens, seconds: seconds,
            output_tokens_per_s: Double(tokens) / seconds, best_output_tokens_per_s: Double(tokens) / seconds,
            mean_latency_s: latencies.reduce(0, +) / Double(latencies.count),
            p99_latency_s: latencies[min(latencies.count - 1, Int((Double(latencies.count) * 0.99).rounded(.up)) - 1)],
            mean_ttft_s: timings.reduce(0) { $0 + $1.ttft } / Double(timings.count),
            preemptions: stats.preemptions, recomputed_tokens: stats.recomputedTokens,
            swap_bytes: stats.swapOutBytes + stats.swapInBytes, swap_failures: stats.swapFailures,
            swap_seconds: stats.swapSeconds, exposed_swap_s: stats.exposedSwapSeconds,
            flash_bytes_written: stats.flashBytesWritten,
            ssd_lifetime_years: bytesPerDay > 0 ? Double(tbw.bytes) / (bytesPerDay * 365) : nil)
    }

    private func report(_ results: [Result], heading: String) throws {
        if let csv {
            var lines = [
                "mode,requests,output_tokens,seconds,output_tokens_per_s,best_output_tokens_per_s,mean_latency_s,p99_latency_s,mean_ttft_s,preemptions,recomputed_tokens,swap_bytes,swap_failures,swap_seconds,exposed_swap_s,flash_bytes_written,ssd_lifetime_years"
            ]
            for r in results {
                let fields: [String] = [
                    r.mode, "\(r.requests)", "\(r.output_tokens)", "\(r.seconds)", "\(r.output_tokens_per_s)", "\(r.best_output_tokens_per_s)",
                    "\(r.mean_latency_s)", "\(r.p99_latency_s)", "\(r.mean_ttft_s)", "\(r.preemptions)", "\(r.recomputed_tokens)",
                    "\(r.swap_bytes)", "\(r.swap_failures)", "\(r.swap_seconds)", "\(r.exposed_swap_s)",
                    "\(r.flash_bytes_written)", r.ssd_lifetime_years.map { "\($0)" } ?? "",
                ]
                lines.append(fields.joined(separator: ","))
            }
            try (lines.joined(separator: "\n") + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(results), as: UTF8.self))
            return
        }
        print(heading)
        print(
            "mode          out tok/s   best tok/s  mean lat s  p99 lat s  mean TTFT s  preempt  recomputed  swap bytes  exposed s  flash written  SSD life"
        )
        for r in results {
            let life = r.ssd_lifetime_years.map { String(format: "%.1f y", $0) } ?? "-"
            print(
                [
                    r.mode.padding(toLength: 12, withPad: " ", startingAt: 0),
                    String(format: "%10.2f", r.output_tokens_per_s), String(format: "%12.2f", r.best_output_tokens_per_s),
                    String(format: "%11.2f", r.mean_latency_s),
                    String(format: "%10.2f", r.p99_latency_s), String(format: "%12.2f", r.mean_ttft_s),
                    String(format: "%8d", r.preemptions), String(format: "%11d", r.recomputed_tokens),
                    "\(ByteSize(Int64(r.swap_bytes)))".leftPadded(11), String(format: "%10.3f", r.exposed_swap_s),
                    "\(ByteSize(Int64(r.flash_bytes_written)))".leftPadded(14), life.leftPadded(9),
                ].joined(separator: " "))
        }
    }
}

extension String {
    /// The string right-aligned in `width` columns.
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

extension EngineStats {
    /// The swap and preemption counters of several engines, added up (exposed swap seconds too:
    /// each engine stalls on its own).
    fileprivate static func summed(_ all: [EngineStats]) -> EngineStats {
        var total = EngineStats()
        for stats in all {
            total.preemptions += stats.preemptions
            total.recomputedTokens += stats.recomputedTokens
            total.swapOuts += stats.swapOuts
            total.swapOutBytes += stats.swapOutBytes
            total.swapIns += stats.swapIns
            total.swapInBytes += stats.swapInBytes
            total.swapFailures += stats.swapFailures
            total.swapSeconds += stats.swapSeconds
            total.exposedSwapSeconds += stats.exposedSwapSeconds
            total.flashBytesWritten += stats.flashBytesWritten
        }
        return total
    }
}
