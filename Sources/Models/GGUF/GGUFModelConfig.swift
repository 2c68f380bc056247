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
        let layers = try file.positiveInt(key("block_count"))
        let gemma =
            architecture.family == .gemma3
            ? try Self.gemma3Attention(file, layers: layers, hidden: hidden, heads: heads, headDim: headDim) : nil
        self.init(
            architecture: architecture.family, hiddenSize: hidden,
            intermediateSize: try file.positiveInt(key("feed_forward_length")),
            layers: layers,
            heads: heads, kvHeads: kvHeads, headDim: headDim, vocabSize: vocabSize,
            rmsNormEpsilon: Float(try file.double(key("attention.layer_norm_rms_epsilon")) ?? 1e-5),
            ropeTheta: theta,
            ropeScaling: try Self.ropeScaling(file, architecture: architecture, headDim: headDim, theta: theta),
            maxPositions: try file.int(key("context_length")) ?? 4096,
            tieWordEmbeddings: file.tensors["output.weight"] == nil,
            attentionBias: file.tensors["blk.0.attn_q.bias"] != nil,
            bosTokenID: try file.int("tokenizer.ggml.bos_token_id"),
            eosTokenIDs: try file.int("tokenizer.ggml.eos_token_id").map { [$0] } ?? [],
            slidingWindow: gemma?.slidingWindow, layerTypes: gemma?.layerTypes, localRopeTheta: gemma?.localRopeTheta,
            queryPreAttentionScalar: gemma?.queryPreAttentionScalar, finalLogitSoftcapping: gemma?.finalLogitSoftcapping)
    }

    /// What Gemma 3's attention needs beyond the common keys. The file states the window
    /// (`gemma3.attention.sliding_window`) and, when set, the final softcap; llama.cpp fixes the
    /// rest for the architecture (`llama_load_hparams_gemma3` / `LLM_ARCH_GEMMA3` in
    /// llama-model.cpp), and so does this:
    ///
    /// - every 6th layer global, the others sliding (`set_swa_pattern(6)`), unless the file says
    ///   otherwise in `gemma3.attention.sliding_window_pattern` (a period, or one flag a layer);
    /// - the sliding layers' rotary base 10000, unscaled (`rope_freq_base_train_swa`), unless
    ///   `gemma3.rope.freq_base_swa` is set;
    /// - attention scaled by `1/sqrt(head_dim)`, except for the 27B model (62 layers), scaled by
    ///   `1/sqrt(hidden/heads)`: HF's `query_pre_attn_scalar` of 256 and 168.
    private static func gemma3Attention(
        _ file: GGUFFile, layers: Int, hidden: Int, heads: Int, headDim: Int
    ) throws(ModelError) -> (
        slidingWindow: Int?, layerTypes: [LayerAttention], localRopeTheta: Double, queryPreAttentionScalar: Double,
        finalLogitSoftcapping: Double?
    ) {
        let prefix = "gemma3."
        if let cap = try file.double(prefix + "attn_logit_softcapping"), cap > 0 {
            throw .badConfig(
                key: prefix + "attn_logit_softcapping", file: file.path, reason: "is \(cap): attention logit softcapping is not supported")
        }
        var window = try file.int(prefix + "attention.sliding_window")
        if let w = window, w < 0 {
            throw .badConfig(key: prefix + "attention.sliding_window", file: file.path, reason: "should not be negative, not \(w)")
        }
        if window == 0 { window = nil }
        var types = [LayerAttention](repeating: .full, count: layers)
        if window != nil {
            let patternKey = prefix + "attention.sliding_window_pattern"
            switch file.metadata[patternKey] {
            case nil:
                types = (0..<layers).map { $0 % 6 < 5 ? .sliding : .full }
            case .some(let value):
                if let period = value.intValue {
                    guard period > 0 else {
                        throw .badConfig(key: patternKey, file: file.path, reason: "should be a positive period, not \(period)")
                    }
                    types = (0..<layers).map { $0 % period < period - 1 ? .sliding : .full }
                } else if let flags = value.arrayValue, flags.count == layers {
                    types = try flags.map { flag throws(ModelError) -> LayerAttention in
                        if let sliding = flag.boolValue { return sliding ? .sliding : .full }
                        guard let sliding = flag.intValue else {
                            throw .badConfig(key: patternKey, file: file.path, reason: "holds a \(flag.typeName), not flags")
                        }
                        return sliding != 0 ? .sliding : .full
                    }
                } else {
                    throw .badConfig(key: patternKey, file: file.path, reason: "should be a period or one flag for each of the \(layers) layers")
                }
            }
        }
        let cap = try file.double(prefix + "final_logit_softcapping")
        return (
            window, types, try file.double(prefix + "rope.freq_base_swa") ?? 10_000,
            Double(layers == 62 ? hidden / heads : headDim), cap.flatMap { $0 > 0 ? $0 : nil }
        )
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
