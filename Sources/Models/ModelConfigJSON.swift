import Foundation

/// Reading and writing HF `config.json`, in both the form transformers 4 writes (`rope_theta`,
/// `rope_scaling`, `torch_dtype`) and the form transformers 5 writes (`rope_parameters`, per layer
/// type for Gemma 3, and `dtype`). A key that changes the arithmetic and that HiFC does not
/// implement is an error naming it, never ignored. Absent keys take the defaults of the
/// architecture's transformers config class.
extension ModelConfig {
    /// Reads `config.json` at `path`.
    public init(contentsOf path: String) throws(ModelError) {
        let json = try JSONFile(path: path)
        guard let name = (json.object["architectures"] as? [String])?.first else {
            throw .badConfig(key: "architectures", file: path, reason: "is missing")
        }
        guard let architecture = ModelArchitecture(rawValue: name) else {
            throw .unsupportedArchitecture(name, file: path)
        }
        try Self.refuseUnimplementedKeys(json, architecture: architecture)
        let hidden = try json.positiveInt("hidden_size")
        let heads = try json.positiveInt("num_attention_heads")
        let layers = try json.positiveInt("num_hidden_layers")
        let kvHeads = try json.optionalInt("num_key_value_heads") ?? heads
        guard kvHeads > 0, heads % kvHeads == 0 else {
            throw .badConfig(
                key: "num_key_value_heads", file: path,
                reason: "is \(kvHeads), which does not divide num_attention_heads \(heads)")
        }
        let headDim = try json.optionalInt("head_dim") ?? (architecture == .gemma3 ? 256 : hidden / heads)
        guard headDim > 0, headDim % 2 == 0 else {
            throw .badConfig(key: "head_dim", file: path, reason: "should be positive and even, not \(headDim)")
        }
        let maxPositions = try json.optionalInt("max_position_embeddings") ?? Self.defaultMaxPositions(architecture)
        let rope = try Self.readRope(json, architecture: architecture, maxPositions: maxPositions)
        let attention = try Self.readLayerAttention(json, architecture: architecture, layers: layers)
        let gemma = architecture == .gemma3
        let attentionBias: Bool
        switch architecture {
        case .qwen2: attentionBias = true
        default: attentionBias = try json.optionalBool("attention_bias") ?? false
        }
        self.init(
            architecture: architecture,
            hiddenSize: hidden,
            intermediateSize: try json.positiveInt("intermediate_size"),
            layers: layers,
            heads: heads, kvHeads: kvHeads, headDim: headDim,
            vocabSize: try json.positiveInt("vocab_size"),
            rmsNormEpsilon: Float(try json.optionalDouble("rms_norm_eps") ?? 1e-6),
            ropeTheta: rope.theta,
            ropeScaling: rope.scaling,
            maxPositions: maxPositions,
            tieWordEmbeddings: try json.optionalBool("tie_word_embeddings") ?? gemma,
            attentionBias: attentionBias,
            torchDType: json.optionalString("dtype") ?? json.optionalString("torch_dtype"),
            bosTokenID: try json.optionalInt("bos_token_id"),
            eosTokenIDs: json.intList("eos_token_id"),
            hiddenActivation: try Self.readActivation(json, architecture: architecture),
            slidingWindow: attention.window,
            layerTypes: attention.types,
            localRopeTheta: rope.localTheta,
            queryPreAttentionScalar: gemma ? try json.optionalDouble("query_pre_attn_scalar") ?? 256 : nil,
            finalLogitSoftcapping: gemma ? try json.optionalDouble("final_logit_softcapping") : nil)
    }

    /// `max_position_embeddings` of the transformers config classes.
    private static func defaultMaxPositions(_ architecture: ModelArchitecture) -> Int {
        switch architecture {
        case .llama: return 2048
        case .mistral, .gemma3: return 131_072
        case .qwen2, .qwen3: return 32_768
        }
    }

    /// Keys whose values HiFC's forward passes do not implement, refused by name.
    private static func refuseUnimplementedKeys(_ json: JSONFile, architecture: ModelArchitecture) throws(ModelError) {
        let path = json.path
        if let value = json.object["quantization_config"], !(value is NSNull) {
            throw .badConfig(key: "quantization_config", file: path, reason: "is set: quantized safetensors weights are not supported")
        }
        if try json.optionalBool("mlp_bias") == true {
            throw .badConfig(key: "mlp_bias", file: path, reason: "is true: MLP projections with biases are not implemented")
        }
        if let cap = try json.optionalDouble("attn_logit_softcapping") {
            throw .badConfig(key: "attn_logit_softcapping", file: path, reason: "is \(cap): soft-capped attention scores are not implemented")
        }
        if try json.optionalBool("use_bidirectional_attention") == true {
            throw .badConfig(key: "use_bidirectional_attention", file: path, reason: "is true: only causal attention is implemented")
        }
        if let factor = try json.optionalDouble("partial_rotary_factor"), factor != 1 {
            throw .badConfig(key: "partial_rotary_factor", file: path, reason: "is \(factor): only full-width rotary embedding is implemented")
        }
        if architecture != .gemma3, let cap = try json.optionalDouble("final_logit_softcapping") {
            throw .badConfig(key: "final_logit_softcapping", file: path, reason: "is \(cap): implemented for Gemma 3 only")
        }
    }

