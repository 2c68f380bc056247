import Backend
import Foundation
import HiFCCore

/// Generates one sequence with a KV pool of its own: chunked prefill, then decode until EOS, a
/// stop string, a stop token or `maxTokens`. The engine does continuous batching instead; this is
/// the simple loop behind `hifc generate`.
public struct TextGenerator: Sendable {
    /// Why generation ended.
    public enum Finish: String, Sendable {
        /// EOS, a stop token or a stop string.
        case stop
        /// `maxTokens` or the model's context reached.
        case length
    }

    /// What a generation produced and how long it took.
    public struct Result: Sendable {
        public var tokenIDs: [Int]
        public var text: String
        public var finish: Finish
        public var prefillSeconds: Double
        public var decodeSeconds: Double
    }

    public let model: LoadedModel
    /// Tokens per KV block.
    public let blockTokens: Int
    /// Most prompt tokens per forward step.
    public let prefillChunk: Int

    public init(model: LoadedModel, blockTokens: Int = 64, prefillChunk: Int = 512) {
        self.model = model
        self.blockTokens = blockTokens
        self.prefillChunk = prefillChunk
    }

    /// Generates after `prompt`, calling `onText` with each text delta as soon as it is complete.
    public func generate(prompt: [Int], params: SamplingParams, onText: (String) -> Void = { _ in }) throws -> Result {
        guard !prompt.isEmpty else { throw ModelError.badInput("the prompt is empty") }
        let limit = model.config.maxPositions
        let budget = min(params.maxTokens, limit - prompt.count)
        guard budget > 0 else {
            throw ModelError.badInput("the prompt has \(prompt.count) tokens; the model's context is \(limit)")
        }
        let total = prompt.count + budget
        let blocks = (total + blockTokens - 1) / blockTokens
        let pool = try model.model.makeKVCachePool(blockTokens: blockTokens, blocks: blocks)
        let table = Array(0..<blocks)
        let endIDs = (params.ignoreEOS ? [] : model.eosTokenIDs).union(params.stopTokenIDs)
        var sampler = Sampler(params, prompt: prompt, endTokens: endIDs)
        var detokenizer = IncrementalDetokenizer(tokenizer: model.tokenizer)
        var stops = StopStringFilter(params.stop)

        let prefillStart = Date()
        var logits: [Float] = []
        var position = 0
        while position < prompt.count {
            let end = min(prompt.count, position + prefillChunk)
            logits = try model.model.forward(
                ForwardBatch([
                    ForwardSequence(
                        tokens: Array(prompt[position..<end]), startPosition: position, blockTable: table,
                        wantsLogits: end == prompt.count)
                ]), kv: pool)[0]
            position = end
        }
        let prefillSeconds = Date().timeIntervalSince(prefillStart)

        let decodeStart = Date()
        var generated: [Int] = []
        var text = ""
        var finish = Finish.length
        while generated.count < budget {
            let next = sampler.sample(logits)
            generated.append(next)
            if endIDs.contains(next) {
                finish = .stop
                break
            }
            let delta = stops.feed(detokenizer.append(next))
            if !delta.isEmpty {
                text += delta
                onText(delta)
            }
            if stops.stopped {
                finish = .stop
                break
            }
            if generated.count == budget { break }
            logits = try model.model.forward(
                ForwardBatch([
                    ForwardSequence(
                        tokens: [next], startPosition: position, blockTable: table)
                ]), kv: pool)[0]
            position += 1
        }
        if !stops.stopped {
            let rest = stops.feed(detokenizer.flush()) + stops.finish()
            if !rest.isEmpty {
                text += rest
                onText(rest)
            }
        }
        return Result(
            tokenIDs: generated, text: text, finish: finish, prefillSeconds: prefillSeconds,
            decodeSeconds: Date().timeIntervalSince(decodeStart))
    }
}
