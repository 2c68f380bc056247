import ArgumentParser
import Backend
import Engine
import FlashStore
import Foundation
import HiFCBench
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
            tokens, govreport 8.7K, narrativeqa 18.4K, each with 1K output tokens, or IN:OUT; a \
            comma-separated list runs each in turn, --requests then one count for all or one per \
            workload), multiplied by --scale, and runs them all at once \
            through a fresh engine per mode. \
            Reports output tokens/s, mean and p99 latency, mean time to first token, preemptions, \
            swap bytes, swap time left exposed beside the disk-bound floor (the run's flash bytes at \
            the bandwidths dd with O_DIRECT measures under --flash-path at the start), bytes written \
            per output token, flash bytes written and the SSD lifetime at that write rate. --model takes a model directory, or synth:tiny / synth:small to write a \
            synthetic model first. --plot FILE draws output tokens/s per mode and workload (SVG, or \
            PNG through rsvg-convert).
            """
    )

    @Option(help: "A model directory, or synth:tiny|small for a synthetic one.")
    var model: String

    @Option(help: "qasper, govreport, narrativeqa, or IN:OUT token counts; a comma-separated list runs each.")
    var workload: String = "govreport"

    @Option(help: "Requests, all submitted at the start: one count, or one per workload of --workload (16,8,6).")
    var requests: String = "16"

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

    @Option(name: .customLong("dram-swap"), help: "Host memory of the DRAM swap tier (swap-dram's, and auto's first choice while it has room).")
    var dramSwap: String = "16GiB"

    @Option(
        name: .customLong("flash-target-lifetime"),
        help: "Keep the flash writes to a daily budget of --flash-tbw / (years x 365) (5y, 18mo, 400d); past it swaps go to DRAM.")
    var flashTargetLifetime: String?

    @Option(
        name: .customLong("resume-headroom"),
        help: "Tokens every sequence on the device must be able to grow by before a swapped one resumes (hysteresis).")
    var resumeHeadroom: Int = SchedulerConfig.defaultResumeHeadroomTokens

    @Option(
        name: .customLong("prefix-cache-flash-size"),
        help: "Flash the prefix cache may fill (0: none, the default: the workload's prompts share nothing, so saves would only add writes).")
    var prefixCacheFlashSize: String = "0"

    @Option(name: .customLong("dd-size"), help: "Bytes dd writes and reads under --flash-path for the disk-bound floor (0: no dd).")
    var ddSize: String = "1GiB"

    @Option(name: .customLong("block-size"), help: "Tokens per KV block.")
    var blockTokens: Int = 64

    @Option(name: .customLong("max-batch-tokens"), help: "Tokens computed per step (chunked prefill budget).")
    var maxStepTokens: Int = 512

    @Option(name: .customLong("prefetch-depth"), help: "Swapped sequences read back at once.")
    var prefetchDepth: Int = 2

    @Option(
        name: .customLong("swap-prefetch"),
        help: ArgumentHelp(
            "Host memory the next swapped sequences' flash blocks are read into ahead of their resume (0: none); a comma-separated list runs the flash modes once per size.",
            valueName: "sizes"))
    var swapPrefetch: String = "\(EngineConfiguration().swapPrefetchCapacity)"

    @Option(help: "Multiplies prompt and output lengths (to fit small machines).")
    var scale: Double = 1

    @Option(help: "Rounds over the modes (alternating their order); figures are the mean.")
    var repeats: Int = 1

    @Flag(help: "Print a JSON list, one object per mode.")
    var json = false

    @Option(help: "Also write the figures to this CSV file.")
    var csv: String?

    @Option(help: "Also draw output tokens/s per mode and workload to this file (.svg, or .png through rsvg-convert).")
    var plot: String?

    @Option(help: "cpu (the default here), auto, cuda or cuda:N. On a GPU, swap-flash moves blocks with cuFile.")
    var device: String = "cpu"

    @Option(help: "Record the flash transfers of the first swap-flash run to this JSONL file (for bench placement).")
    var trace: String?

    @Flag(
        name: .customLong("unstaged-flash-writes"),
        help: "Write swap-outs to flash from the device blocks, which stay taken until the write ends (the behaviour before staging).")
    var unstagedFlashWrites = false
    @Option(name: .customLong("kv-dtype"), help: "KV cache element type: auto (the backend's own), bf16 or fp8.")
    var kvDType: KVDTypeChoice = .auto

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
        let shapes: [BenchWorkload]
        let lifetime: TargetLifetime?
        let ddBytes: ByteSize
        let prefixFlash: ByteSize
        let placement: FlashPlacementPolicy
        let prefetchSizes: [ByteSize]
        do {
            prefetchSizes = try swapPrefetch.split(separator: ",").map { try ByteSize(parsing: $0.trimmingCharacters(in: .whitespaces)) }
            prefixFlash = try ByteSize(parsing: prefixCacheFlashSize)
            lifetime = try flashTargetLifetime.map { try TargetLifetime(parsing: $0) }
            ddBytes = try ByteSize(parsing: ddSize)
            guard let policy = FlashPlacementPolicy(rawValue: flashPlacement) else {
                throw ValidationError("unknown --flash-placement '\(flashPlacement)'; use affinity, stripe or swarm")
            }
            placement = policy
            budget = try KVBudget(parsing: kvBudget)
            tbw = try ByteSize(parsing: flashTBW)
            dram = try ByteSize(parsing: dramSwap)
            capacity = try ByteSize(parsing: flashCapacity)
            shapes = try workload.split(separator: ",").map { try BenchWorkload(parsing: $0.trimmingCharacters(in: .whitespaces)) }
        } catch {
            throw ValidationError("\(error)")
        }
        guard !shapes.isEmpty else { throw ValidationError("--workload names no workload") }
        guard !prefetchSizes.isEmpty else { throw ValidationError("--swap-prefetch names no size") }
        let runs = Self.runs(of: modes, prefetchSizes: prefetchSizes)
        let counts = requests.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard counts.count == 1 || counts.count == shapes.count else {
            throw ValidationError(
                "--requests '\(requests)' gives \(counts.count) counts for \(shapes.count) workloads: give one, or one per workload")
        }
        guard counts.allSatisfy({ ($0 ?? 0) > 0 }), scale > 0, repeats > 0, dataParallel > 0 else {
            throw ValidationError("--requests ('\(requests)'), --scale, --repeats and --data-parallel must be positive")
        }
        let requestCounts = counts.count == 1 ? Array(repeating: counts[0]!, count: shapes.count) : counts.map { $0! }
        guard resumeHeadroom >= 0 else { throw ValidationError("--resume-headroom must be zero or more") }

        let models = try loadModels()
        let loaded = models[0]
        var recorder = try trace.map { try TransferTraceRecorder(path: $0) }
        // The disk's own bandwidth, once, in the same run: each flash run's floor is its bytes at it.
        var disk: DiskBandwidth?
        if ddBytes.bytes > 0, modes.contains(where: { $0 == .swapFlash || $0 == .auto }) {
            let measured = try DiskBandwidth.measure(inEach: FlashStoreConfiguration.parsePaths(flashPath), bytes: ddBytes.bytes)
            disk = measured
            if !json {
                FileHandle.standardError.write(
                    Data(
                        String(format: "dd O_DIRECT under %@: write %.2f GB/s, read %.2f GB/s\n", flashPath, measured.writeGBps, measured.readGBps)
                            .utf8))
            }
        }
        var results: [SwapBenchmarkResult] = []
        var headings: [String] = []
        for (shape, requests) in zip(shapes, requestCounts) {
            let work = shape.requests(count: requests, scale: scale, vocabulary: min(loaded.tokenizer.vocabularySize, loaded.config.vocabSize))
            let layout = loaded.model.kvLayout(blockTokens: blockTokens, dtype: kvDType)
            let meanTokens = work.reduce(0) { $0 + $1.prompt.count + $1.maxTokens } / work.count
            let blocks = budget.blockCount(blockBytes: layout.blockStride)
            let heading =
                "bench swap: \(loaded.name), workload \(shape) x\(scale) (\(requests) requests, mean \(meanTokens) tokens each), "
                + "KV \(layout.dtype.rawValue), budget \(budget) = \(blocks) blocks of \(blockTokens) tokens (\(layout.blockBytes) bytes), about \(blocks * blockTokens / max(meanTokens, 1)) requests"
                + (dataParallel > 1 ? ", per replica; \(dataParallel) replicas" : "")
                + ", flash \(FlashStoreConfiguration.parsePaths(flashPath).count) path(s), \(placement.rawValue) placement"
                + ", DRAM tier \(dram) (swap-dram's, and auto's first choice)"
            if !json { FileHandle.standardError.write(Data((heading + "\n").utf8)) }
            headings.append(heading)

            var benchmark = SwapBenchmark(
                loaded: loaded, workload: shape.name, requests: work,
                engine: engineConfiguration(budget: budget, requests: requests, dram: dram, tbw: tbw, lifetime: lifetime, prefixFlash: prefixFlash),
                flashDirectory: flashPath, flashCapacity: capacity, enduranceTBW: tbw, disk: disk)
            benchmark.replicaModels = Array(models.dropFirst())
            benchmark.placement = placement
            // Rounds alternate the order of the modes (forward, backward, ...) so that a drift in the
            // machine's load does not favour the modes that run first; each mode's figures are the
            // mean over the rounds.
            var figures: [String: [SwapBenchmarkResult]] = [:]
            for round in 0..<repeats {
                for run in round % 2 == 0 ? runs : runs.reversed() {
                    // The first swap-flash run is traced.
                    benchmark.trace = run.mode == .swapFlash ? recorder : nil
                    if benchmark.trace != nil { recorder = nil }
                    benchmark.engine.swapPrefetchCapacity = run.prefetch
                    var result = try await benchmark.run(run.mode)
                    result.mode = run.label
                    figures[run.label, default: []].append(result)
                    benchmark.trace?.close()
                }
            }
            results += runs.map { SwapBenchmarkResult.mean(of: figures[$0.label]!) }
        }
        try report(results, headings: headings, modes: runs.map(\.label), workloads: shapes.map(\.name))
    }

    /// One run of a round: a mode, with the swap prefetch's host memory for the modes that swap
    /// to flash (one run per size of `--swap-prefetch`, labelled by the size where there are
    /// several: `swap-flash/no-prefetch`, `swap-flash/prefetch-2GiB`).
    struct Run {
        var mode: PreemptionMode
        var prefetch: ByteSize
        var label: String
    }

    static func runs(of modes: [PreemptionMode], prefetchSizes: [ByteSize]) -> [Run] {
        modes.flatMap { mode -> [Run] in
            guard mode == .swapFlash || mode == .auto, prefetchSizes.count > 1 else {
                return [Run(mode: mode, prefetch: prefetchSizes[0], label: mode.rawValue)]
            }
            return prefetchSizes.map { size in
                Run(mode: mode, prefetch: size, label: mode.rawValue + (size.bytes == 0 ? "/no-prefetch" : "/prefetch-\(size)".filter { $0 != " " }))
            }
        }
    }

    /// The engine's settings from the flags (each run sets its own preemption mode).
    private func engineConfiguration(
        budget: KVBudget, requests: Int, dram: ByteSize, tbw: ByteSize, lifetime: TargetLifetime?, prefixFlash: ByteSize
    ) -> EngineConfiguration {
        var configuration = EngineConfiguration(
            kvBudget: budget, blockTokens: blockTokens, maxStepTokens: maxStepTokens, maxRunning: requests,
            prefetchDepth: prefetchDepth, hostSwapCapacity: dram, flashEnduranceTBW: tbw, flashTargetLifetime: lifetime,
            kvDType: kvDType)
        configuration.resumeHeadroomTokens = resumeHeadroom
        configuration.prefixCacheFlashSize = prefixFlash
        configuration.stagesFlashWrites = !unstagedFlashWrites
        return configuration
    }

    /// The model on each replica's device (`--data-parallel`): replica `i` on GPU `cuda:(K + i)`
    /// for `--device cuda:K` (`auto`: from GPU 0 when the first replica found one), or on the CPU.
    private func loadModels() throws -> [LoadedModel] {
        // CPU replicas split the physical cores, each on its own pool (as `hifc serve` does).
        let share = max(1, CPUThreadPool.physicalCores / dataParallel)
        let first = try BenchModelSource.load(model, device: device, cpuThreads: dataParallel > 1 ? share : nil)
        guard dataParallel > 1 else { return [first] }
        let ordinal: Int?
        switch DeviceSelection(parsing: device) {
        case .cpu: ordinal = nil
        case .cuda(let index): ordinal = index
        case .auto: ordinal = first.model.backend is CPUBackend ? nil : 0
        case nil: throw ValidationError("--device \(device) with --data-parallel: give auto, cpu, cuda or cuda:N")
        }
        return try [first]
            + (1..<dataParallel).map { index in
                try BenchModelSource.load(model, device: ordinal.map { "cuda:\($0 + index)" } ?? "cpu", cpuThreads: share)
            }
    }

    private func report(_ results: [SwapBenchmarkResult], headings: [String], modes: [String], workloads: [String]) throws {
        if let plot {
            let chart = GroupedBarChart(
                title: "bench swap: output tokens/s by preemption mode", xLabel: "workload (x\(scale))", yLabel: "output tokens/s",
                categories: workloads,
                series: modes.map { mode in
                    ChartSeries(name: mode, values: workloads.map { w in results.first { $0.workload == w && $0.mode == mode }?.output_tokens_per_s })
                })
            do {
                try ChartFigure(charts: [chart], columns: 1, panelWidth: max(520, 140 + 90 * Double(workloads.count * modes.count))).write(to: plot)
            } catch {
                throw ValidationError(error.description)
            }
        }
        if let csv {
            var lines = [
                "workload,mode,requests,output_tokens,seconds,output_tokens_per_s,best_output_tokens_per_s,mean_latency_s,p99_latency_s,mean_ttft_s,preemptions,recomputed_tokens,swap_bytes,swap_failures,swap_seconds,exposed_swap_s,flash_bytes_written,ssd_lifetime_years,bytes_written_per_output_token,flash_bytes_read,disk_floor_s,dd_write_gbps,dd_read_gbps,mean_resume_s,swap_prefetch_bytes,prefetched_swap_in_bytes"
            ]
            for r in results {
                let fields: [String] = [
                    r.workload, r.mode, "\(r.requests)", "\(r.output_tokens)", "\(r.seconds)", "\(r.output_tokens_per_s)",
                    "\(r.best_output_tokens_per_s)",
                    "\(r.mean_latency_s)", "\(r.p99_latency_s)", "\(r.mean_ttft_s)", "\(r.preemptions)", "\(r.recomputed_tokens)",
                    "\(r.swap_bytes)", "\(r.swap_failures)", "\(r.swap_seconds)", "\(r.exposed_swap_s)",
                    "\(r.flash_bytes_written)", r.ssd_lifetime_years.map { "\($0)" } ?? "",
                    "\(r.bytes_written_per_output_token)", "\(r.flash_bytes_read)", r.disk_floor_s.map { "\($0)" } ?? "",
                    r.dd_write_gbps.map { "\($0)" } ?? "", r.dd_read_gbps.map { "\($0)" } ?? "",
                    "\(r.mean_resume_s)", "\(r.swap_prefetch_bytes)", "\(r.prefetched_swap_in_bytes)",
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
        for (heading, workload) in zip(headings, workloads) {
            print(heading)
            printTable(results.filter { $0.workload == workload })
        }
    }

    private func printTable(_ results: [SwapBenchmarkResult]) {
        print(
            "mode                       out tok/s   best tok/s  mean lat s  p99 lat s  mean TTFT s  preempt  recomputed  swap bytes  exposed s  disk floor s  resume ms  prefetched  written/tok  flash written  SSD life"
        )
        for r in results {
            let life = r.ssd_lifetime_years.map { String(format: "%.1f y", $0) } ?? "-"
            print(
                [
                    r.mode.padding(toLength: 25, withPad: " ", startingAt: 0),
                    String(format: "%10.2f", r.output_tokens_per_s), String(format: "%12.2f", r.best_output_tokens_per_s),
                    String(format: "%11.2f", r.mean_latency_s),
                    String(format: "%10.2f", r.p99_latency_s), String(format: "%12.2f", r.mean_ttft_s),
                    String(format: "%8d", r.preemptions), String(format: "%11d", r.recomputed_tokens),
                    "\(ByteSize(Int64(r.swap_bytes)))".leftPadded(11), String(format: "%10.3f", r.exposed_swap_s),
                    (r.disk_floor_s.map { String(format: "%.3f", $0) } ?? "-").leftPadded(13),
                    String(format: "%10.1f", r.mean_resume_s * 1000), "\(ByteSize(Int64(r.prefetched_swap_in_bytes)))".leftPadded(11),
                    "\(ByteSize(Int64(r.bytes_written_per_output_token.rounded())))".leftPadded(12),
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
