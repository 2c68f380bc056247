import Backend
import Foundation
import HiFCCore

/// Gemma 3's text decoder (`Gemma3ForCausalLM`, model type `gemma3_text`) written against
/// `ComputeBackend`, after HF transformers' `modeling_gemma3.py`:
///
/// - embeddings scaled by `sqrt(hidden_size)`;
/// - four RMSNorms a layer (input, post-attention, pre-feedforward, post-feedforward), each
///   scaling by `1 + w` (the weights are stored as offsets from 1; `1 + w` is formed at load);
/// - per-head RMSNorm of q and k before the rotation, also `1 + w`;
/// - sliding-window layers and global layers interleaved (`layer_types`), the sliding ones with
///   their own rotary base (`rope_local_base_freq`), the global ones with `rope_theta` and its
///   scaling;
/// - attention scores scaled by `1/sqrt(query_pre_attn_scalar)`;
/// - a gated MLP, GELU-tanh in every released model (`hidden_activation`);
/// - tied embeddings, and final logits soft-capped when `final_logit_softcapping` is set.
public final class Gemma3Model: CausalLanguageModel {
    /// One decoder layer's weights on the backend (q/k/v and gate/up stacked as in `LlamaModel`).
    struct Layer: Sendable {
        let inputNorm, postAttentionNorm, preFeedforwardNorm, postFeedforwardNorm: DeviceTensor
        /// `[qOut + 2·kvOut, hidden]`: q, k, v rows in that order.
        let qkv: DeviceTensor
        let queryNorm, keyNorm: DeviceTensor
        let o: DeviceTensor
        /// `[2·intermediate, hidden]`: gate rows, then up rows.
        let gateUp: DeviceTensor
        let down: DeviceTensor
    }

    public let config: ModelConfig
    public let backend: any ComputeBackend
    let embedding: DeviceTensor
    let layers: [Layer]
    let finalNorm: DeviceTensor
    let lmHead: DeviceTensor
    /// Rotary inverse frequencies of the global layers and of the sliding layers.
    let globalFrequencies, localFrequencies: DeviceTensor

    /// Uploads the weights of `weights` to `backend`, checking every tensor's shape against
    /// `config`; a missing or misshapen tensor is an error naming it.
    public init(config: ModelConfig, weights: any WeightSource, backend: any ComputeBackend) throws {
        guard config.architecture == .gemma3 else {
            throw ModelError.badInput("Gemma3Model cannot run a \(config.architecture.rawValue) config")
        }
        self.config = config
        self.backend = backend
        let h = config.hiddenSize
        let d = config.headDim
        let qOut = config.heads * d
        let kvOut = config.kvHeads * d
        let inter = config.intermediateSize
        func load(_ name: String, _ shape: [Int]) throws -> DeviceTensor {
            try backend.upload(try weights.weight(name, shape: shape))
        }
        // Gemma's RMSNorm multiplies by 1 + w.
        func loadNorm(_ name: String, _ width: Int) throws -> DeviceTensor {
            let w = try weights.weight(name, shape: [width]).dense()
            return try backend.upload(HostTensor.float32(w.floats().map { 1 + $0 }, shape: [width], name: name))
        }
        func loadStacked(_ names: [(String, [Int])], as name: String) throws -> DeviceTensor {
            try backend.upload(try WeightTensor.stackingRows(try names.map { try weights.weight($0.0, shape: $0.1) }, name: name))
        }
        embedding = try load("model.embed_tokens.weight", [config.vocabSize, h])
        var layers: [Layer] = []
        for i in 0..<config.layers {
            let p = "model.layers.\(i)."
            let a = p + "self_attn."
            layers.append(
                Layer(
                    inputNorm: try loadNorm(p + "input_layernorm.weight", h),
                    postAttentionNorm: try loadNorm(p + "post_attention_layernorm.weight", h),
                    preFeedforwardNorm: try loadNorm(p + "pre_feedforward_layernorm.weight", h),
                    postFeedforwardNorm: try loadNorm(p + "post_feedforward_layernorm.weight", h),
                    qkv: try loadStacked(
                        [
                            (a + "q_proj.weight", [qOut, h]), (a + "k_proj.weight", [kvOut, h]),
                            (a + "v_proj.weight", [kvOut, h]),
                        ], as: a + "qkv_proj.weight"),
                    queryNorm: try loadNorm(a + "q_norm.weight", d),
                    keyNorm: try loadNorm(a + "k_norm.weight", d),
                    o: try load(a + "o_proj.weight", [h, qOut]),
                    gateUp: try loadStacked(
                        [(p + "mlp.gate_proj.weight", [inter, h]), (p + "mlp.up_proj.weight", [inter, h])],
                        as: p + "mlp.gate_up_proj.weight"),
                    down: try load(p + "mlp.down_proj.weight", [h, inter])))
        }
        self.layers = layers
        finalNorm = try loadNorm("model.norm.weight", h)
        if config.tieWordEmbeddings || !weights.contains("lm_head.weight") {
            lmHead = embedding
        } else {
            lmHead = try load("lm_head.weight", [config.vocabSize, h])
        }
        let global = RotaryFrequencies.inverse(headDim: d, theta: config.ropeTheta, scaling: config.ropeScaling)
        let local = RotaryFrequencies.inverse(headDim: d, theta: config.localRopeTheta ?? config.ropeTheta, scaling: nil)
        globalFrequencies = try backend.uploadFloat32(global, shape: [global.count])
        localFrequencies = try backend.uploadFloat32(local, shape: [local.count])
    }

