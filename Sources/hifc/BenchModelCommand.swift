import ArgumentParser
import Backend
import Foundation
import HiFCBench
import HiFCCore
import Logging
import Models

/// `hifc bench model`: prefill and decode tokens/s of a model, and its decode step time, on the CPU or a GPU.
struct BenchModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Measure prefill and decode tokens/s and the decode step time of a model directory or GGUF file.")

    @Option(help: "HF model directory or GGUF file.") var model: String
    @Option(help: "Batch sizes to measure, comma-separated.") var batch: String = "1,8"
    @Option(name: .customLong("prompt-tokens"), help: "Prompt tokens per sequence.") var promptTokens: Int = 128
    @Option(name: .customLong("decode-tokens"), help: "Tokens generated per sequence.") var decodeTokens: Int = 32
    @Option(name: .customLong("block-size"), help: "Tokens per KV block.") var blockSize: Int = 64
    @Flag(name: .customLong("no-blas"), help: "Do every product with the C kernels even when a BLAS library is found.")
    var noBLAS = false
    @Option(help: "CPU threads (default: the physical cores).") var threads: Int?
    @Flag(help: "Decode a GGUF's quantized weights to f32 at load instead of computing on the blocks (CPU).")
    var dequantize = false
    @Flag(help: "Print one JSON object per measurement instead of a table.") var json = false
    @Option(help: "cpu (the default here), auto, cuda or cuda:N.") var device: String = "cpu"
    @Option(name: .customLong("kv-dtype"), help: "KV cache element type: auto (the backend's own), bf16 or fp8.")
    var kvDType: KVDTypeChoice = .auto
    @Option(
        name: .customLong("overlap-steps"),
        help: "Launch each decode step behind the one before it, its tokens fed on the device, as the server does: auto (on a GPU), on or off.")
    var overlapSteps: StepOverlap = .auto
    @Flag(help: "On the CPU backend, also print where the decode steps' time went, op by op.") var profile = false
    @Option(
        name: .customLong("max-batch-tokens"),
        help: "Most prompt tokens computed in one prefill step, as the server's chunked prefill (default: every prompt in one step).")
    var maxBatchTokens: Int?
    @Option(help: "Draw each decode step's tokens at this temperature, as the backend draws a sampled request's (0: greedy).")
    var temperature: Float = 0
    @Option(name: .customLong("top-p"), help: "With --temperature, the draws' top-p nucleus.") var topP: Float = 1

    func run() throws {
        MallocTuning.keepFreedBlocksMapped()
        let batches = batch.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !batches.isEmpty, batches.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--batch must list positive batch sizes, e.g. 1,8")
        }
        guard promptTokens > 0, decodeTokens > 0 else {
            throw ValidationError("--prompt-tokens and --decode-tokens must be positive")
        }
        guard temperature >= 0, temperature.isFinite, topP > 0, topP <= 1 else {
            throw ValidationError("--temperature must be 0 or more and --top-p in (0, 1], got \(temperature) and \(topP)")
        }
        if let maxBatchTokens, maxBatchTokens <= 0 {
            throw ValidationError("--max-batch-tokens must be positive, got \(maxBatchTokens)")
        }
        let backend = try BackendChoice.make(device, threads: threads, blas: !noBLAS, dequantize: dequantize)
        let loadStart = Date()
        let loaded = try LoadedModel(directory: model, backend: backend)
        let loadSeconds = Date().timeIntervalSince(loadStart)
        if !json {
            print(
                "model \(model): \(loaded.config.architecture.rawValue), \(loaded.config.parameterCount / 1_000_000)M parameters; "
                    + "backend \(backend.name); KV \(kvDType.resolved(backendDefault: backend.kvDType).rawValue); loaded in \(String(format: "%.2f", loadSeconds)) s; "
                    + "\(ProcessInfo.processInfo.activeProcessorCount) logical cores")
        }
        let bench = ModelBenchmark(
            model: loaded.model, blockTokens: blockSize, kvDType: kvDType, stepOverlap: overlapSteps, profilesDecode: profile,
            prefillStepTokens: maxBatchTokens, decodeDraws: temperature > 0 ? (temperature, topP) : nil)
        for b in batches {
            let figures = try bench.run(batch: b, promptTokens: promptTokens, decodeTokens: decodeTokens)
            if json {
                print(
                    #"{"engine":"hifc","backend":"\#(backend.name)","batch":\#(b),"prompt_tokens":\#(promptTokens),"decode_tokens":\#(decodeTokens),"prefill_steps":\#(figures.prefillSteps),"kv_dtype":"\#(kvDType.rawValue)","temperature":\#(temperature),"prefill_tok_s":\#(figures.prefillTokensPerSecond),"decode_tok_s":\#(figures.decodeTokensPerSecond),"decode_step_ms":\#(figures.decodeStepMilliseconds),"decode_step_bytes":\#(figures.decodeStepBytes),"steps_launched_ahead":\#(figures.launchedAhead)}"#
                )
            } else {
                print(figures)
            }
            if profile { print(Self.profileTable(figures)) }
        }
    }

    /// The decode steps' time by op, and what no op accounts for.
    static func profileTable(_ figures: ModelBenchmark.Figures) -> String {
        let steps = Double(figures.decodeTokens)
        let stepMilliseconds = String(format: "%.3f", figures.decodeSeconds * 1000 / steps)
        var lines = ["  decode time by op (\(figures.decodeTokens) steps, \(stepMilliseconds) ms a step):"]
        func line(_ op: String, _ seconds: Double, _ detail: String) {
            let share = String(format: "%8.3f ms a step  %5.1f%%  ", seconds * 1000 / steps, 100 * seconds / figures.decodeSeconds)
            lines.append("    " + op.padding(toLength: 24, withPad: " ", startingAt: 0) + share + detail)
        }
        for entry in figures.decodeProfile {
            let calls = Double(max(entry.calls, 1))
            line(
                entry.op, entry.seconds,
                String(
                    format: "%.0f calls a step, %.0f%% on the pool, %.1f chunks and %.1f us a call, %.1f us serial before it",
                    Double(entry.calls) / steps, 100 * Double(entry.pooledCalls) / calls, Double(entry.chunks) / calls,
                    entry.seconds * 1e6 / calls, entry.secondsBefore * 1e6 / calls))
        }
        let counted = figures.decodeProfile.map(\.seconds).reduce(0, +)
        line("outside the ops", figures.decodeSeconds - counted, "serial: embedding, sampling, the Swift and C between the ops' parallel calls")
        return lines.joined(separator: "\n")
    }
}
