import Backend
import Foundation
import HiFCCore

/// The Llama-family decoder (Llama, Mistral, Qwen2) written once against `ComputeBackend`:
/// weights live on the backend, and each step runs every layer's ops there, reading and writing
/// K/V in a paged `KVCachePool`.
public final class LlamaModel: Sendable {
    /// One decoder layer's weights on the backend. The projections that read the same input are
    /// stacked into one matrix each (q/k/v, gate/up): a decode step reads every weight once, and
    /// one large product streams it faster than several small ones.
    struct Layer: Sendable {
        let inputNorm, postAttentionNorm: DeviceTensor
        /// `[qOut + 2·kvOut, hidden]`: q, k, v rows in that order.
        let qkv: DeviceTensor
        let qkvBias: DeviceTensor?
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

    /// The KV block layout of this model in the backend's KV dtype.
    public func kvLayout(blockTokens: Int) -> KVBlockLayout {
        KVBlockLayout(
            layers: config.layers, kvHeads: config.kvHeads, headDim: config.headDim,
            blockTokens: blockTokens, dtype: backend.kvDType)
    }

    /// A KV pool of `blocks` blocks of `blockTokens` tokens for this model on its backend.
    public func makeKVCachePool(blockTokens: Int, blocks: Int) throws -> any KVCachePool {
        try backend.makeKVCachePool(layout: kvLayout(blockTokens: blockTokens), blocks: blocks)
    }

    /// Runs one step and returns, per sequence in order, the logits (`vocabSize` floats) of its
    /// last new token, or an empty array for a sequence whose `wantsLogits` is false. `greedy`
    /// marks are ignored: every sequence that wants logits gets them. See `step`.
    public func forward(_ batch: ForwardBatch, kv: any KVCachePool) throws -> [[Float]] {
        var all = batch
        for i in all.sequences.indices { all.sequences[i].greedy = false }
        return try step(all, kv: kv).map { output in
            if case .logits(let row) = output { return row }
            return []
        }
    }

    /// Runs one step: appends every sequence's new tokens to its KV (in `kv`, through its block
    /// table) and returns, per sequence in order, what it asked for: the logits of its last new
    /// token, or for a `greedy` sequence the index of the largest of them, picked by the backend
    /// where the logits are.
    public func step(_ batch: ForwardBatch, kv: any KVCachePool) throws -> [ForwardOutput] {
        guard !batch.sequences.isEmpty else { throw ModelError.badInput("a forward step with no sequences") }
        let layout = kv.layout
        guard layout.layers == config.layers, layout.kvHeads == config.kvHeads, layout.headDim == config.headDim else {
            throw ModelError.badInput(
                "the KV pool's layout (\(layout.layers) layers, \(layout.kvHeads) KV heads of \(layout.headDim)) does not fit the model")
        }
        for (n, sequence) in batch.sequences.enumerated() {
            if let bad = sequence.tokens.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
                throw ModelError.badInput("sequence \(n): token id \(bad) is outside the vocabulary of \(config.vocabSize)")
            }
        }
        let step = try StepBatch.make(
            chunks: batch.sequences.map {
                (
                    tokens: $0.tokens.map { Int32($0) }, startPosition: $0.startPosition,
                    blockTable: $0.blockTable.map { Int32($0) }, wantsLogits: $0.wantsLogits
                )
            },
            blockTokens: layout.blockTokens)
        try step.validate(poolBlocks: kv.blockCount)
        let prepared = try backend.prepare(step)
        let b = backend
        let scale = 1 / Float(config.headDim).squareRoot()
        var x = try b.embedding(embedding, step: prepared)
        var normed = try b.rmsNorm(x, weight: layers[0].inputNorm, epsilon: config.rmsNormEpsilon)
        for (i, layer) in layers.enumerated() {
            let q = try b.projectAttentionInputs(
                normed, qkv: layer.qkv, bias: layer.qkvBias, heads: config.heads, headDim: config.headDim,
                inverseFrequencies: inverseFrequencies, layer: i, pool: kv, step: prepared)
            let attention = try b.pagedAttention(q: q, heads: config.heads, layer: i, scale: scale, pool: kv, step: prepared)
            let afterAttention = try b.addAndNormalize(
                x, try b.linear(attention, weight: layer.o, bias: nil),
                weight: layer.postAttentionNorm, epsilon: config.rmsNormEpsilon)
            let mlp = try b.linear(try b.gatedLinear(afterAttention.normed, gateUp: layer.gateUp), weight: layer.down, bias: nil)
            if i + 1 < layers.count {
                (x, normed) = try b.addAndNormalize(afterAttention.sum, mlp, weight: layers[i + 1].inputNorm, epsilon: config.rmsNormEpsilon)
            } else {
                x = try b.add(afterAttention.sum, mlp)
            }
        }
        var outputs = [ForwardOutput](repeating: .none, count: batch.sequences.count)
        guard !step.logitRows.isEmpty else { return outputs }
        let last = try b.gatherLogitRows(x, step: prepared)
        let logits = try b.linear(try b.rmsNorm(last, weight: finalNorm, epsilon: config.rmsNormEpsilon), weight: lmHead, bias: nil)
        let wanting = batch.sequences.indices.filter { batch.sequences[$0].wantsLogits }
        // Logit rows follow the wanting sequences' order. Greedy rows take the backend's argmax,
        // and the logits come to the host only when some row samples from them.
        let greedy = wanting.contains { batch.sequences[$0].greedy } ? try b.argmaxRows(logits) : []
        let rows = wanting.contains { !batch.sequences[$0].greedy } ? try b.downloadRows(logits) : []
        for (row, n) in wanting.enumerated() {
            outputs[n] = batch.sequences[n].greedy ? .greedyToken(greedy[row]) : .logits(rows[row])
        }
        return outputs
    }
}
