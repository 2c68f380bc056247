import Backend
import Foundation
import HiFCCore

/// A decoder-only language model whose weights live on a backend: what the engine runs. Each
/// architecture family is one type written against `ComputeBackend` (`LlamaModel` for Llama,
/// Mistral, Qwen2 and Qwen3; `Gemma3Model`).
public protocol CausalLanguageModel: AnyObject, Sendable {
    /// The configuration the weights were checked against.
    var config: ModelConfig { get }
    /// Where the weights live and the ops run.
    var backend: any ComputeBackend { get }
    /// Bytes of weights a decode step reads, as the backend keeps them (quantized blocks stay
    /// packed): every layer's, the final norm's and the LM head's; the embedding table is read a
    /// row a token, so it counts only as the LM head it may also be.
    var decodeWeightBytes: Int { get }
    /// Launches one step, which appends every sequence's new tokens to its KV (in `kv`, through
    /// its block table); returns once the step's work is queued where the backend runs ahead of
    /// the host (`ComputeBackend.runsAhead`). `previous`, the last step's picked tokens, gives the
    /// tokens of the sequences with a `feedRow`. The outputs come from `PendingForward.outputs()`.
    func launch(_ batch: ForwardBatch, kv: any KVCachePool, feeding previous: (any StepTokens)?) throws -> PendingForward
}

extension ModelConfig {
    /// The forward pass of this config's architecture with the weights of `weights` uploaded to
    /// `backend`; a missing or misshapen tensor is an error naming it.
    public func makeModel(weights: any WeightSource, backend: any ComputeBackend) throws -> any CausalLanguageModel {
        switch architecture {
        case .gemma3: return try Gemma3Model(config: self, weights: weights, backend: backend)
        case .llama, .mistral, .qwen2, .qwen3: return try LlamaModel(config: self, weights: weights, backend: backend)
        }
    }
}

extension CausalLanguageModel {
    /// Runs one step (`launch`, then a wait) and returns, per sequence in order, what it asked
    /// for: the logits of its last new token, or for a sequence the backend picks for
    /// (`picksOnBackend`) the token it picked where the logits are.
    public func step(_ batch: ForwardBatch, kv: any KVCachePool) throws -> [ForwardOutput] {
        try launch(batch, kv: kv, feeding: nil).outputs()
    }

    /// The KV block layout of this model in the KV dtype `dtype` means on its backend (`auto`:
    /// the backend's own).
    public func kvLayout(blockTokens: Int, dtype: KVDTypeChoice = .auto) -> KVBlockLayout {
        KVBlockLayout(
            layers: config.layers, kvHeads: config.kvHeads, headDim: config.headDim,
            blockTokens: blockTokens, dtype: dtype.resolved(backendDefault: backend.kvDType))
    }

    /// A KV pool of `blocks` blocks of `blockTokens` tokens in `dtype` for this model on its
    /// backend; a dtype the backend cannot keep is an error naming it.
    public func makeKVCachePool(blockTokens: Int, blocks: Int, dtype: KVDTypeChoice = .auto) throws -> any KVCachePool {
        try backend.makeKVCachePool(layout: kvLayout(blockTokens: blockTokens, dtype: dtype), blocks: blocks)
    }

    /// Runs one step and returns, per sequence in order, the logits (`vocabSize` floats) of its
    /// last new token, or an empty array for a sequence whose `wantsLogits` is false. Picks are
    /// ignored: every sequence that wants logits gets them. See `step`.
    public func forward(_ batch: ForwardBatch, kv: any KVCachePool) throws -> [[Float]] {
        var all = batch
        for i in all.sequences.indices {
            all.sequences[i].pick = nil
        }
        return try step(all, kv: kv).map { output in
            if case .logits(let row) = output { return row }
            return []
        }
    }

    /// The gated MLP for the config's activation: `(act(gate) · up) · downᵀ` from the fused gate/up
    /// weight (`[tokens, hidden]`).
    func mlp(_ x: DeviceTensor, gateUp: DeviceTensor, down: DeviceTensor) throws -> DeviceTensor {
        switch config.hiddenActivation {
        case .silu: return try backend.gatedMLP(x, gateUp: gateUp, down: down)
        case .geluTanh:
            let activated = try backend.geluTanhAndMultiply(try backend.linear(x, weight: gateUp, bias: nil))
            return try backend.linear(activated, weight: down, bias: nil)
        }
    }

