import ArgumentParser
import Backend
import Models
import SynthModels

/// `hifc synth-model`: writes an HF model directory with random weights and a working tokenizer.
struct SynthModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth-model",
        abstract: "Write a Llama/Mistral/Qwen2/Qwen3/Gemma 3 model directory with random weights, for tests and benchmarks.")

    @Option(help: "Architecture: llama, mistral, qwen2, qwen3 or gemma3.")
    var arch: String = "llama"
    @Option(help: "Shape preset: tiny, small (about 100M parameters), 1b or 8b (Llama 3 8B shapes).")
    var preset: String = "tiny"
    @Option(help: "Override: transformer layers.") var layers: Int?
    @Option(help: "Override: hidden size.") var hidden: Int?
    @Option(help: "Override: MLP intermediate size.") var intermediate: Int?
    @Option(help: "Override: attention heads.") var heads: Int?
    @Option(name: .customLong("kv-heads"), help: "Override: key/value heads.") var kvHeads: Int?
    @Option(name: .customLong("head-dim"), help: "Override: elements per head.") var headDim: Int?
    @Option(help: "Override: vocabulary size (at least the tokenizer's).") var vocab: Int?
    @Option(help: "Weight dtype: bf16, f16 or f32.") var dtype: String = "bf16"
    @Option(help: "Seed of the random weights.") var seed: UInt64 = 0
    @Option(help: "Directory to write.") var out: String

    func run() throws {
        guard let architecture = ModelArchitecture.allCases.first(where: { $0.name == arch.lowercased() }) else {
            throw ValidationError("--arch must be one of \(ModelArchitecture.allCases.map(\.name).joined(separator: ", ")), not '\(arch)'")
        }
        guard let shape = SynthModel.Preset(rawValue: preset.lowercased()) else {
            throw ValidationError("--preset must be tiny, small, 1b or 8b, not '\(preset)'")
        }
        guard let weightType = TensorDType(name: dtype) else {
            throw ValidationError("--dtype must be bf16, f16 or f32, not '\(dtype)'")
        }
        var synth = SynthModel(architecture: architecture, preset: shape, dtype: weightType, seed: seed)
        var c = synth.config
        if let layers {
            c.layers = layers
            // The family's layer pattern at the new depth.
            c.layerTypes =
                architecture == .gemma3 ? SynthModel.gemmaLayerTypes(layers) : Array(repeating: c.layerTypes.first ?? .full, count: layers)
        }
        if let hidden {
            c.hiddenSize = hidden
            c.headDim = hidden / (heads ?? c.heads)
        }
        if let intermediate { c.intermediateSize = intermediate }
        if let heads {
            c.heads = heads
            c.headDim = c.hiddenSize / heads
        }
        if let kvHeads { c.kvHeads = kvHeads }
        if let headDim { c.headDim = headDim }
        if let vocab { c.vocabSize = vocab }
        for (name, value) in [
            ("layers", c.layers), ("hidden", c.hiddenSize), ("intermediate", c.intermediateSize),
            ("heads", c.heads), ("kv-heads", c.kvHeads), ("head-dim", c.headDim),
        ] where value <= 0 {
            throw ValidationError("--\(name) must be positive")
        }
        guard c.heads % c.kvHeads == 0 else { throw ValidationError("--heads must be a multiple of --kv-heads") }
        guard c.headDim % 2 == 0 else { throw ValidationError("the head dimension must be even") }
        synth.config = c
        let written = try synth.write(to: out)
        print(
            "wrote \(out): \(architecture.rawValue), \(written.layers) layers, hidden \(written.hiddenSize), "
                + "\(written.heads)/\(written.kvHeads) heads of \(written.headDim), vocab \(written.vocabSize), "
                + "\(written.parameterCount / 1_000_000)M parameters in \(dtype)")
    }
}
