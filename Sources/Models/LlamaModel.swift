import Backend
import Foundation
import HiFCCore

/// The Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) written once against `ComputeBackend`:
/// weights live on the backend, and each step runs every layer's ops there, reading and writing
/// K/V in a paged `KVCachePool`. The family's variations come from the config: q/k/v biases
/// (Qwen2), per-head q/k norms (Qwen3), sliding-window layers (Mistral, Qwen2, Qwen3).
public final class LlamaModel: CausalLanguageModel {
    /// One decoder layer's weights on the backend. The projections that read the same input are
    /// stacked into one matrix each (q/k/v, gate/up): a decode step reads every weight once, and
    /// one large product streams it faster than several small ones.
    struct Layer: Sendable {
        let inputNorm, postAttentionNorm: DeviceTensor
        /// `[qOut + 2·kvOut, hidden]`: q, k, v rows in that order.
        let qkv: DeviceTensor
        let qkvBias: DeviceTensor?
        /// Qwen3's per-head RMSNorm weights of q and k (`[headDim]` each).
        let queryNorm, keyNorm: DeviceTensor?
        let o: DeviceTensor
        /// `[2·intermediate, hidden]`: gate rows, then up rows.
        let gateUp: DeviceTensor
        let down: DeviceTensor
    }

    /// The configuration the weights were checked against.
    public let config: ModelConfig
    /// Where the weights live and the ops run.
    public let backend: any ComputeBackend
    let embedding: DeviceTensor
    let layers: [Layer]
    let finalNorm: DeviceTensor
    let lmHead: DeviceTensor
    let inverseFrequencies: DeviceTensor

    /// Uploads the weights of `weights` to `backend`, checking every tensor's shape against
    /// `config`; a missing or misshapen tensor is an error naming it.
    public init(config: ModelConfig, weights: any WeightSource, backend: any ComputeBackend) throws {
        self.config = config
        self.backend = backend
        let h = config.hiddenSize
        let d = config.headDim
        let qOut = config.heads * d
        let kvOut = config.kvHeads * d
        func load(_ name: String, _ shape: [Int]) throws -> DeviceTensor {
            try backend.upload(try weights.weight(name, shape: shape))
        }
        func loadStacked(_ names: [(String, [Int])], as name: String) throws -> DeviceTensor {
            try backend.upload(try WeightTensor.stackingRows(try names.map { try weights.weight($0.0, shape: $0.1) }, name: name))
        }
        embedding = try load("model.embed_tokens.weight", [config.vocabSize, h])
        var layers: [Layer] = []
        for i in 0..<config.layers {
            let p = "model.layers.\(i)."
            let bias = config.attentionBias
            let a = p + "self_attn."
            let inter = config.intermediateSize
            layers.append(
                Layer(
                    inputNorm: try load(p + "input_layernorm.weight", [h]),
                    postAttentionNorm: try load(p + "post_attention_layernorm.weight", [h]),
                    qkv: try loadStacked(
                        [
                            (a + "q_proj.weight", [qOut, h]), (a + "k_proj.weight", [kvOut, h]),
                            (a + "v_proj.weight", [kvOut, h]),
                        ], as: a + "qkv_proj.weight"),
                    qkvBias: bias
                        ? try loadStacked(
                            [
                                (a + "q_proj.bias", [qOut]), (a + "k_proj.bias", [kvOut]),
                                (a + "v_proj.bias", [kvOut]),
                            ], as: a + "qkv_proj.bias") : nil,
                    queryNorm: config.architecture.normalizesQueryKeyHeads ? try load(a + "q_norm.weight", [d]) : nil,
                    keyNorm: config.architecture.normalizesQueryKeyHeads ? try load(a + "k_norm.weight", [d]) : nil,
                    o: try load(a + "o_proj.weight", [h, qOut]),
                    gateUp: try loadStacked(
                        [(p + "mlp.gate_proj.weight", [inter, h]), (p + "mlp.up_proj.weight", [inter, h])],
                        as: p + "mlp.gate_up_proj.weight"),
                    down: try load(p + "mlp.down_proj.weight", [h, inter])))
        }
        self.layers = layers
        finalNorm = try load("model.norm.weight", [h])
        if config.tieWordEmbeddings || !weights.contains("lm_head.weight") {
            // Tied embeddings (and checkpoints that drop a duplicate lm_head) reuse the table.
            lmHead = embedding
        } else {
            lmHead = try load("lm_head.weight", [config.vocabSize, h])
        }
        let frequencies = RotaryFrequencies.inverse(headDim: d, theta: config.ropeTheta, scaling: config.ropeScaling)
        inverseFrequencies = try backend.uploadFloat32(frequencies, shape: [frequencies.count])
    }

    public var decodeWeightBytes: Int {
        let perLayer = layers.map { layer in
            [layer.inputNorm, layer.postAttentionNorm, layer.qkv, layer.o, layer.gateUp, layer.down].map(\.bytes).reduce(0, +)
                + [layer.qkvBias, layer.queryNorm, layer.keyNorm].compactMap { $0?.bytes }.reduce(0, +)
        }
        return perLayer.reduce(0, +) + finalNorm.bytes + lmHead.bytes
    }

    public func launch(_ batch: ForwardBatch, kv: any KVCachePool, feeding previous: (any StepTokens)?) throws -> PendingForward {
        try launchStep(batch, kv: kv, feeding: previous, finalNorm: finalNorm, lmHead: lmHead) { prepared in
            let b = backend
            let scale = config.attentionScale
            var x = try b.embedding(embedding, step: prepared)
            var normed = try b.rmsNorm(x, weight: layers[0].inputNorm, epsilon: config.rmsNormEpsilon)
            for (i, layer) in layers.enumerated() {
                let q: DeviceTensor
                if let queryNorm = layer.queryNorm, let keyNorm = layer.keyNorm {
                    // The norms come between the product and the rotation, so the two are not fused.
                    let qkv = try b.normalizeQueryKeyHeads(
                        try b.linear(normed, weight: layer.qkv, bias: layer.qkvBias), heads: config.heads, kvHeads: config.kvHeads,
                        headDim: config.headDim, queryWeight: queryNorm, keyWeight: keyNorm, epsilon: config.rmsNormEpsilon)
                    q = try b.attentionInputs(
                        qkv: qkv, heads: config.heads, headDim: config.headDim, inverseFrequencies: inverseFrequencies, layer: i,
                        pool: kv, step: prepared)
                } else {
                    q = try b.projectAttentionInputs(
                        normed, qkv: layer.qkv, bias: layer.qkvBias, heads: config.heads, headDim: config.headDim,
                        inverseFrequencies: inverseFrequencies, layer: i, pool: kv, step: prepared)
                }
                let attention = try b.pagedAttention(
                    q: q, heads: config.heads, layer: i, scale: scale, window: config.window(layer: i), pool: kv, step: prepared)
                let afterAttention = try b.linearAddAndNormalize(
                    attention, weight: layer.o, residual: x, norm: layer.postAttentionNorm, epsilon: config.rmsNormEpsilon)
                if i + 1 < layers.count {
                    (x, normed) = try mlpAddAndNormalize(
                        afterAttention.normed, gateUp: layer.gateUp, down: layer.down, residual: afterAttention.sum,
                        norm: layers[i + 1].inputNorm, epsilon: config.rmsNormEpsilon)
                } else {
                    x = try b.add(afterAttention.sum, try mlp(afterAttention.normed, gateUp: layer.gateUp, down: layer.down))
                }
            }
            return x
        }
    }
}
