import ArgumentParser
import Backend
import Foundation
import HiFCCore
import Logging
import Models

/// `hifc generate`: loads a model on the CPU backend and streams a completion to stdout.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt with a model directory or GGUF file, streaming it to stdout.")

    @Option(help: "HF model directory (config.json, *.safetensors, tokenizer.json) or GGUF file.") var model: String
    @Option(help: "The prompt text.") var prompt: String
    @Flag(help: "Wrap the prompt as a user message in the model's chat template.") var chat = false
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.") var maxTokens: Int = 128
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 0
    @Option(name: .customLong("top-k"), help: "Keep only the k most likely tokens (0: all).") var topK: Int = 0
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass (1: all).") var topP: Float = 1
    @Option(help: "Random seed of the sampler.") var seed: UInt64?
    @Option(help: "Stop string (repeatable).") var stop: [String] = []
    @Option(name: .customLong("block-size"), help: "Tokens per KV block.") var blockSize: Int = 64
    @Flag(help: "Print token counts and speeds to stderr at the end.") var stats = false
    @Flag(name: .customLong("token-ids"), help: "Print the prompt's and the generated token ids to stderr (for comparisons with other engines).")
    var tokenIDs = false
    @Option(
        help: ArgumentHelp(
            "Write the logits after the prompt's last token to this file, little-endian f32 (for comparisons with other engines).",
            valueName: "file"))
    var logits: String?
    @Option(help: "auto (GPU 0 if there is one, else CPU), cpu, cuda or cuda:N.") var device: String = "auto"
    @Option(help: "CPU threads (default: the physical cores).") var threads: Int?
    @Flag(help: "Decode a GGUF's quantized weights to f32 at load instead of computing on the blocks (CPU).")
    var dequantize = false

    func run() throws {
        MallocTuning.keepFreedBlocksMapped()
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be 0 or more") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        guard blockSize > 0 else { throw ValidationError("--block-size must be positive") }
        var logger = Logger(label: "hifc.generate")
        logger.logLevel = .warning
        let backend = try BackendChoice.make(device, threads: threads, dequantize: dequantize, logger: logger)
        let loaded = try LoadedModel(directory: model, backend: backend, logger: logger)
        let tokens =
            chat
            ? loaded.encodeChat([ChatTurn(role: "user", content: prompt)])
            : loaded.tokenizer.encode(prompt)
        let params = SamplingParams(
            maxTokens: maxTokens, temperature: temperature, topK: topK, topP: topP,
            seed: seed, stop: stop)
        if let logits { try writePromptLogits(loaded, tokens, to: logits) }
        let generator = TextGenerator(model: loaded, blockTokens: blockSize)
        let result = try generator.generate(prompt: tokens, params: params) { delta in
            FileHandle.standardOutput.write(Data(delta.utf8))
        }
        print("")
        if tokenIDs {
            FileHandle.standardError.write(Data("prompt ids: \(tokens)\ngenerated ids: \(result.tokenIDs)\n".utf8))
        }
        if stats {
            let decodeRate = Double(result.tokenIDs.count) / max(result.decodeSeconds, 1e-9)
            let prefillRate = Double(tokens.count) / max(result.prefillSeconds, 1e-9)
            FileHandle.standardError.write(
                Data(
                    ("[\(backend.name)] prompt \(tokens.count) tokens at \(String(format: "%.1f", prefillRate)) tok/s, "
                        + "generated \(result.tokenIDs.count) at \(String(format: "%.1f", decodeRate)) tok/s, finish: \(result.finish.rawValue)\n")
                        .utf8))
        }
    }

    /// One prefill of `tokens` on a KV pool of its own, its last row of logits written raw.
    private func writePromptLogits(_ loaded: LoadedModel, _ tokens: [Int], to path: String) throws {
        let blocks = (tokens.count + blockSize - 1) / blockSize
        let pool = try loaded.model.makeKVCachePool(blockTokens: blockSize, blocks: blocks)
        let sequence = ForwardSequence(tokens: tokens, startPosition: 0, blockTable: Array(0..<blocks))
        let row = try loaded.model.forward(ForwardBatch([sequence]), kv: pool)[0]
        let data = row.withUnsafeBufferPointer { Data(buffer: $0) }
        try data.write(to: URL(fileURLWithPath: path))
    }
}
