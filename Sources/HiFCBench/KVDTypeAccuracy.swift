import Backend
import CPUKernels
import Foundation
import HiFCCore
import Models

/// How much a KV dtype (fp8) changes a model's outputs against the backend's own (f32 on the CPU,
/// bf16 on a GPU), side by side on the same weights: the same text is scored token by token
/// through two KV pools, one of each dtype, and a greedy continuation is generated with each.
///
/// - Logits: at every scored position, `max |Δlogit| / max |logit|` of the candidate against the
///   reference; the largest and the mean over positions.
/// - Perplexity of the text under each (teacher forcing), and their relative difference.
/// - Greedy agreement: of `greedyTokens` generated after a prompt taken from the text, how many
///   are the same at the same position, and where the first difference is.
/// - The error of the KV values themselves under three scale granularities, from the reference
///   pool's values: one scale per token and KV head (the fp8 format's), per block and KV head,
///   and per layer over the whole text. It is what the format's granularity was chosen by.
public struct KVDTypeAccuracy: Sendable {
    /// The relative RMS error `sqrt(Σ(x − x̂)² / Σ x²)` of the K and V values quantized to E4M3
    /// with one scale per `granularity`.
    public struct GranularityError: Sendable, Codable {
        public var granularity: String
        public var keyError: Double
        public var valueError: Double
    }

    /// One measurement.
    public struct Figures: Sendable, Codable {
        public var reference: String
        public var candidate: String
        public var scoredTokens: Int
        public var maxLogitRelativeError: Double
        public var meanLogitRelativeError: Double
        public var referencePerplexity: Double
        public var candidatePerplexity: Double
        /// `candidatePerplexity / referencePerplexity − 1`.
        public var perplexityChange: Double
        public var promptTokens: Int
        public var greedyTokens: Int
        /// Generated positions whose tokens are the same under both dtypes.
        public var greedySame: Int
        /// The first generated position whose tokens differ; nil: none.
        public var firstDivergence: Int?
        public var granularity: [GranularityError]
    }

    public let model: any CausalLanguageModel
    public let blockTokens: Int
    public let reference: KVDTypeChoice
    public let candidate: KVDTypeChoice

    public init(model: any CausalLanguageModel, blockTokens: Int = 16, reference: KVDTypeChoice = .auto, candidate: KVDTypeChoice = .fp8) {
        self.model = model
        self.blockTokens = blockTokens
        self.reference = reference
        self.candidate = candidate
    }

    /// Scores `text` (token ids; at least two), then generates `greedyTokens` after its first
    /// `promptTokens` with each dtype.
    public func run(text: [Int], promptTokens: Int, greedyTokens: Int) throws -> Figures {
        precondition(text.count >= 2 && promptTokens >= 1 && promptTokens <= text.count && greedyTokens >= 1)
        let blocks = (max(text.count, promptTokens + greedyTokens) + blockTokens - 1) / blockTokens
        let table = Array(0..<blocks)
        let pools = [
            try model.makeKVCachePool(blockTokens: blockTokens, blocks: blocks, dtype: reference),
            try model.makeKVCachePool(blockTokens: blockTokens, blocks: blocks, dtype: candidate),
        ]
        // Teacher forcing, one token a step: every position's logits, each read from the KV as the
        // pool keeps it (its own token's K and V included).
        var negativeLogLikelihood = [0.0, 0.0]
        var errors: [Double] = []
        for position in 0..<(text.count - 1) {
            let logits = try pools.map { pool in
                try model.forward(ForwardBatch([ForwardSequence(tokens: [text[position]], startPosition: position, blockTable: table)]), kv: pool)[0]
            }
            for (n, row) in logits.enumerated() { negativeLogLikelihood[n] -= Self.logSoftmax(row, at: text[position + 1]) }
            let top = Double(logits[0].map(abs).max() ?? 0)
            let difference = zip(logits[0], logits[1]).map { Double(abs($0 - $1)) }.max() ?? 0
            errors.append(top > 0 ? difference / top : 0)
        }
        let granularity = try pools[0].layout.dtype == .float32 ? Self.granularityErrors(pools[0], tokens: text.count) : []
        let scored = text.count - 1
        let perplexities = negativeLogLikelihood.map { exp($0 / Double(scored)) }

        let prompt = Array(text[0..<promptTokens])
        let generated = try pools.map { pool in try greedy(prompt: prompt, count: greedyTokens, pool: pool, table: table) }
        let same = zip(generated[0], generated[1]).filter { $0 == $1 }.count
        return Figures(
            reference: pools[0].layout.dtype.rawValue, candidate: pools[1].layout.dtype.rawValue, scoredTokens: scored,
            maxLogitRelativeError: errors.max() ?? 0, meanLogitRelativeError: errors.reduce(0, +) / Double(max(errors.count, 1)),
            referencePerplexity: perplexities[0], candidatePerplexity: perplexities[1],
            perplexityChange: perplexities[1] / perplexities[0] - 1,
            promptTokens: promptTokens, greedyTokens: greedyTokens, greedySame: same,
            firstDivergence: generated[0].indices.first { generated[0][$0] != generated[1][$0] }, granularity: granularity)
    }

