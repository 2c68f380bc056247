import Foundation

/// The architectures HiFC runs. Llama, Mistral, Qwen2 and Qwen3 share one forward pass
/// (`LlamaModel`) with small differences in config (Qwen2's q/k/v biases, Qwen3's q/k norm,
/// Mistral's and Qwen2's sliding windows); Gemma 3's text model has its own (`Gemma3Model`).
public enum ModelArchitecture: String, Sendable, CaseIterable {
    case llama = "LlamaForCausalLM"
    case mistral = "MistralForCausalLM"
    case qwen2 = "Qwen2ForCausalLM"
    case qwen3 = "Qwen3ForCausalLM"
    case gemma3 = "Gemma3ForCausalLM"

    /// The `model_type` `config.json` carries for it.
    public var modelType: String {
        switch self {
        case .llama: return "llama"
        case .mistral: return "mistral"
        case .qwen2: return "qwen2"
        case .qwen3: return "qwen3"
        case .gemma3: return "gemma3_text"
        }
    }

    /// The short name commands take (`--arch`): the model type without Gemma's `_text`.
    public var name: String { self == .gemma3 ? "gemma3" : modelType }

    /// Whether each attention head's q and k are RMS-normalized before the rotation.
    public var normalizesQueryKeyHeads: Bool { self == .qwen3 || self == .gemma3 }
}

/// The MLP's gate activation (`hidden_act`, or Gemma's `hidden_activation`).
public enum HiddenActivation: String, Sendable, Hashable {
    /// `x · sigmoid(x)` (`silu`, also spelled `swish`).
    case silu
    /// PyTorch's tanh approximation of GELU (`gelu_pytorch_tanh`).
    case geluTanh = "gelu_pytorch_tanh"
}

/// Which keys a layer attends to (an entry of `layer_types`).
public enum LayerAttention: String, Sendable, Hashable {
    /// Every earlier position (`full_attention`).
    case full = "full_attention"
    /// The last `sliding_window` positions (`sliding_attention`).
    case sliding = "sliding_attention"
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
    /// The dtype the weights were saved in (`torch_dtype`, or transformers 5's `dtype`), when stated.
    public var torchDType: String?
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]
    /// The MLP's gate activation.
    public var hiddenActivation: HiddenActivation
    /// Positions a sliding layer attends to (`sliding_window`), counting its own; nil when no layer slides.
    public var slidingWindow: Int?
    /// Each layer's attention, `layers` entries (`layer_types`; all `.full` without a window).
    public var layerTypes: [LayerAttention]
    /// The rotary base of sliding layers when it differs from `ropeTheta` (Gemma 3's
    /// `rope_local_base_freq`); their frequencies are never scaled.
    public var localRopeTheta: Double?
    /// Attention scores are scaled by `1/sqrt(query_pre_attn_scalar)` (Gemma) instead of `1/sqrt(headDim)`.
    public var queryPreAttentionScalar: Double?
    /// Final logits become `cap · tanh(logits / cap)` (Gemma's `final_logit_softcapping`).
    public var finalLogitSoftcapping: Double?

    /// A config from its parts (as `synth-model` builds one).
    public init(
        architecture: ModelArchitecture, hiddenSize: Int, intermediateSize: Int, layers: Int, heads: Int,
        kvHeads: Int, headDim: Int? = nil, vocabSize: Int, rmsNormEpsilon: Float = 1e-5,
        ropeTheta: Double = 10_000, ropeScaling: RopeScaling? = nil, maxPositions: Int = 4096,
        tieWordEmbeddings: Bool = false, attentionBias: Bool? = nil, torchDType: String? = nil,
        bosTokenID: Int? = nil, eosTokenIDs: [Int] = [], hiddenActivation: HiddenActivation? = nil,
        slidingWindow: Int? = nil, layerTypes: [LayerAttention]? = nil, localRopeTheta: Double? = nil,
        queryPreAttentionScalar: Double? = nil, finalLogitSoftcapping: Double? = nil
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
        self.hiddenActivation = hiddenActivation ?? (architecture == .gemma3 ? .geluTanh : .silu)
        self.slidingWindow = slidingWindow
        self.layerTypes = layerTypes ?? Array(repeating: slidingWindow == nil ? .full : .sliding, count: layers)
        self.localRopeTheta = localRopeTheta
        self.queryPreAttentionScalar = queryPreAttentionScalar
        self.finalLogitSoftcapping = finalLogitSoftcapping
    }

    /// The sliding window of layer `layer`, nil when it attends to every earlier position.
    public func window(layer: Int) -> Int? {
        layer < layerTypes.count && layerTypes[layer] == .sliding ? slidingWindow : nil
    }

    /// The scale of attention scores: `1/sqrt(query_pre_attn_scalar)` where set, else `1/sqrt(headDim)`.
    public var attentionScale: Float {
        Float(1 / (queryPreAttentionScalar ?? Double(headDim)).squareRoot())
    }

    /// Parameters of the model (embedding, layers, final norm, LM head unless tied).
    public var parameterCount: Int {
        let attention =
            hiddenSize * (heads + 2 * kvHeads) * headDim + heads * headDim * hiddenSize
            + (attentionBias ? (heads + 2 * kvHeads) * headDim : 0)
        let mlp = 3 * hiddenSize * intermediateSize
        let norms = (architecture == .gemma3 ? 4 : 2) * hiddenSize + (architecture.normalizesQueryKeyHeads ? 2 * headDim : 0)
        let layer = attention + mlp + norms
        return vocabSize * hiddenSize * (tieWordEmbeddings ? 1 : 2) + layers * layer + hiddenSize
    }
}
