import Backend
import Foundation

extension ModelConfig {
    /// The config a GGUF file's metadata describes (`<arch>.block_count`,
    /// `<arch>.embedding_length`, ...), with the tied head inferred from a missing `output.weight`.
    /// Metadata that changes the math and is not implemented (mixture of experts, YaRN, partial
    /// rotary) is refused naming the key.
    public init(gguf file: GGUFFile) throws(ModelError) {
        let architecture = try GGUFArchitecture(file: file)
        let path = file.path
        func key(_ suffix: String) -> String { architecture.name + "." + suffix }
        let hidden = try file.positiveInt(key("embedding_length"))
        let heads = try file.positiveInt(key("attention.head_count"))
        let kvHeads = try file.int(key("attention.head_count_kv")) ?? heads
        guard kvHeads > 0, heads % kvHeads == 0 else {
            throw .badConfig(key: key("attention.head_count_kv"), file: path, reason: "is \(kvHeads), which does not divide the \(heads) heads")
        }
        let headDim = try file.int(key("attention.key_length")) ?? hidden / heads
        guard headDim > 0, headDim % 2 == 0 else {
            throw .badConfig(key: key("attention.key_length"), file: path, reason: "should be positive and even, not \(headDim)")
        }
        if let valueLength = try file.int(key("attention.value_length")), valueLength != headDim {
            throw .badConfig(
                key: key("attention.value_length"), file: path, reason: "is \(valueLength), unlike the key length \(headDim); not supported")
        }
        if let rotary = try file.int(key("rope.dimension_count")), rotary != headDim {
            throw .badConfig(
                key: key("rope.dimension_count"), file: path, reason: "is \(rotary): rotary over part of a \(headDim)-wide head is not supported")
        }
        if let experts = try file.int(key("expert_count")), experts > 0 {
            throw .badConfig(key: key("expert_count"), file: path, reason: "is \(experts): mixture-of-experts models are not supported")
        }
        guard let embedding = file.tensors["token_embd.weight"], embedding.shape.count == 2 else {
            throw .missingTensor("token_embd.weight", directory: path)
        }
        let vocabSize = embedding.shape[0]
        if let stated = try file.int(key("vocab_size")), stated != vocabSize {
            throw .badConfig(key: key("vocab_size"), file: path, reason: "is \(stated), but token_embd.weight has \(vocabSize) rows")
        }
        let theta = try file.double(key("rope.freq_base")) ?? 10_000
        self.init(
            architecture: architecture.family, hiddenSize: hidden,
            intermediateSize: try file.positiveInt(key("feed_forward_length")),
            layers: try file.positiveInt(key("block_count")),
            heads: heads, kvHeads: kvHeads, headDim: headDim, vocabSize: vocabSize,
            rmsNormEpsilon: Float(try file.double(key("attention.layer_norm_rms_epsilon")) ?? 1e-5),
            ropeTheta: theta,
            ropeScaling: try Self.ropeScaling(file, architecture: architecture, headDim: headDim, theta: theta),
            maxPositions: try file.int(key("context_length")) ?? 4096,
            tieWordEmbeddings: file.tensors["output.weight"] == nil,
            attentionBias: file.tensors["blk.0.attn_q.bias"] != nil,
            bosTokenID: try file.int("tokenizer.ggml.bos_token_id"),
            eosTokenIDs: try file.int("tokenizer.ggml.eos_token_id").map { [$0] } ?? [])
    }

    /// The rope scaling from `<arch>.rope.scaling.*`, or Llama 3's from the per-frequency factors
    /// llama.cpp's converter stores in `rope_freqs.weight` instead.
    private static func ropeScaling(
        _ file: GGUFFile, architecture: GGUFArchitecture, headDim: Int, theta: Double
    ) throws(ModelError) -> RopeScaling? {
        let prefix = architecture.name + ".rope.scaling."
        let type = try file.string(prefix + "type") ?? "none"
        let original = try file.int(prefix + "original_context_length")
        if file.tensors["rope_freqs.weight"] != nil {
            guard type == "none" else {
                throw .badConfig(key: prefix + "type", file: file.path, reason: "is '\(type)' beside rope_freqs.weight; not supported")
            }
            return try llama3Scaling(file, headDim: headDim, theta: theta, originalContext: original)
        }
        switch type {
        case "none": return nil
        case "linear":
            guard let factor = try file.double(prefix + "factor"), factor > 0 else {
                throw .badConfig(key: prefix + "factor", file: file.path, reason: "should be a positive number for linear scaling")
            }
            return .linear(factor: factor)
        default:
            throw .badConfig(key: prefix + "type", file: file.path, reason: "is '\(type)'; supported: none, linear (and Llama 3's rope_freqs.weight)")
        }
    }

    /// Llama 3's scaling whose per-frequency factors equal `rope_freqs.weight` (llama.cpp divides
    /// each frequency by its factor). Llama 3.1 and 3.2 use low/high frequency factors 1 and 4
    /// over an original context of 8192; the factor is the largest one stored.
    private static func llama3Scaling(_ file: GGUFFile, headDim: Int, theta: Double, originalContext: Int?) throws(ModelError) -> RopeScaling {
        let name = "rope_freqs.weight"
        let stored: [Float]
        do {
            let tensor = try file.tensor(name).dense()
            guard tensor.count == headDim / 2 else {
                throw ModelError.tensorShape(name, file: file.path, expected: [headDim / 2], found: tensor.shape)
            }
            stored = (0..<tensor.count).map { tensor.float(at: $0) }
        } catch let error as ModelError {
            throw error
        } catch {
            throw .badGGUF(file.path, reason: "\(name): \(error)")
        }
        let factor = Double(stored.max() ?? 1)
        let plain = RotaryFrequencies.inverse(headDim: headDim, theta: theta, scaling: nil)
        for original in [originalContext, 8192].compactMap({ $0 }) {
            let candidate = RopeScaling.llama3(factor: factor, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: original)
            let scaled = RotaryFrequencies.inverse(headDim: headDim, theta: theta, scaling: candidate)
            let matches = zip(zip(plain, scaled), stored).allSatisfy { pair, factor in
                abs(Double(pair.0 / pair.1) - Double(factor)) <= 1e-3 * Double(factor)
            }
            if matches { return candidate }
        }
        throw .badGGUF(file.path, reason: "\(name) holds rotary factors that are not Llama 3's scaling (factor \(factor), 1, 4); not supported")
    }
}
