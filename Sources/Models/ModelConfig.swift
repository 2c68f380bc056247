import Foundation

/// The three Llama-family architectures HiFC runs: one forward pass, small differences in
/// config (Qwen2 has q/k/v biases; Mistral's sliding window is not applied, see README).
public enum ModelArchitecture: String, Sendable, CaseIterable {
    case llama = "LlamaForCausalLM"
    case mistral = "MistralForCausalLM"
    case qwen2 = "Qwen2ForCausalLM"

    /// The `model_type` `config.json` carries for it.
    public var modelType: String {
        switch self {
        case .llama: return "llama"
        case .mistral: return "mistral"
        case .qwen2: return "qwen2"
        }
    }
}

/// How rotary position frequencies are scaled for long contexts.
public enum RopeScaling: Sendable, Hashable {
    /// Llama 3.1's piecewise scaling (`rope_type: llama3`).
    case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalMaxPositions: Int)
    /// Position interpolation (`rope_type: linear`): every frequency divided by `factor`.
    case linear(factor: Double)
}

/// The parts of an HF `config.json` the Llama-family forward pass needs.
public struct ModelConfig: Sendable, Hashable {
    public var architecture: ModelArchitecture
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var vocabSize: Int
    public var rmsNormEpsilon: Float
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling?
    public var maxPositions: Int
    public var tieWordEmbeddings: Bool
    /// Whether q/k/v projections have biases (Qwen2 always; Llama when `attention_bias`).
    public var attentionBias: Bool
    /// The dtype the weights were saved in (`torch_dtype`), when stated.
    public var torchDType: String?
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]

    /// A config from its parts (as `synth-model` builds one).
    public init(
        architecture: ModelArchitecture, hiddenSize: Int, intermediateSize: Int, layers: Int, heads: Int,
        kvHeads: Int, headDim: Int? = nil, vocabSize: Int, rmsNormEpsilon: Float = 1e-5,
        ropeTheta: Double = 10_000, ropeScaling: RopeScaling? = nil, maxPositions: Int = 4096,
        tieWordEmbeddings: Bool = false, attentionBias: Bool? = nil, torchDType: String? = nil,
        bosTokenID: Int? = nil, eosTokenIDs: [Int] = []
    ) {
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim ?? hiddenSize / heads
        self.vocabSize = vocabSize
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.maxPositions = maxPositions
        self.tieWordEmbeddings = tieWordEmbeddings
        self.attentionBias = attentionBias ?? (architecture == .qwen2)
        self.torchDType = torchDType
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
    }

    /// Reads `config.json` at `path`.
    public init(contentsOf path: String) throws(ModelError) {
        let json = try JSONFile(path: path)
        guard let name = (json.object["architectures"] as? [String])?.first else {
            throw .badConfig(key: "architectures", file: path, reason: "is missing")
        }
        guard let architecture = ModelArchitecture(rawValue: name) else {
            throw .unsupportedArchitecture(name, file: path)
        }
        let hidden = try json.positiveInt("hidden_size")
        let heads = try json.positiveInt("num_attention_heads")
        let kvHeads = try json.optionalInt("num_key_value_heads") ?? heads
        guard kvHeads > 0, heads % kvHeads == 0 else {
            throw .badConfig(
                key: "num_key_value_heads", file: path,
                reason: "is \(kvHeads), which does not divide num_attention_heads \(heads)")
        }
        let headDim = try json.optionalInt("head_dim") ?? hidden / heads
        guard headDim > 0, headDim % 2 == 0 else {
            throw .badConfig(key: "head_dim", file: path, reason: "should be positive and even, not \(headDim)")
        }
        var scaling: RopeScaling?
        if let rope = json.object["rope_scaling"] as? [String: Any] {
            let sub = JSONFile(path: path, object: rope)
            let kind = sub.optionalString("rope_type") ?? sub.optionalString("type") ?? "default"
            switch kind {
            case "default": scaling = nil
            case "llama3":
                scaling = .llama3(
                    factor: try sub.optionalDouble("factor") ?? 8,
                    lowFrequencyFactor: try sub.optionalDouble("low_freq_factor") ?? 1,
                    highFrequencyFactor: try sub.optionalDouble("high_freq_factor") ?? 4,
                    originalMaxPositions: try sub.optionalInt("original_max_position_embeddings") ?? 8192)
            case "linear":
                scaling = .linear(factor: try sub.optionalDouble("factor") ?? 1)
            default:
                throw .badConfig(
                    key: "rope_scaling", file: path,
                    reason: "has type '\(kind)'; supported: llama3, linear, default")
            }
        }
        self.init(
            architecture: architecture,
            hiddenSize: hidden,
            intermediateSize: try json.positiveInt("intermediate_size"),
            layers: try json.positiveInt("num_hidden_layers"),
            heads: heads, kvHeads: kvHeads, headDim: headDim,
            vocabSize: try json.positiveInt("vocab_size"),
            rmsNormEpsilon: Float(try json.optionalDouble("rms_norm_eps") ?? 1e-6),
            ropeTheta: try json.optionalDouble("rope_theta") ?? 10_000,
            ropeScaling: scaling,
            maxPositions: try json.optionalInt("max_position_embeddings") ?? 4096,
            tieWordEmbeddings: try json.optionalBool("tie_word_embeddings") ?? false,
            attentionBias: architecture == .qwen2 ? true : (try json.optionalBool("attention_bias") ?? false),
            torchDType: json.optionalString("torch_dtype") ?? json.optionalString("dtype"),
            bosTokenID: try json.optionalInt("bos_token_id"),
            eosTokenIDs: json.intList("eos_token_id"))
    }

    /// The `config.json` document HF transformers reads for this config.
    public func jsonObject() -> [String: Any] {
        var object: [String: Any] = [
            "architectures": [architecture.rawValue],
            "model_type": architecture.modelType,
            "hidden_size": hiddenSize,
            "intermediate_size": intermediateSize,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": kvHeads,
            "head_dim": headDim,
            "vocab_size": vocabSize,
            "rms_norm_eps": Double(rmsNormEpsilon),
            "rope_theta": ropeTheta,
            "max_position_embeddings": maxPositions,
            "tie_word_embeddings": tieWordEmbeddings,
            "hidden_act": "silu",
            "use_cache": true,
        ]
        if architecture != .qwen2 { object["attention_bias"] = attentionBias }
        if architecture == .qwen2 { object["use_sliding_window"] = false }
        if let torchDType { object["torch_dtype"] = torchDType }
        if let bosTokenID { object["bos_token_id"] = bosTokenID }
        if eosTokenIDs.count == 1 { object["eos_token_id"] = eosTokenIDs[0] }
        if eosTokenIDs.count > 1 { object["eos_token_id"] = eosTokenIDs }
        switch ropeScaling {
        case .llama3(let factor, let low, let high, let original):
            object["rope_scaling"] =
                [
                    "rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                    "high_freq_factor": high, "original_max_position_embeddings": original,
                ] as [String: Any]
        case .linear(let factor):
            object["rope_scaling"] = ["rope_type": "linear", "factor": factor] as [String: Any]
        case nil: break
        }
        return object
    }

    /// Parameters of the model (embedding, layers, final norm, LM head unless tied).
    public var parameterCount: Int {
        let attention =
            hiddenSize * (heads + 2 * kvHeads) * headDim + heads * headDim * hiddenSize
            + (attentionBias ? (heads + 2 * kvHeads) * headDim : 0)
        let mlp = 3 * hiddenSize * intermediateSize
        let layer = attention + mlp + 2 * hiddenSize
        return vocabSize * hiddenSize * (tieWordEmbeddings ? 1 : 2) + layers * layer + hiddenSize
    }
}