    public var decodeWeightBytes: Int {
        let perLayer = layers.map { layer in
            [
                layer.inputNorm, layer.postAttentionNorm, layer.preFeedforwardNorm, layer.postFeedforwardNorm, layer.qkv, layer.queryNorm,
                layer.keyNorm, layer.o, layer.gateUp, layer.down,
            ].map(\.bytes).reduce(0, +)
        }
        return perLayer.reduce(0, +) + finalNorm.bytes + lmHead.bytes
    }

    public func launch(_ batch: ForwardBatch, kv: any KVCachePool, feeding previous: (any StepTokens)?) throws -> PendingForward {
        try launchStep(batch, kv: kv, feeding: previous, finalNorm: finalNorm, lmHead: lmHead) { prepared in
            let b = backend
            let eps = config.rmsNormEpsilon
            var x = try b.scale(try b.embedding(embedding, step: prepared), by: Float(Double(config.hiddenSize).squareRoot()))
            var normed = try b.rmsNorm(x, weight: layers[0].inputNorm, epsilon: eps)
            for (i, layer) in layers.enumerated() {
                let window = config.window(layer: i)
                let qkv = try b.normalizeQueryKeyHeads(
                    try b.linear(normed, weight: layer.qkv, bias: nil), heads: config.heads, kvHeads: config.kvHeads,
                    headDim: config.headDim, queryWeight: layer.queryNorm, keyWeight: layer.keyNorm, epsilon: eps)
                let q = try b.attentionInputs(
                    qkv: qkv, heads: config.heads, headDim: config.headDim,
                    inverseFrequencies: config.layerTypes[i] == .sliding ? localFrequencies : globalFrequencies, layer: i,
                    pool: kv, step: prepared)
                let attention = try b.pagedAttention(
                    q: q, heads: config.heads, layer: i, scale: config.attentionScale, window: window, pool: kv, step: prepared)
                let attended = try b.rmsNorm(try b.linear(attention, weight: layer.o, bias: nil), weight: layer.postAttentionNorm, epsilon: eps)
                let afterAttention = try b.addAndNormalize(x, attended, weight: layer.preFeedforwardNorm, epsilon: eps)
                let mlp = try self.mlp(afterAttention.normed, gateUp: layer.gateUp, down: layer.down)
                let fed = try b.rmsNorm(mlp, weight: layer.postFeedforwardNorm, epsilon: eps)
                if i + 1 < layers.count {
                    (x, normed) = try b.addAndNormalize(afterAttention.sum, fed, weight: layers[i + 1].inputNorm, epsilon: eps)
                } else {
                    x = try b.add(afterAttention.sum, fed)
                }
            }
            return x
        }
    }
}
