/// How a GGUF `general.architecture` maps onto a HiFC model family: the family, and whether
/// llama.cpp's converter reordered the rotary rows of attn_q/attn_k. One table, so that a new
/// family is one more entry (plus its tensor names in `GGUFTensorNames`).
struct GGUFArchitecture: Sendable {
    /// The `general.architecture` value; also the prefix of the architecture's metadata keys.
    let name: String
    /// The forward pass that runs it.
    let family: ModelArchitecture
    /// llama.cpp rotates adjacent pairs (its "normal" rope) for these architectures, so its HF
    /// converter interleaves each head's two halves in the rows of attn_q and attn_k; HiFC rotates
    /// halves (HF's "rotate half"), so the rows are put back. NEOX-style architectures (Qwen2)
    /// store HF's order unchanged.
    let permutedRotaryRows: Bool

    /// The architectures HiFC reads from GGUF.
    static let supported: [GGUFArchitecture] = [
        GGUFArchitecture(name: "llama", family: .llama, permutedRotaryRows: true),
        GGUFArchitecture(name: "qwen2", family: .qwen2, permutedRotaryRows: false),
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

    private init(name: String, family: ModelArchitecture, permutedRotaryRows: Bool) {
        self.name = name
        self.family = family
        self.permutedRotaryRows = permutedRotaryRows
    }
}

/// llama.cpp's tensor names against the HF names the model asks for.
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
        "self_attn.o_proj.weight": "attn_output.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    ]

    /// The GGUF name of HF tensor `name`, nil when it has none.
    static func gguf(for name: String) -> String? {
        if let global = global[name] { return global }
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let index = Int(rest[..<dot]),
            let suffix = layer[String(rest[rest.index(after: dot)...])]
        else { return nil }
        return "blk.\(index).\(suffix)"
    }
}