    /// `mlp`, its residual add and the norm after it, as one backend op where the activation allows.
    func mlpAddAndNormalize(
        _ x: DeviceTensor, gateUp: DeviceTensor, down: DeviceTensor, residual: DeviceTensor, norm: DeviceTensor, epsilon: Float
    ) throws -> (sum: DeviceTensor, normed: DeviceTensor) {
        switch config.hiddenActivation {
        case .silu:
            return try backend.gatedMLPAddAndNormalize(x, gateUp: gateUp, down: down, residual: residual, norm: norm, epsilon: epsilon)
        case .geluTanh:
            return try backend.addAndNormalize(residual, try mlp(x, gateUp: gateUp, down: down), weight: norm, epsilon: epsilon)
        }
    }

    /// Checks `batch` against the pool and the vocabulary, and describes it to the backend.
    func prepareStep(
        _ batch: ForwardBatch, kv: any KVCachePool, feeding previous: (any StepTokens)?
    ) throws -> (step: StepBatch, prepared: any PreparedStep) {
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
            blockTokens: layout.blockTokens, feeding: batch.sequences.map(\.feedRow))
        try step.validate(poolBlocks: kv.blockCount)
        guard !step.feedRows.isEmpty else { return (step, try backend.prepare(step)) }
        guard let previous else { throw ModelError.badInput("a step with fed tokens but no previous step's tokens") }
        return (step, try backend.prepare(step, feeding: previous))
    }

    /// One step: `hidden` runs the layers from the prepared step to the last hidden states
    /// (`[tokens, hidden]`), then the final norm and the LM head give the logits of the rows that
    /// want them; the backend runs the two as one unit it may replay (`ComputeBackend.runStep`).
    /// Then the backend's pick of every logit row is queued when it picks for some sequence
    /// (`ForwardSequence.picksOnBackend`), and the logits come to the host, soft-capped where the
    /// config says so, when the host samples some.
    func launchStep(
        _ batch: ForwardBatch, kv: any KVCachePool, feeding previous: (any StepTokens)?, finalNorm: DeviceTensor, lmHead: DeviceTensor,
        hidden: (any PreparedStep) throws -> DeviceTensor
    ) throws -> PendingForward {
        let (step, prepared) = try prepareStep(batch, kv: kv, feeding: previous)
        let b = backend
        let logits = try b.runStep(prepared, model: self, kv: kv) { prepared in
            let x = try hidden(prepared)
            guard !step.logitRows.isEmpty else { return nil }
            let last = try b.gatherLogitRows(x, step: prepared)
            return try b.linear(try b.rmsNorm(last, weight: finalNorm, epsilon: config.rmsNormEpsilon), weight: lmHead, bias: nil)
        }
        let wanting = batch.sequences.filter(\.wantsLogits)
        // Logit rows follow the wanting sequences' order. The backend picks for the rows that
        // let it, and the logits come to the host only when some row samples from them there.
        // Soft-capping (cap · tanh(x / cap)) keeps the order of the logits, so an argmax needs
        // none; a draw does, and the backend applies it.
        var pickedTokens: (any StepTokens)?
        var rows: [[Float]] = []
        let softcap = config.finalLogitSoftcapping.map(Float.init)
        if let logits {
            if wanting.contains(where: \.picksOnBackend) {
                let draws = wanting.map { $0.pick?.draw }
                pickedTokens =
                    draws.contains { $0 != nil } ? try b.pickRowsLater(logits, draws: draws, softcap: softcap) : try b.argmaxRowsLater(logits)
            }
            rows = wanting.contains { !$0.picksOnBackend } ? try b.downloadRows(logits) : []
            if let softcap { rows = rows.map { $0.softcapped(by: softcap) } }
        }
        return PendingForward(
            pickedTokens: pickedTokens, wantsLogits: batch.sequences.map { $0.wantsLogits && logits != nil },
            picksOnBackend: batch.sequences.map(\.picksOnBackend), rows: rows)
    }
}
