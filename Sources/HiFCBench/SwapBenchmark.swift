import Backend
import CUDA
import Engine
import FlashStore
import Foundation
import HiFCCore
import Models

/// The paper's experiment behind `hifc bench swap`: the same requests, all submitted at once,
/// through a fresh engine per preemption mode under a KV budget that starves the device, and the
/// figures each mode gives.
public struct SwapBenchmark: Sendable {
    /// The model the requests run on.
    public var loaded: LoadedModel
    /// The workload's name, carried into the results.
    public var workload: String
    /// The requests, the same for every mode.
    public var requests: [BenchWorkload.Request]
    /// The engine's settings; each run replaces `preemption` with the mode it measures.
    public var engine: EngineConfiguration
    /// Where the flash modes make their scratch regions (removed after each run): a directory,
    /// or a comma-separated list of them, one flash path each.
    public var flashDirectory: String
    /// Size of the scratch region.
    public var flashCapacity: ByteSize
    /// Endurance of the flash, for the lifetime at the measured write rate.
    public var enduranceTBW: ByteSize
    /// The disk's own bandwidth under `flashDirectory`, measured in the same run, for each run's
    /// disk-bound floor; nil: not measured.
    public var disk: DiskBandwidth?
    /// The model on each further engine replica's device (data-parallel runs: the engines sit
    /// behind a `DataParallelService`, the first on `loaded`); empty: one engine.
    public var replicaModels: [LoadedModel] = []
    /// How blocks are spread over several flash paths.
    public var placement: FlashPlacementPolicy = .stripe
    /// Where the runs record their flash transfers (for `hifc bench placement`); nil: nowhere.
    public var trace: TransferTraceRecorder?

    /// A benchmark of `requests` on `loaded`.
    public init(
        loaded: LoadedModel, workload: String, requests: [BenchWorkload.Request], engine: EngineConfiguration, flashDirectory: String,
        flashCapacity: ByteSize, enduranceTBW: ByteSize, disk: DiskBandwidth? = nil
    ) {
        self.loaded = loaded
        self.workload = workload
        self.requests = requests
        self.engine = engine
        self.flashDirectory = flashDirectory
        self.flashCapacity = flashCapacity
        self.enduranceTBW = enduranceTBW
        self.disk = disk
    }

    /// One mode's run through fresh engines, one per replica (and, for the flash modes, fresh
    /// scratch regions: one region file per replica on each path), with a progress bar on
    /// standard error.
    public func run(_ mode: PreemptionMode) async throws -> SwapBenchmarkResult {
        let models = [loaded] + replicaModels
        var stores: [FlashStore] = []
        var directories: [String] = []
        defer {
            stores.forEach { $0.close() }
            directories.forEach { try? FileManager.default.removeItem(atPath: $0) }
        }
        if mode == .swapFlash || mode == .auto {
            for path in FlashStoreConfiguration.parsePaths(flashDirectory) {
                let directory = (path as NSString).appendingPathComponent("hifc-bench-swap-\(getpid())")
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                directories.append(directory)
            }
            for replica in models.indices {
                stores.append(
                    try FlashStore(
                        configuration: FlashStoreConfiguration(
                            paths: directories, capacityPerPath: ByteSize(flashCapacity.bytes / Int64(models.count)), placement: placement,
                            gpuIndex: replica, regionName: models.count == 1 ? FlashStoreConfiguration.regionFileName : "hifc-flash-\(replica).region"
                        )))
            }
        }
        var engines: [LLMEngine] = []
        defer { engines.forEach { $0.shutdown() } }
        for (replica, model) in models.enumerated() {
            var configuration = engine
            configuration.preemption = mode
            configuration.replica = replica
            let store = stores.isEmpty ? nil : stores[replica]
            let trace = self.trace
            let tier: (any KVTierStore)? = store.map { store -> any KVTierStore in
                guard let trace else { return FlashTier(store: store) }
                return TracedTierStore(FlashTier(store: store), recorder: trace, replica: replica)
            }
            engines.append(
                try LLMEngine(
                    loaded: model, configuration: configuration, flashTier: tier,
                    deviceSwapper: { pool in
                        let direct: (any DeviceKVSwapper)? = store.flatMap { (pool as? CUDAKVCachePool)?.makeFlashSwapper(store: $0) }
                        guard let direct, let trace else { return direct }
                        return TracedDeviceSwapper(direct, recorder: trace, blockBytes: pool.blockStride, replica: replica)
                    }))
        }
        let service: any GenerationService =
            engines.count == 1 ? engines[0] : DataParallelService(replicas: engines, blockTokens: engine.blockTokens, prefixAffinity: false)
        return try await measure(
            service,
            stats: { [engines] in
                // Each engine's counters added up (exposed swap seconds too: each engine stalls on its own).
                engines.reduce(into: EngineStats()) { $0.accumulate($1.stats()) }
            }, mode: mode)
    }