    /// The gate activation: `hidden_act` (Gemma: `hidden_activation`).
    private static func readActivation(_ json: JSONFile, architecture: ModelArchitecture) throws(ModelError) -> HiddenActivation {
        let key = architecture == .gemma3 ? "hidden_activation" : "hidden_act"
        let name = json.optionalString(key) ?? (architecture == .gemma3 ? "gelu_pytorch_tanh" : "silu")
        switch name {
        case "silu", "swish": return .silu
        case "gelu_pytorch_tanh": return .geluTanh
        default:
            throw .badConfig(key: key, file: json.path, reason: "is '\(name)'; supported: silu, gelu_pytorch_tanh")
        }
    }

    /// The rotary base and scaling of full-attention layers, and the base of sliding layers where
    /// it differs: from transformers 5's `rope_parameters` (one set, or one per layer type), else
    /// from `rope_theta`, `rope_scaling` and Gemma's `rope_local_base_freq`.
    private static func readRope(
        _ json: JSONFile, architecture: ModelArchitecture, maxPositions: Int
    ) throws(ModelError) -> (theta: Double, scaling: RopeScaling?, localTheta: Double?) {
        let defaultTheta: Double = architecture == .gemma3 ? 1_000_000 : 10_000
        let defaultLocal: Double? = architecture == .gemma3 ? 10_000 : nil
        if let parameters = json.object["rope_parameters"] as? [String: Any] {
            let perType = parameters.values.contains { $0 is [String: Any] }
            guard perType else {
                let rope = try readRopeSet(JSONFile(path: json.path, object: parameters), key: "rope_parameters", maxPositions: maxPositions)
                return (rope.theta ?? defaultTheta, rope.scaling, try json.optionalDouble("rope_local_base_freq") ?? defaultLocal)
            }
            for type in parameters.keys where LayerAttention(rawValue: type) == nil {
                throw .badConfig(key: "rope_parameters.\(type)", file: json.path, reason: "names a layer type HiFC does not implement")
            }
            var full: (theta: Double?, scaling: RopeScaling?) = (nil, nil)
            if let set = parameters[LayerAttention.full.rawValue] as? [String: Any] {
                full = try readRopeSet(JSONFile(path: json.path, object: set), key: "rope_parameters.full_attention", maxPositions: maxPositions)
            }
            var local: Double? = defaultLocal
            if let set = parameters[LayerAttention.sliding.rawValue] as? [String: Any] {
                let sliding = try readRopeSet(
                    JSONFile(path: json.path, object: set), key: "rope_parameters.sliding_attention", maxPositions: maxPositions)
                if sliding.scaling != nil {
                    throw .badConfig(
                        key: "rope_parameters.sliding_attention.rope_type", file: json.path,
                        reason: "scales the sliding layers' frequencies, which is not implemented")
                }
                local = sliding.theta ?? local
            }
            return (full.theta ?? defaultTheta, full.scaling, local)
        }
        var scaling: RopeScaling?
        if let set = json.object["rope_scaling"] as? [String: Any] {
            scaling = try readRopeSet(JSONFile(path: json.path, object: set), key: "rope_scaling", maxPositions: maxPositions).scaling
        }
        return (try json.optionalDouble("rope_theta") ?? defaultTheta, scaling, try json.optionalDouble("rope_local_base_freq") ?? defaultLocal)
    }

    /// One set of rotary parameters (`rope_type` or legacy `type`, `rope_theta`, scaling fields;
    /// Llama 3's original context defaults to `max_position_embeddings`, as in transformers).
    private static func readRopeSet(_ set: JSONFile, key: String, maxPositions: Int) throws(ModelError) -> (theta: Double?, scaling: RopeScaling?) {
        let kind = set.optionalString("rope_type") ?? set.optionalString("type") ?? "default"
        if let factor = try set.optionalDouble("partial_rotary_factor"), factor != 1 {
            throw .badConfig(
                key: key + ".partial_rotary_factor", file: set.path, reason: "is \(factor): only full-width rotary embedding is implemented")
        }
        let theta = try set.optionalDouble("rope_theta")
        switch kind {
        case "default":
            return (theta, nil)
        case "linear":
            return (theta, .linear(factor: try set.optionalDouble("factor") ?? 1))
        case "llama3":
            return (
                theta,
                .llama3(
                    factor: try set.optionalDouble("factor") ?? 8,
                    lowFrequencyFactor: try set.optionalDouble("low_freq_factor") ?? 1,
                    highFrequencyFactor: try set.optionalDouble("high_freq_factor") ?? 4,
                    originalMaxPositions: try set.optionalInt("original_max_position_embeddings") ?? maxPositions)
            )
        default:
            throw .badConfig(key: key + ".rope_type", file: set.path, reason: "is '\(kind)'; supported: default, linear, llama3")
        }
    }

