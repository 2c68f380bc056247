import Backend
import Foundation
import Models

/// Writes a valid HF model directory with random weights, for tests and benchmarks at real shapes
/// without downloading a model: `config.json`, `model.safetensors`, `generation_config.json`, and
/// a working tokenizer (`tokenizer.json`, `tokenizer_config.json`) from `SynthTokenizer`.
///
/// Weights are uniform with the standard deviation `1/sqrt(fan_in)`, norms near 1, so activations
/// stay finite at any depth; each tensor's values depend only on the seed and its name.
public struct SynthModel: Sendable {
    /// Named shapes: `tiny` for tests, `small` (about 100M parameters) for CPU benchmarks, `1b`
    /// and `8b` for the real shapes of Llama 3.2 1B and Llama 3 8B (or the family's nearest).
    public enum Preset: String, Sendable, CaseIterable {
        case tiny, small
        case oneB = "1b"
        case eightB = "8b"
    }

    /// The model's configuration (its vocabulary is at least the tokenizer's).
    public var config: ModelConfig
    /// Element type of the weights on disk.
    public var dtype: TensorDType
    /// Seed of the weights.
    public var seed: UInt64

    /// The preset's shapes for `architecture`.
    public init(architecture: ModelArchitecture, preset: Preset, dtype: TensorDType = .bfloat16, seed: UInt64 = 0) {
        var c: ModelConfig
        switch (preset, architecture) {
        case (.tiny, .qwen3):
            // A head dim other than hidden / heads, as Qwen3 states it.
            c = ModelConfig(
                architecture: .qwen3, hiddenSize: 64, intermediateSize: 176, layers: 2, heads: 4, kvHeads: 2, headDim: 32,
                vocabSize: 0, ropeTheta: 1_000_000, maxPositions: 2048)
        case (.tiny, .gemma3):
            // Four layers alternating sliding (a window of 8) and global, each with its rotary
            // base, the global one scaled; a query scalar other than the head dim; soft-capped logits
            // (a cap that is not a whole number, since transformers refuses an integer there).
            c = ModelConfig(
                architecture: .gemma3, hiddenSize: 64, intermediateSize: 176, layers: 4, heads: 4, kvHeads: 1, headDim: 32,
                vocabSize: 0, ropeTheta: 1_000_000, ropeScaling: .linear(factor: 8), maxPositions: 2048, tieWordEmbeddings: true,
                slidingWindow: 8, layerTypes: [.sliding, .full, .sliding, .full], localRopeTheta: 10_000,
                queryPreAttentionScalar: 24, finalLogitSoftcapping: 7.5)
        case (.small, .gemma3):
            // Gemma 3 270M.
            c = ModelConfig(
                architecture: .gemma3, hiddenSize: 640, intermediateSize: 2048, layers: 18, heads: 4, kvHeads: 1, headDim: 256,
                vocabSize: 262_144, ropeTheta: 1_000_000, maxPositions: 32_768, tieWordEmbeddings: true, slidingWindow: 512,
                layerTypes: Self.gemmaLayerTypes(18), localRopeTheta: 10_000, queryPreAttentionScalar: 256)
        case (.oneB, .gemma3):
            // Gemma 3 1B.
            c = ModelConfig(
                architecture: .gemma3, hiddenSize: 1152, intermediateSize: 6912, layers: 26, heads: 4, kvHeads: 1, headDim: 256,
                vocabSize: 262_144, ropeTheta: 1_000_000, maxPositions: 32_768, tieWordEmbeddings: true, slidingWindow: 512,
                layerTypes: Self.gemmaLayerTypes(26), localRopeTheta: 10_000, queryPreAttentionScalar: 256)
        case (.eightB, .gemma3):
            // Gemma 3 12B's text model.
            c = ModelConfig(
                architecture: .gemma3, hiddenSize: 3840, intermediateSize: 15_360, layers: 48, heads: 16, kvHeads: 8, headDim: 256,
                vocabSize: 262_208, ropeTheta: 1_000_000, ropeScaling: .linear(factor: 8), maxPositions: 131_072,
                tieWordEmbeddings: true, slidingWindow: 1024, layerTypes: Self.gemmaLayerTypes(48), localRopeTheta: 10_000,
                queryPreAttentionScalar: 256)
        case (.oneB, .qwen3):
            // Qwen3 1.7B.
            c = ModelConfig(
                architecture: .qwen3, hiddenSize: 2048, intermediateSize: 6144, layers: 28, heads: 16, kvHeads: 8, headDim: 128,
                vocabSize: 151_936, ropeTheta: 1_000_000, maxPositions: 40_960, tieWordEmbeddings: true)
        case (.eightB, .qwen3):
            // Qwen3 8B.
            c = ModelConfig(
                architecture: .qwen3, hiddenSize: 4096, intermediateSize: 12_288, layers: 36, heads: 32, kvHeads: 8, headDim: 128,
                vocabSize: 151_936, ropeTheta: 1_000_000, maxPositions: 40_960)
        case (.tiny, _):
            c = ModelConfig(
                architecture: architecture, hiddenSize: 64, intermediateSize: 176, layers: 2, heads: 4,
                kvHeads: 2, vocabSize: 0, ropeTheta: 10_000, maxPositions: 2048)
        case (.small, _):
            c = ModelConfig(
                architecture: architecture, hiddenSize: 768, intermediateSize: 2048, layers: 12, heads: 12,
                kvHeads: 4, vocabSize: 32_000, ropeTheta: 10_000, maxPositions: 4096, tieWordEmbeddings: true)
        case (.oneB, .qwen2):
            c = ModelConfig(
                architecture: .qwen2, hiddenSize: 1536, intermediateSize: 8960, layers: 28, heads: 12,
                kvHeads: 2, vocabSize: 151_936, ropeTheta: 1_000_000, maxPositions: 32_768,
                tieWordEmbeddings: true)
        case (.oneB, _):
            c = ModelConfig(
                architecture: architecture, hiddenSize: 2048, intermediateSize: 8192, layers: 16, heads: 32,
                kvHeads: 8, headDim: 64, vocabSize: architecture == .mistral ? 32_000 : 128_256,
                ropeTheta: 500_000, maxPositions: 131_072, tieWordEmbeddings: true)
        case (.eightB, .qwen2):
            c = ModelConfig(
                architecture: .qwen2, hiddenSize: 3584, intermediateSize: 18_944, layers: 28, heads: 28,
                kvHeads: 4, vocabSize: 152_064, ropeTheta: 1_000_000, maxPositions: 32_768)
        case (.eightB, _):
            c = ModelConfig(
                architecture: architecture, hiddenSize: 4096, intermediateSize: 14_336, layers: 32, heads: 32,
                kvHeads: 8, vocabSize: architecture == .mistral ? 32_000 : 128_256,
                ropeTheta: architecture == .mistral ? 1_000_000 : 500_000,
                maxPositions: architecture == .mistral ? 32_768 : 131_072)
        }
        if architecture == .llama, preset == .tiny || preset == .oneB || preset == .eightB {
            // Llama 3.1's rope scaling: what Llama 3.2 1B and Llama 3.1 8B (the base of the paper's
            // DeepSeek-R1-Distill-Llama-8B, whose 8.7K-token GovReport prompts need the long context) ship with.
            c.ropeScaling = .llama3(
                factor: preset == .oneB ? 32 : 8, lowFrequencyFactor: 1, highFrequencyFactor: 4,
                originalMaxPositions: preset == .tiny ? 64 : 8192)
        }
        if architecture == .qwen2, preset == .tiny { c.tieWordEmbeddings = true }
        c.rmsNormEpsilon = [.qwen2, .qwen3, .gemma3].contains(architecture) ? 1e-6 : 1e-5
        config = c
        self.dtype = dtype
        self.seed = seed
    }

