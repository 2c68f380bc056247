/// How a GGUF `general.architecture` maps onto a HiFC model family: the family, how llama.cpp's
/// converter changed the weights on the way in, and the tensor names that differ from Llama's.
/// One table, so that a new family is one more entry.
struct GGUFArchitecture: Sendable {
    /// The `general.architecture` value; also the prefix of the architecture's metadata keys.
    let name: String
    /// The forward pass that runs it.
    let family: ModelArchitecture
    /// llama.cpp rotates adjacent pairs (its "normal" rope) for these architectures, so its HF
    /// converter interleaves each head's two halves in the rows of attn_q and attn_k; HiFC rotates
    /// halves (HF's "rotate half"), so the rows are put back. NEOX-style architectures (Qwen2,
    /// Qwen3, Gemma 3) store HF's order unchanged.
    let permutedRotaryRows: Bool
    /// Gemma's RMSNorms scale by `1 + w` and HF stores `w`; llama.cpp's converter adds the 1 to
    /// every `*norm.weight` (`norm_shift` in convert_hf_to_gguf.py), so the file holds `1 + w`.
    /// `GGUFWeights` takes the 1 off again: the model sees the HF weights, as from a directory.
    let normWeightsIncludeOne: Bool
    /// Per-layer tensors whose GGUF name differs from Llama's (`GGUFTensorNames.layer`):
    /// HF suffix → GGUF suffix.
    let layerNames: [String: String]
    /// The chat format of the family's instruction-tuned models, for files that carry no
    /// `tokenizer.chat_template` (llama.cpp's converter writes one only when the HF repository
    /// has it in tokenizer_config.json); nil where no one format is the family's.
    let chatTemplate: ChatTemplate?

    /// The architectures HiFC reads from GGUF.
    static let supported: [GGUFArchitecture] = [
        GGUFArchitecture(name: "llama", family: .llama, permutedRotaryRows: true),
        GGUFArchitecture(name: "qwen2", family: .qwen2),
        GGUFArchitecture(name: "qwen3", family: .qwen3),
        GGUFArchitecture(
            name: "gemma3", family: .gemma3, normWeightsIncludeOne: true,
            layerNames: [
                // Gemma has four norms a layer: llama.cpp's ffn_norm is the pre-feedforward one.
                "post_attention_layernorm.weight": "post_attention_norm.weight",
                "pre_feedforward_layernorm.weight": "ffn_norm.weight",
                "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
            ],
            chatTemplate: .gemma),
    ]

    /// The architecture of `file`; an unsupported one is an error naming it.
    init(file: GGUFFile) throws(ModelError) {
        guard let name = try file.string("general.architecture") else {
            throw .badConfig(key: "general.architecture", file: file.path, reason: "is missing")
        }
        guard let known = Self.supported.first(where: { $0.name == name }) else {
            throw .badConfig(
                key: "general.architecture", file: file.path,
                reason: "is '\(name)', which HiFC does not run from GGUF (supported: \(Self.supported.map(\.name).joined(separator: ", ")))")
        }
        self = known
    }

    private init(
        name: String, family: ModelArchitecture, permutedRotaryRows: Bool = false, normWeightsIncludeOne: Bool = false,
        layerNames: [String: String] = [:], chatTemplate: ChatTemplate? = nil
    ) {
        self.name = name
        self.family = family
        self.permutedRotaryRows = permutedRotaryRows
        self.normWeightsIncludeOne = normWeightsIncludeOne
        self.layerNames = layerNames
        self.chatTemplate = chatTemplate
    }

    /// The GGUF name of HF tensor `name`, nil when it has none.
    func ggufName(for name: String) -> String? {
        if let global = GGUFTensorNames.global[name] { return global }
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let index = Int(rest[..<dot]) else { return nil }
        let suffix = String(rest[rest.index(after: dot)...])
        guard let gguf = layerNames[suffix] ?? GGUFTensorNames.layer[suffix] else { return nil }
        return "blk.\(index).\(gguf)"
    }
}

/// llama.cpp's tensor names against the HF names the model asks for (Llama's; an architecture
/// overrides some in `GGUFArchitecture.layerNames`).
enum GGUFTensorNames {
    /// Whole-model tensors: HF name → GGUF name.
    static let global: [String: String] = [
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    ]

    /// Per-layer tensors: HF suffix after `model.layers.N.` → GGUF suffix after `blk.N.`.
    static let layer: [String: String] = [
        "input_layernorm.weight": "attn_norm.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.q_proj.bias": "attn_q.bias",
        "self_attn.k_proj.bias": "attn_k.bias",
        "self_attn.v_proj.bias": "attn_v.bias",
        "self_attn.q_norm.weight": "attn_q_norm.weight",
        "self_attn.k_norm.weight": "attn_k_norm.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    ]
}
