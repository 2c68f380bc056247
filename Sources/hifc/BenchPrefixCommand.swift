import ArgumentParser
import Backend
import CUDA
import Engine
import Foundation
import HiFCBench
import HiFCCore
import Models

/// `hifc bench prefix`: what the prefix cache buys, on the traffic it is deployed for.
struct BenchPrefixCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prefix",
        abstract: "Measure the prefix cache: multi-turn chat, shared-document QA, and loading a known prefix against computing it.",
        discussion: """
            Workloads: chat (--conversations side by side, --turns each, every turn resending the \
            conversation), docqa (--documents of --document-tokens, --questions each, interleaved, \
            --concurrency in flight) and sweep (one request per --sizes prefix, alone). chat and \
            docqa run in each --setups: cold (cache off), device (device cache only), flash \
            (device and flash) and restart (a second engine after the first ran the same work and \
            shut down). The sweep writes each prefix to flash, then times its first token on \
            fresh engines that recompute it, load it, and let the cost model choose. The disk's \
            own O_DIRECT read bandwidth (dd) is measured in the same run.
            """
    )

    @Option(help: "A model directory, or synth:tiny|small for a synthetic one.")
    var model: String = "synth:tiny"

    @Option(help: "cpu, auto, cuda or cuda:N.")
    var device: String = "cpu"

    @Option(help: "Workloads, comma-separated: chat, docqa, sweep.")
    var workload: String = "chat,docqa,sweep"

    @Option(help: "Setups for chat and docqa, comma-separated: cold, device, flash, restart.")
    var setups: String = "cold,device,flash,restart"

    @Option(name: .customLong("flash-path"), help: "A directory on the SSD for the scratch flash regions (removed after).")
    var flashPath: String = NSTemporaryDirectory()

    @Option(name: .customLong("flash-capacity"), help: "Size of each scratch flash region.")
    var flashCapacity: String = "2GiB"

    @Option(name: .customLong("kv-budget"), help: "Device KV memory: a size or a block count.")
    var kvBudget: String = "8MiB"

    @Option(name: .customLong("block-size"), help: "Tokens per KV block.")
    var blockTokens: Int = 16

    @Option(name: .customLong("max-batch-tokens"), help: "Tokens computed per step (chunked prefill budget).")
    var maxStepTokens: Int = 512

    @Option(help: "chat: conversations at once.")
    var conversations: Int = 8
    @Option(help: "chat: turns per conversation.")
    var turns: Int = 8
    @Option(name: .customLong("message-tokens"), help: "chat: tokens of each user message.")
    var messageTokens: Int = 256
    @Option(name: .customLong("answer-tokens"), help: "Tokens generated per request.")
    var answerTokens: Int = 32
    @Option(help: "docqa: documents.")
    var documents: Int = 3
    @Option(name: .customLong("document-tokens"), help: "docqa: tokens of each document.")
    var documentTokens: Int = 8_192
    @Option(help: "docqa: questions per document.")
    var questions: Int = 8
    @Option(help: "docqa: requests in flight at once.")
    var concurrency: Int = 4
    @Option(help: "sweep: prefix sizes in tokens, comma-separated.")
    var sizes: String = "1024,2048,4096"

    @Flag(help: "Print one JSON object.")
    var json = false

    @Option(
        name: .customLong("prefix-cache-write"),
        help: "Write policies for the flash and restart setups, comma-separated: on-evict, write-through, reused.")
    var writePolicies: String = "on-evict"

    @Option(help: "Record every flash transfer (prefix saves and loads) to this JSONL file (for bench placement).")
    var trace: String?

    func run() async throws {
        MallocTuning.keepFreedBlocksMapped()
        let workloads = try list(workload) { PrefixWorkload(rawValue: $0) }
        let setups = try list(self.setups) { PrefixBenchmark.Setup(rawValue: $0) }
        let sweepSizes = try list(sizes) { Int($0) }.filter { $0 > 0 }
        let policies = try list(writePolicies) { PrefixWritePolicy(rawValue: $0) }
        var shape = PrefixWorkloadShape()
        (shape.conversations, shape.turns, shape.messageTokens, shape.answerTokens) = (conversations, turns, messageTokens, answerTokens)
        (shape.documents, shape.documentTokens, shape.questions, shape.concurrency) = (documents, documentTokens, questions, concurrency)
        shape.sweepSizes = sweepSizes.sorted()
        let budget: KVBudget
        let capacity: ByteSize
        do {
            budget = try KVBudget(parsing: kvBudget)
            capacity = try ByteSize(parsing: flashCapacity)
        } catch {
            throw ValidationError("\(error)")
        }
        let longest = max(
            shape.turns * (shape.messageTokens + shape.answerTokens), shape.documentTokens + shape.questionTokens + shape.answerTokens,
            (shape.sweepSizes.max() ?? 0) + 17)
        let loaded = try BenchModelSource.load(model, device: device, context: longest)
        var engineConfiguration = EngineConfiguration(kvBudget: budget, blockTokens: blockTokens, maxStepTokens: maxStepTokens, maxRunning: 64)
        engineConfiguration.prefixCacheWrite = policies[0]
        var benchmark = PrefixBenchmark(
            loaded: loaded,
            configuration: engineConfiguration,
            flashRoot: flashPath, flashCapacity: capacity, shape: shape,
            source: TokenSource(vocabulary: min(loaded.tokenizer.vocabularySize, loaded.config.vocabSize)),
            deviceSwapper: { pool, store in (pool as? CUDAKVCachePool)?.makeFlashSwapper(store: store) },
            progress: { line in FileHandle.standardError.write(Data(("bench prefix: " + line + "\n").utf8)) })
        benchmark.trace = try trace.map { try TransferTraceRecorder(path: $0) }
        defer { benchmark.trace?.close() }

        var figures: [PrefixBenchmark.Figures] = []
        for workload in workloads where workload != .sweep {
            for setup in setups { figures.append(try await benchmark.run(workload, setup)) }
            // The other write policies only change what reaches flash: the setups that use it.
            for policy in policies.dropFirst() {
                for setup in setups where setup == .flash || setup == .restart {
                    figures.append(try await benchmark.run(workload, setup, writePolicy: policy))
                }
            }
        }
        let sweep = workloads.contains(.sweep) ? try await benchmark.sweep() : []
        let dd = try benchmark.ddReadGBps(bytes: min(capacity.bytes, 1 << 30))
        let layout = loaded.model.kvLayout(blockTokens: blockTokens)
        let heading =
            "bench prefix: \(loaded.name) on \(loaded.model.backend.name), KV \(layout.bytesPerToken) bytes/token, "
            + "budget \(budget), blocks of \(blockTokens) tokens; disk read (dd O_DIRECT, 8 MiB): \(String(format: "%.2f", dd)) GB/s"
        if json {
            struct Report: Encodable {
                var heading: String
                var dd_read_gbps: Double
                var kv_bytes_per_token: Int
                var workloads: [PrefixBenchmark.Figures]
                var sweep: [PrefixBenchmark.SweepRow]
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let report = Report(heading: heading, dd_read_gbps: dd, kv_bytes_per_token: layout.bytesPerToken, workloads: figures, sweep: sweep)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print(heading)
        if !figures.isEmpty {
            print(
                "workload setup    requests  out tok/s  TTFT mean  TTFT p50  TTFT p99    cached  device hits  flash hits  loaded      load GB/s  declined"
            )
            for f in figures {
                let loadRate = f.load_seconds > 0 ? String(format: "%.2f", Double(f.loaded_bytes) / f.load_seconds / 1e9) : "-"
                print(
                    [
                        f.workload.padding(toLength: 8, withPad: " ", startingAt: 0),
                        f.setup.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0),
                        (f.setup == .flash || f.setup == .restart ? f.write_policy : "-").padding(toLength: 14, withPad: " ", startingAt: 0),
                        String(format: "%8d", f.requests), String(format: "%10.1f", f.output_tokens_per_s),
                        String(format: "%10.4f", f.ttft_mean_s), String(format: "%9.4f", f.ttft_p50_s), String(format: "%9.4f", f.ttft_p99_s),
                        String(format: "%8.1f%%", f.cached_token_rate * 100), String(format: "%12d", f.device_hit_tokens),
                        String(format: "%11d", f.flash_hit_tokens),
                        "\(ByteSize(Int64(f.loaded_bytes)))".padding(toLength: 11, withPad: " ", startingAt: 0),
                        loadRate.padding(toLength: 10, withPad: " ", startingAt: 0),
                        String(format: "%8d", f.declined_loads),
                    ].joined(separator: " "))
            }
        }
        if !sweep.isEmpty {
            print("prefix tokens  KV bytes    TTFT recompute  TTFT load  TTFT auto  auto chose  auto/best  load GB/s")
            for row in sweep {
                print(
                    [
                        String(format: "%13d", row.prefix_tokens),
                        "\(ByteSize(Int64(row.kv_bytes)))".padding(toLength: 11, withPad: " ", startingAt: 0),
                        String(format: "%14.4f", row.ttft_recompute_s), String(format: "%10.4f", row.ttft_load_s),
                        String(format: "%10.4f", row.ttft_auto_s),
                        (row.auto_loaded ? "load" : "recompute").padding(toLength: 10, withPad: " ", startingAt: 0),
                        String(format: "%9.2f", row.auto_over_best), String(format: "%10.2f", row.load_gbps),
                    ].joined(separator: " "))
            }
        }
    }

    private func list<T>(_ text: String, _ parse: (String) -> T?) throws -> [T] {
        try text.split(separator: ",").map { item in
            let name = item.trimmingCharacters(in: .whitespaces)
            guard let value = parse(name) else { throw ValidationError("'\(name)' is not understood in '\(text)'") }
            return value
        }
    }
}
