import ArgumentParser
import Foundation
import HiFCBench
import HiFCCore

/// `hifc bench kv-dtype`: the accuracy of a KV dtype (fp8) against the backend's own or bf16, on
/// one model and one text (`KVDTypeAccuracy`).
struct BenchKVDTypeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv-dtype",
        abstract: "Compare a model's logits, perplexity and greedy output with an fp8 KV cache against its own KV dtype or bf16.")

    @Option(help: "A model directory or GGUF file, or synth:tiny|small|1b|8b for a synthetic Llama.") var model: String
    @Option(help: "A text file to score (e.g. /usr/share/common-licenses/GPL-3).") var text: String
    @Option(name: .customLong("score-tokens"), help: "Tokens of the text scored, one step each.") var scoreTokens: Int = 1024
    @Option(name: .customLong("prompt-tokens"), help: "Tokens of the text before the greedy continuation.") var promptTokens: Int = 32
    @Option(name: .customLong("greedy-tokens"), help: "Tokens generated greedily with each dtype.") var greedyTokens: Int = 128
    @Option(name: .customLong("block-size"), help: "Tokens per KV block.") var blockSize: Int = 16
    @Option(name: .customLong("kv-dtype"), help: "The KV dtype measured: bf16 or fp8.") var kvDType: KVDTypeChoice = .fp8
    @Option(help: "The KV dtype measured against: auto (the backend's own: f32 on the CPU, bf16 on CUDA) or bf16.")
    var reference: KVDTypeChoice = .auto
    @Option(help: "cpu (the default here), auto, cuda or cuda:N.") var device: String = "cpu"
    @Flag(help: "Print the figures as one JSON object.") var json = false

    func run() throws {
        guard scoreTokens >= 2, promptTokens >= 1, greedyTokens >= 1, blockSize >= 1 else {
            throw ValidationError("--score-tokens must be at least 2; --prompt-tokens, --greedy-tokens and --block-size positive")
        }
        guard let contents = FileManager.default.contents(atPath: text), let string = String(data: contents, encoding: .utf8) else {
            throw ValidationError("--text \(text): cannot read it as UTF-8 text")
        }
        let loaded = try BenchModelSource.load(model, device: device, context: max(scoreTokens, promptTokens + greedyTokens))
        let tokens = Array(loaded.tokenizer.encode(string).prefix(scoreTokens))
        guard tokens.count >= max(2, promptTokens) else {
            throw ValidationError("--text \(text) has \(tokens.count) tokens, fewer than --prompt-tokens \(promptTokens)")
        }
        let start = Date()
        let figures = try KVDTypeAccuracy(model: loaded.model, blockTokens: blockSize, reference: reference, candidate: kvDType)
            .run(text: tokens, promptTokens: promptTokens, greedyTokens: greedyTokens)
        let seconds = Date().timeIntervalSince(start)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(figures), as: UTF8.self))
            return
        }
        print(
            "model \(loaded.name) (\(loaded.config.parameterCount / 1_000_000)M parameters) on \(loaded.model.backend.name); text \(text); \(String(format: "%.0f", seconds)) s"
        )
        print("KV \(figures.candidate) against \(figures.reference), \(figures.scoredTokens) tokens scored one step each:")
        print(
            String(
                format: "  logits: max relative error %.4f, mean %.5f (max |Δ| / max |logit| per position)", figures.maxLogitRelativeError,
                figures.meanLogitRelativeError))
        print(
            String(
                format: "  perplexity: %.4f (%@) against %.4f (%@): %+.3f%%", figures.candidatePerplexity, figures.candidate,
                figures.referencePerplexity, figures.reference, figures.perplexityChange * 100))
        print(
            "  greedy: \(figures.greedySame) of \(figures.greedyTokens) tokens the same after a \(figures.promptTokens)-token prompt; "
                + (figures.firstDivergence.map { "first difference at token \($0)" } ?? "no difference"))
        for g in figures.granularity {
            print(String(format: "  E4M3 with a scale per %@: relative RMS error of K %.4f, of V %.4f", g.granularity, g.keyError, g.valueError))
        }
    }
}