    /// Gemma 3's layer pattern: five sliding layers, then a global one.
    public static func gemmaLayerTypes(_ layers: Int) -> [LayerAttention] {
        (0..<layers).map { ($0 + 1) % 6 == 0 ? .full : .sliding }
    }

    /// A model of `config` (whose `vocabSize` may be 0: the tokenizer's size is used).
    public init(config: ModelConfig, dtype: TensorDType, seed: UInt64) {
        self.config = config
        self.dtype = dtype
        self.seed = seed
    }

    /// Writes the directory (created if needed) and returns the config as written.
    @discardableResult
    public func write(to directory: String) throws(ModelError) -> ModelConfig {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch { throw .unreadable(directory, reason: "cannot create the directory: \(error)") }
        let tokenizer = SynthTokenizer(architecture: config.architecture)
        var c = config
        // The embedding covers the tokenizer; round up to 64 rows as real checkpoints do.
        c.vocabSize = max(c.vocabSize, (tokenizer.vocabularySize + 63) / 64 * 64)
        c.bosTokenID = tokenizer.bosTokenID
        c.eosTokenIDs = tokenizer.eosTokenIDs
        c.torchDType = dtype.torchName
        try tokenizer.write(to: directory)
        try writeJSON(c.jsonObject(), to: directory + "/config.json")
        var generation: [String: Any] = ["do_sample": false]
        if let bos = tokenizer.bosTokenID { generation["bos_token_id"] = bos }
        generation["eos_token_id"] = tokenizer.eosTokenIDs.count == 1 ? tokenizer.eosTokenIDs[0] : tokenizer.eosTokenIDs
        try writeJSON(generation, to: directory + "/generation_config.json")
        try SafeTensorsWriter.write(tensors(for: c), dtype: dtype, to: directory + "/model.safetensors")
        return c
    }

