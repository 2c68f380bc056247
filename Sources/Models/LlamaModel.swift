import Backend
import Foundation
import HiFCCore

/// The Llama-family decoder (Llama, Mistral, Qwen2) written once against `ComputeBackend`:
/// weights live on the backend, and each step runs every layer's ops there, reading and writing
/// K/V in a paged `KVCachePool`.
public final class LlamaModel: Sendable {
    /// One decoder layer's weights on the backend.
    struct Layer: Sendable {
        let inputNorm, postAttentionNorm: DeviceTensor
        let q, k, v, o: DeviceTensor
        let qBias, kBias, vBias: DeviceTensor?
        let gate, up, down: DeviceTensor
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
    public init(config: ModelConfig, weights: WeightFiles, backend: any ComputeBackend) throws {
        self.config = config
        self.backend = backend
        let h = config.hiddenSize, d = config.headDim
        let qOut = config.heads * d, kvOut = config.kvHeads * d
        func load(_ name: String, _ shape: [Int]) throws -> DeviceTensor {
            try backend.upload(try weights.tensor(name, shape: shape))
        }
        embedding = try load("model.embed_tokens.weight", [config.vocabSize, h])
        var layers: [Layer] = []
        for i in 0..<config.layers {
            let p = "model.layers.\(i)."
            let bias = config.attentionBias
            layers.append(Layer(
                inputNorm: try load(p + "input_layernorm.weight", [h]),
                postAttentionNorm: try load(p + "post_attention_layernorm.weight", [h]),
                q: try load(p + "self_attn.q_proj.weight", [qOut, h]),
                k: try load(p + "self_attn.k_proj.weight", [kvOut, h]),
                v: try load(p + "self_attn.v_proj.weight", [kvOut, h]),
                o: try load(p + "self_attn.o_proj.weight", [h, qOut]),
                qBias: bias ? try load(p + "self_attn.q_proj.bias", [qOut]) : nil,
                kBias: bias ? try load(p + "self_attn.k_proj.bias", [kvOut]) : nil,
                vBias: bias ? try load(p + "self_attn.v_proj.bias", [kvOut]) : nil,
                gate: try load(p + "mlp.gate_proj.weight", [config.intermediateSize, h]),
                up: try load(p + "mlp.up_proj.weight", [config.intermediateSize, h]),
                down: try load(p + "mlp.down_proj.weight", [h, config.intermediateSize])))
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

    /// The KV block layout of this model in the backend's KV dtype.
    public func kvLayout(blockTokens: Int) -> KVBlockLayout {
        KVBlockLayout(layers: config.layers, kvHeads: config.kvHeads, headDim: config.headDim,
                      blockTokens: blockTokens, dtype: backend.kvDType)
    }

    /// A KV pool of `blocks` blocks of `blockTokens` tokens for this model on its backend.
    public func makeKVCachePool(blockTokens: Int, blocks: Int) throws -> any KVCachePool {
        try backend.makeKVCachePool(layout: kvLayout(blockTokens: blockTokens), blocks: blocks)
    }

    /// Runs one step: appends every sequence's new tokens to its KV (in `kv`, through its block
    /// table) and returns, per sequence in order, the logits (`vocabSize` floats) of its last new
    /// token, or an empty array for a sequence whose `wantsLogits` is false.
    public func forward(_ batch: ForwardBatch, kv: any KVCachePool) throws -> [[Float]] {
        guard !batch.sequences.isEmpty else { throw ModelError.badInput("a forward step with no sequences") }
        let layout = kv.layout
        guard layout.layers == config.layers, layout.kvHeads == config.kvHeads, layout.headDim == config.headDim else {
            throw ModelError.badInput("the KV pool's layout (\(layout.layers) layers, \(layout.kvHeads) KV heads of \(layout.headDim)) does not fit the model")
        }
        for (n, sequence) in batch.sequences.enumerated() {
            if let bad = sequence.tokens.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
                throw ModelError.badInput("sequence \(n): token id \(bad) is outside the vocabulary of \(config.vocabSize)")
            }
        }
        let step = try StepBatch.make(
            chunks: batch.sequences.map {
                (tokens: $0.tokens.map { Int32($0) }, startPosition: $0.startPosition,
                 blockTable: $0.blockTable.map { Int32($0) }, wantsLogits: $0.wantsLogits)
            },
            blockTokens: layout.blockTokens)
        try step.validate(poolBlocks: kv.blockCount)
        let prepared = try backend.prepare(step)
        let b = backend
        let scale = 1 / Float(config.headDim).squareRoot()
        var x = try b.embedding(embedding, step: prepared)
        for (i, layer) in layers.enumerated() {
            let normed = try b.rmsNorm(x, weight: layer.inputNorm, epsilon: config.rmsNormEpsilon)
            let q = try b.linear(normed, weight: layer.q, bias: layer.qBias)
            let k = try b.linear(normed, weight: layer.k, bias: layer.kBias)
            let v = try b.linear(normed, weight: layer.v, bias: layer.vBias)
            let rotated = try b.rotary(q: q, k: k, headDim: config.headDim,
                                       inverseFrequencies: inverseFrequencies, step: prepared)
            try b.writeKV(k: rotated.k, v: v, layer: i, pool: kv, step: prepared)
            let attention = try b.pagedAttention(q: rotated.q, heads: config.heads, layer: i, scale: scale,
                                                 pool: kv, step: prepared)
            x = try b.add(x, try b.linear(attention, weight: layer.o, bias: nil))
            let normed2 = try b.rmsNorm(x, weight: layer.postAttentionNorm, epsilon: config.rmsNormEpsilon)
            let gate = try b.linear(normed2, weight: layer.gate, bias: nil)
            let up = try b.linear(normed2, weight: layer.up, bias: nil)
            let activated = try b.siluAndMultiply(gate: gate, up: up)
            x = try b.add(x, try b.linear(activated, weight: layer.down, bias: nil))
        }
        var logits: [[Float]] = Array(repeating: [], count: batch.sequences.count)
        guard !step.logitRows.isEmpty else { return logits }
        let last = try b.gatherLogitRows(x, step: prepared)
        let normed = try b.rmsNorm(last, weight: finalNorm, epsilon: config.rmsNormEpsilon)
        let flat = try b.download(try b.linear(normed, weight: lmHead, bias: nil))
        var row = 0
        for (n, sequence) in batch.sequences.enumerated() where sequence.wantsLogits {
            logits[n] = Array(flat[(row * config.vocabSize)..<((row + 1) * config.vocabSize)])
            row += 1
        }
        return logits
    }
}