    /// Which layers slide and over how many positions, as transformers decides it: Mistral slides
    /// every layer when `sliding_window` is set (transformers ignores a Mistral `layer_types`);
    /// Qwen2/Qwen3 and Gemma 3 follow `layer_types` where given, else Qwen slides the layers from
    /// `max_window_layers` on and Gemma all but every `sliding_window_pattern`-th. Qwen's window
    /// exists only with `use_sliding_window`; without it every layer attends fully.
    private static func readLayerAttention(
        _ json: JSONFile, architecture: ModelArchitecture, layers: Int
    ) throws(ModelError) -> (window: Int?, types: [LayerAttention]) {
        let window: Int?
        let derived: [LayerAttention]
        switch architecture {
        case .llama:
            return (nil, Array(repeating: .full, count: layers))
        case .mistral:
            let every = try json.object.keys.contains("sliding_window") ? json.optionalInt("sliding_window") : 4096
            if let every, every < 1 {
                throw .badConfig(key: "sliding_window", file: json.path, reason: "should be positive, not \(every)")
            }
            return (every, Array(repeating: every == nil ? .full : .sliding, count: layers))
        case .qwen2, .qwen3:
            window = try json.optionalBool("use_sliding_window") == true ? try json.optionalInt("sliding_window") ?? 4096 : nil
            let first = try json.optionalInt("max_window_layers") ?? 28
            derived = (0..<layers).map { window != nil && $0 >= first ? .sliding : .full }
        case .gemma3:
            window = try json.optionalInt("sliding_window") ?? 4096
            let pattern = try json.optionalInt("sliding_window_pattern") ?? 6
            derived = (0..<layers).map { pattern > 0 && ($0 + 1) % pattern == 0 ? .full : .sliding }
        }
        var types = derived
        if let listed = json.object["layer_types"], !(listed is NSNull) {
            guard let names = listed as? [String], names.count == layers else {
                throw .badConfig(key: "layer_types", file: json.path, reason: "should list one type for each of the \(layers) layers")
            }
            types = []
            for name in names {
                guard let type = LayerAttention(rawValue: name) else {
                    throw .badConfig(key: "layer_types", file: json.path, reason: "names '\(name)'; supported: full_attention, sliding_attention")
                }
                types.append(type)
            }
        }
        // A sliding layer without a window attends fully (transformers passes no window to its mask).
        guard let size = window, types.contains(.sliding) else { return (nil, Array(repeating: .full, count: layers)) }
        guard size > 0 else { throw .badConfig(key: "sliding_window", file: json.path, reason: "should be positive, not \(size)") }
        return (size, types)
    }

    /// The `config.json` document HF transformers reads for this config (transformers 4's key
    /// names, which transformers 5 still reads).
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
            "use_cache": true,
        ]
        object[architecture == .gemma3 ? "hidden_activation" : "hidden_act"] = hiddenActivation.rawValue
        if architecture != .qwen2 { object["attention_bias"] = attentionBias }
        let sliding = layerTypes.contains(.sliding)
        switch architecture {
        case .llama: break
        case .mistral:
            object["sliding_window"] = sliding ? slidingWindow as Any : NSNull()
        case .qwen2, .qwen3:
            object["use_sliding_window"] = sliding
            object["sliding_window"] = sliding ? slidingWindow as Any : NSNull()
            object["max_window_layers"] = layerTypes.firstIndex(of: .sliding) ?? layers
            object["layer_types"] = layerTypes.map(\.rawValue)
        case .gemma3:
            object["sliding_window"] = slidingWindow ?? 4096
            object["layer_types"] = layerTypes.map(\.rawValue)
            object["rope_local_base_freq"] = localRopeTheta ?? ropeTheta
            object["query_pre_attn_scalar"] = queryPreAttentionScalar ?? Double(headDim)
            object["final_logit_softcapping"] = finalLogitSoftcapping as Any? ?? NSNull()
            object["attn_logit_softcapping"] = NSNull()
        }
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
}