    private func tensors(for c: ModelConfig) -> [SafeTensorsWriter.Tensor] {
        let h = c.hiddenSize
        let d = c.headDim
        let qOut = c.heads * d
        let kvOut = c.kvHeads * d
        let inter = c.intermediateSize
        var list: [SafeTensorsWriter.Tensor] = []
        func uniform(_ name: String, _ shape: [Int], std: Float, mean: Float = 0) {
            let key = seed ^ Self.hash(name)
            let halfWidth = std * 3.0.squareRoot().asFloat
            list.append(
                SafeTensorsWriter.Tensor(name: name, shape: shape) { buffer, start in
                    for i in 0..<buffer.count {
                        buffer[i] = mean + halfWidth * Self.uniformSigned(key, UInt64(start + i))
                    }
                })
        }
        let embeddingStd: Float = c.tieWordEmbeddings ? 2 / Float(h).squareRoot() : 1
        uniform("model.embed_tokens.weight", [c.vocabSize, h], std: embeddingStd)
        for i in 0..<c.layers {
            let p = "model.layers.\(i)."
            // Gemma's norms scale by 1 + w: their weights are stored as offsets from 1.
            let normMean: Float = c.architecture == .gemma3 ? 0 : 1
            uniform(p + "input_layernorm.weight", [h], std: 0.05, mean: normMean)
            uniform(p + "self_attn.q_proj.weight", [qOut, h], std: 1 / Float(h).squareRoot())
            uniform(p + "self_attn.k_proj.weight", [kvOut, h], std: 1 / Float(h).squareRoot())
            uniform(p + "self_attn.v_proj.weight", [kvOut, h], std: 1 / Float(h).squareRoot())
            if c.attentionBias {
                uniform(p + "self_attn.q_proj.bias", [qOut], std: 0.1)
                uniform(p + "self_attn.k_proj.bias", [kvOut], std: 0.1)
                uniform(p + "self_attn.v_proj.bias", [kvOut], std: 0.1)
            }
            if c.architecture.normalizesQueryKeyHeads {
                uniform(p + "self_attn.q_norm.weight", [d], std: 0.1, mean: normMean)
                uniform(p + "self_attn.k_norm.weight", [d], std: 0.1, mean: normMean)
            }
            uniform(p + "self_attn.o_proj.weight", [h, qOut], std: 1 / Float(qOut).squareRoot())
            uniform(p + "post_attention_layernorm.weight", [h], std: 0.05, mean: normMean)
            if c.architecture == .gemma3 {
                uniform(p + "pre_feedforward_layernorm.weight", [h], std: 0.05, mean: normMean)
                uniform(p + "post_feedforward_layernorm.weight", [h], std: 0.05, mean: normMean)
            }
            uniform(p + "mlp.gate_proj.weight", [inter, h], std: 1 / Float(h).squareRoot())
            uniform(p + "mlp.up_proj.weight", [inter, h], std: 1 / Float(h).squareRoot())
            uniform(p + "mlp.down_proj.weight", [h, inter], std: 1 / Float(inter).squareRoot())
        }
        uniform("model.norm.weight", [h], std: 0.05, mean: c.architecture == .gemma3 ? 0 : 1)
        if !c.tieWordEmbeddings {
            uniform("lm_head.weight", [c.vocabSize, h], std: 2 / Float(h).squareRoot())
        }
        return list
    }

    /// FNV-1a of a tensor name, so each tensor draws its own stream.
    static func hash(_ name: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return h
    }

    /// A uniform value in [-1, 1) that depends only on `key` and `index` (SplitMix64's finalizer),
    /// so a tensor can be generated in any order, a slice at a time.
    @inline(__always)
    static func uniformSigned(_ key: UInt64, _ index: UInt64) -> Float {
        var z = key &+ (index &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(z >> 40) * 0x1p-23 - 1
    }
}

extension Double {
    fileprivate var asFloat: Float { Float(self) }
}

/// Writes `object` as pretty JSON to `path`.
func writeJSON(_ object: Any, to path: String) throws(ModelError) {
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) else {
        throw .unreadable(path, reason: "could not encode JSON")
    }
    guard FileManager.default.createFile(atPath: path, contents: data) else {
        throw .unreadable(path, reason: "cannot write the file")
    }
}