    /// `count` greedy tokens after `prompt`, the prompt prefilled in one step.
    private func greedy(prompt: [Int], count: Int, pool: any KVCachePool, table: [Int]) throws -> [Int] {
        func step(_ tokens: [Int], at position: Int) throws -> Int {
            let output = try model.step(
                ForwardBatch([ForwardSequence(tokens: tokens, startPosition: position, blockTable: table, pick: .argmax)]), kv: pool)[0]
            guard case .pickedToken(let token) = output else { preconditionFailure("a sequence picked on the backend returned \(output)") }
            return token
        }
        var tokens = [try step(prompt, at: 0)]
        while tokens.count < count { tokens.append(try step([tokens.last!], at: prompt.count + tokens.count - 1)) }
        return tokens
    }

    /// `log softmax(row)[index]`, in double.
    private static func logSoftmax(_ row: [Float], at index: Int) -> Double { Double(row[index]) - TokenLogprobs.logSumExp(row) }

    /// The E4M3 error of the f32 pool's first `tokens` tokens of K and V under each granularity.
    private static func granularityErrors(_ pool: any KVCachePool, tokens: Int) throws -> [GranularityError] {
        let layout = pool.layout
        let blocks = (tokens + layout.blockTokens - 1) / layout.blockTokens
        // values[layer][K|V][token] = kvHeads·headDim floats
        var values = [[[[Float]]]](repeating: [[], []], count: layout.layers)
        var buffer = [Float](repeating: 0, count: layout.blockElements)
        for block in 0..<blocks {
            try buffer.withUnsafeMutableBytes { try pool.copyBlock(block, to: $0) }
            for layer in 0..<layout.layers {
                for value in 0..<2 {
                    for token in 0..<min(layout.blockTokens, tokens - block * layout.blockTokens) {
                        let start = layout.elementOffset(layer: layer, value: value == 1, token: token)
                        values[layer][value].append(Array(buffer[start..<start + layout.tokenElements]))
                    }
                }
            }
        }
        let d = layout.headDim
        /// The relative RMS error of K (`value` 0) or V (1) when each head's values `x` are stored
        /// as `stored(layer, token, head, x)`.
        func relativeError(value: Int, stored: (_ layer: Int, _ token: Int, _ head: Int, _ x: ArraySlice<Float>) -> [Float]) -> Double {
            var squaredError = 0.0
            var squared = 0.0
            for layer in 0..<layout.layers {
                for (token, row) in values[layer][value].enumerated() {
                    for head in 0..<layout.kvHeads {
                        let x = row[head * d..<(head + 1) * d]
                        for (v, decoded) in zip(x, stored(layer, token, head, x)) {
                            squaredError += Double((v - decoded) * (v - decoded))
                            squared += Double(v * v)
                        }
                    }
                }
            }
            return squared > 0 ? (squaredError / squared).squareRoot() : 0
        }
        /// With one scale, `max |x| / 448`, for each group of (token, head) pairs that `group` names.
        func error(value: Int, group: (_ token: Int, _ head: Int) -> Int) -> Double {
            let amax = (0..<layout.layers).map { layer in
                var amax: [Int: Float] = [:]
                for (token, row) in values[layer][value].enumerated() {
                    for head in 0..<layout.kvHeads {
                        let top = row[head * d..<(head + 1) * d].map(abs).max() ?? 0
                        amax[group(token, head)] = max(amax[group(token, head), default: 0], top)
                    }
                }
                return amax
            }
            return relativeError(value: value) { layer, token, head, x in
                let scale = FP8E4M3.scale(amax: amax[layer][group(token, head)]!)
                return x.map { scale > 0 ? FP8E4M3.decode(FP8E4M3.encode($0 / scale)) * scale : 0 }
            }
        }
        /// With each (token, head)'s scale picked as the CPU backend's writer picks it.
        func searchedScaleError(value: Int) -> Double {
            relativeError(value: value) { _, _, _, x in
                var codes = [UInt8](repeating: 0, count: x.count)
                let scale = hifc_fp8_e4m3_code_head(Array(x), &codes, Int32(x.count))
                return codes.map { hifc_fp8_e4m3_to_float($0) * scale }
            }
        }
        let groupings: [(String, (Int, Int) -> Int)] = [
            ("token and KV head", { token, head in token * layout.kvHeads + head }),
            ("block and KV head", { token, head in token / layout.blockTokens * layout.kvHeads + head }),
            ("layer", { _, _ in 0 }),
        ]
        let searched = GranularityError(
            granularity: "token and KV head, least-error scale (the CPU writer's)", keyError: searchedScaleError(value: 0),
            valueError: searchedScaleError(value: 1))
        return [searched]
            + groupings.map { name, group in
                GranularityError(granularity: name, keyError: error(value: 0, group: group), valueError: error(value: 1, group: group))
            }
    }
}