    /// Runs every request at once through `service` and collects the figures (`stats`: the
    /// engines' counters).
    private func measure(_ service: any GenerationService, stats: () -> EngineStats, mode: PreemptionMode) async throws -> SwapBenchmarkResult {
        let expected = requests.reduce(0) { $0 + $1.maxTokens }
        let progress = BenchProgress(label: mode.rawValue, total: expected, enabled: true)
        let started = ContinuousClock.now
        let timings = try await withThrowingTaskGroup(of: (latency: Double, ttft: Double, tokens: Int).self) { group in
            for (n, request) in requests.enumerated() {
                var sampling = SamplingParams.greedy(maxTokens: request.maxTokens)
                sampling.ignoreEOS = true
                let stream = service.generate(GenerationRequest(id: "bench-\(n)", promptTokens: request.prompt, sampling: sampling))
                group.addTask {
                    var ttft: Double?
                    var tokens = 0
                    for try await event in stream {
                        if case .delta(let ids, _, _) = event {
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
        return SwapBenchmarkResult(
            workload: workload, mode: mode.rawValue, requests: requests.count, output_tokens: tokens, seconds: seconds,
            output_tokens_per_s: Double(tokens) / seconds, best_output_tokens_per_s: Double(tokens) / seconds,
            mean_latency_s: latencies.reduce(0, +) / Double(latencies.count),
            p99_latency_s: latencies[min(latencies.count - 1, Int((Double(latencies.count) * 0.99).rounded(.up)) - 1)],
            mean_ttft_s: timings.reduce(0) { $0 + $1.ttft } / Double(timings.count),
            preemptions: stats.preemptions, recomputed_tokens: stats.recomputedTokens,
            swap_bytes: stats.swapOutBytes + stats.swapInBytes, swap_failures: stats.swapFailures,
            swap_seconds: stats.swapSeconds, exposed_swap_s: stats.exposedSwapSeconds,
            mean_resume_s: stats.swapIns > 0 ? stats.swapInWaitSeconds / Double(stats.swapIns) : 0,
            swap_prefetch_bytes: stats.swapPrefetchBytes, prefetched_swap_in_bytes: stats.prefetchedSwapInBytes,
            flash_bytes_written: stats.flashBytesWritten,
            ssd_lifetime_years: bytesPerDay > 0 ? Double(enduranceTBW.bytes) / (bytesPerDay * 365) : nil,
            bytes_written_per_output_token: tokens > 0 ? Double(stats.swapOutBytes + stats.prefixSaveBytes) / Double(tokens) : 0,
            flash_bytes_read: stats.flashBytesRead,
            disk_floor_s: mode == .swapFlash || mode == .auto
                ? disk.map { $0.floorSeconds(written: stats.flashBytesWritten, read: stats.flashBytesRead) } : nil,
            dd_write_gbps: disk?.writeGBps, dd_read_gbps: disk?.readGBps)
    }
}

/// The figures of one mode of `SwapBenchmark` (names as the JSON and CSV reports print them).
public struct SwapBenchmarkResult: Codable, Sendable {
    /// The workload's name.
    public var workload: String
    /// The preemption mode.
    public var mode: String
    /// Requests run.
    public var requests: Int
    /// Tokens generated, all requests.
    public var output_tokens: Int
    /// Wall time from the first submission to the last token.
    public var seconds: Double
    /// Output tokens per second.
    public var output_tokens_per_s: Double
    /// The highest of the rounds' output tokens/s: the run least disturbed by other load.
    public var best_output_tokens_per_s: Double
    /// Mean seconds from submission to a request's last token.
    public var mean_latency_s: Double
    /// The 99th percentile of those seconds.
    public var p99_latency_s: Double
    /// Mean seconds to a request's first token.
    public var mean_ttft_s: Double
    /// Sequences preempted.
    public var preemptions: Int
    /// Tokens prefilled again after a preemption by recompute (or a failed swap).
    public var recomputed_tokens: Int
    /// Bytes swapped out and in.
    public var swap_bytes: Int
    /// Swaps that failed (their sequences were recomputed).
    public var swap_failures: Int
    /// Seconds of swap I/O.
    public var swap_seconds: Double
    /// Seconds of swap I/O that no compute hid.
    public var exposed_swap_s: Double
    /// Mean seconds from a swap-in's start (the decision to resume its sequence) to the sequence
    /// running again; 0 without swap-ins.
    public var mean_resume_s: Double
    /// Bytes read from flash into host memory ahead of resumes (swap prefetches), and those of
    /// them that swap-ins used.
    public var swap_prefetch_bytes: Int
    public var prefetched_swap_in_bytes: Int
    /// Bytes written to flash.
    public var flash_bytes_written: Int
    /// Years the SSD lasts at this write rate; nil when nothing was written.
    public var ssd_lifetime_years: Double?
    /// Bytes written to the swap tier (swap-outs, and prefix blocks saved to flash) per output
    /// token: what wears the SSD in the flash modes.
    public var bytes_written_per_output_token: Double
    /// Bytes read from flash (swap-ins and prefix loads).
    public var flash_bytes_read: Int
    /// Seconds the disk needs at least for this run's flash I/O: bytes written and read at `dd`'s
    /// bandwidths, measured in the same run (the floor of the exposed swap time where the disk
    /// is the bottleneck); nil without a `dd` measurement.
    public var disk_floor_s: Double?
    /// The disk's `dd` O_DIRECT bandwidths in the same run, GB/s; nil when not measured.
    public var dd_write_gbps: Double?
    public var dd_read_gbps: Double?

    /// The mean of several runs of one mode (counts rounded).
    public static func mean(of runs: [SwapBenchmarkResult]) -> SwapBenchmarkResult {
        func average(_ value: (SwapBenchmarkResult) -> Double) -> Double { runs.reduce(0) { $0 + value($1) } / Double(runs.count) }
        func averageCount(_ value: (SwapBenchmarkResult) -> Int) -> Int { Int(average { Double(value($0)) }.rounded()) }
        func averageOptional(_ value: (SwapBenchmarkResult) -> Double?) -> Double? {
            let values = runs.compactMap(value)
            return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
        }
        let lifetimes = runs.compactMap(\.ssd_lifetime_years)
        return SwapBenchmarkResult(
            workload: runs[0].workload, mode: runs[0].mode, requests: runs[0].requests, output_tokens: averageCount(\.output_tokens),
            seconds: average(\.seconds), output_tokens_per_s: average(\.output_tokens_per_s),
            best_output_tokens_per_s: runs.map(\.output_tokens_per_s).max()!,
            mean_latency_s: average(\.mean_latency_s), p99_latency_s: average(\.p99_latency_s),
            mean_ttft_s: average(\.mean_ttft_s), preemptions: averageCount(\.preemptions),
            recomputed_tokens: averageCount(\.recomputed_tokens), swap_bytes: averageCount(\.swap_bytes),
            swap_failures: averageCount(\.swap_failures), swap_seconds: average(\.swap_seconds),
            exposed_swap_s: average(\.exposed_swap_s), mean_resume_s: average(\.mean_resume_s),
            swap_prefetch_bytes: averageCount(\.swap_prefetch_bytes), prefetched_swap_in_bytes: averageCount(\.prefetched_swap_in_bytes),
            flash_bytes_written: averageCount(\.flash_bytes_written),
            ssd_lifetime_years: lifetimes.isEmpty ? nil : lifetimes.reduce(0, +) / Double(lifetimes.count),
            bytes_written_per_output_token: average(\.bytes_written_per_output_token), flash_bytes_read: averageCount(\.flash_bytes_read),
            disk_floor_s: averageOptional(\.disk_floor_s), dd_write_gbps: runs[0].dd_write_gbps, dd_read_gbps: runs[0].dd_read_gbps)
    }
}
