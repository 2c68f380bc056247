import Foundation
import HiFCCore

/// Picks the next token from logits as `SamplingParams` say. First the logits are adjusted (bias,
/// presence, frequency and repetition penalties, and EOS held off until `minTokens`), in the order
/// vLLM applies them; then greedy at temperature 0, otherwise softmax at the temperature restricted
/// to the top-k, the top-p nucleus and the min-p floor, drawn from a seeded generator (the same
/// seed and logits give the same tokens).
///
/// The sampler remembers the tokens it chose, for the penalties: it must see every token of its
/// sequence, which is why the engine lets the backend pick a token itself only where `isGreedy`.
public struct Sampler: Sendable {
    /// The parameters in force.
    public let params: SamplingParams
    private var state: UInt64
    /// How many times each token was chosen so far.
    private var outputCounts: [Int: Int] = [:]
    private var generated = 0
    /// The prompt's tokens, for the repetition penalty (empty when there is none).
    private let promptTokens: Set<Int>
    /// Tokens that end generation, held off until `minTokens` are generated.
    private let endTokens: Set<Int>

    /// A sampler for `params` after `prompt`, whose generation `endTokens` (the model's EOS
    /// tokens; the params' stop token ids are added here) would end; with no seed, one is drawn
    /// from the system generator.
    public init(_ params: SamplingParams, prompt: [Int] = [], endTokens: Set<Int> = []) {
        self.params = params
        state = params.seed ?? UInt64.random(in: .min ... .max)
        promptTokens = params.repetitionPenalty != 1 ? Set(prompt) : []
        self.endTokens = params.minTokens > 0 ? endTokens.union(params.stopTokenIDs) : []
    }

    /// The next random number in [0, 1) (SplitMix64).
    private mutating func nextUniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * 0x1p-53
    }

    /// The index of the largest logit (the first on ties).
    public static func argmax(_ logits: [Float]) -> Int {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        return best
    }

    /// Whether `sample` always returns the largest raw logit's index (temperature 0, nothing
    /// adjusted), so a backend may pick the token itself.
    public var isGreedy: Bool { !(params.temperature > 0) && !params.adjustsLogits }

    /// Chooses a token id from `logits`, and remembers it.
    public mutating func sample(_ logits: [Float]) -> Int {
        let token = choose(params.adjustsLogits ? adjusted(logits) : logits)
        outputCounts[token, default: 0] += 1
        generated += 1
        return token
    }

    /// `logits` with the bias and penalties applied, and the end tokens out of reach before
    /// `minTokens`.
    private func adjusted(_ logits: [Float]) -> [Float] {
        var out = logits
        for (token, bias) in params.logitBias where out.indices.contains(token) { out[token] += bias }
        if params.repetitionPenalty != 1 {
            let p = params.repetitionPenalty
            for token in promptTokens.union(outputCounts.keys) where out.indices.contains(token) {
                out[token] = out[token] > 0 ? out[token] / p : out[token] * p
            }
        }
        for (token, count) in outputCounts where out.indices.contains(token) {
            out[token] -= params.frequencyPenalty * Float(count) + params.presencePenalty
        }
        if generated < params.minTokens {
            for token in endTokens where out.indices.contains(token) { out[token] = -.infinity }
        }
        return out
    }

    private mutating func choose(_ logits: [Float]) -> Int {
        guard params.temperature > 0, logits.count > 1 else { return Self.argmax(logits) }
        // The candidates are `order[..<count]`; their weights are kept by token id, so that
        // reordering the candidates leaves them in place.
        var order = Array(logits.indices)
        var count = logits.count
        if params.topK > 0, params.topK < count {
            LargestFirst.arrange(&order, from: 0, to: params.topK, end: count, by: logits)
            count = params.topK
        }
        let maximum = order[..<count].lazy.map { logits[$0] }.max() ?? 0
        var weights = [Double](repeating: 0, count: logits.count)
        for token in order[..<count] { weights[token] = Double(exp((logits[token] - maximum) / params.temperature)) }
        if params.minP > 0 {
            // The largest weight is exp(0) = 1, so the floor is minP itself.
            var kept = 0
            for i in 0..<count where weights[order[i]] >= Double(params.minP) {
                order.swapAt(kept, i)
                kept += 1
            }
            count = kept
        }
        if params.topP < 1 { count = nucleus(&order, count: count, weights: weights, logits: logits) }
        var total = 0.0
        for token in order[..<count] { total += weights[token] }
        var target = nextUniform() * total
        for token in order[..<count] {
            target -= weights[token]
            if target < 0 { return token }
        }
        return order[count - 1]
    }

    /// How many of the candidates `order[..<count]` the top-p nucleus keeps: the most likely
    /// first, until their weights reach `topP` of the total. They are sorted a growing prefix at a
    /// time (64, then 4x), since the nucleus is usually a few dozen tokens of a whole vocabulary.
    private func nucleus(_ order: inout [Int], count: Int, weights: [Double], logits: [Float]) -> Int {
        var total = 0.0
        for token in order[..<count] { total += weights[token] }
        let goal = Double(params.topP) * total
        var mass = 0.0
        var sorted = 0
        var next = min(count, 64)
        while true {
            LargestFirst.arrange(&order, from: sorted, to: next, end: count, by: logits)
            for i in sorted..<next {
                mass += weights[order[i]]
                if mass >= goal { return i + 1 }
            }
            if next == count { return count }
            sorted = next
            next = min(count, next * 4)
        }
    }
}
