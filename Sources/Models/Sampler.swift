import Backend
import Foundation
import HiFCCore

/// Picks the next token from logits as `SamplingParams` say. First the logits are adjusted (bias,
/// presence, frequency and repetition penalties, and EOS held off until `minTokens`), in the order
/// vLLM applies them; then greedy at temperature 0, otherwise softmax at the temperature restricted
/// to the top-k, the top-p nucleus and the min-p floor, drawn from a seeded generator (the same
/// seed and logits give the same tokens).
///
/// The sampler remembers the tokens it chose, for the penalties: it must see every token of its
/// sequence, which is why the engine lets the backend pick a token itself (greedily, or by
/// `nextDraw`) only where nothing adjusts the logits.
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
        return TokenDraw(params, uniform: nextUniform()).pick(from: logits)
    }

    /// The next token's draw, for a backend to pick where the logits are, where nothing but the
    /// draw decides it (a temperature, no adjustments); nil otherwise. Takes the draw's random
    /// number, as `sample` would have.
    public mutating func nextDraw() -> TokenDraw? {
        guard params.isPlainDraw else { return nil }
        return TokenDraw(params, uniform: nextUniform())
    }
}

extension TokenDraw {
    /// `params`' draw with `uniform` as its random number.
    init(_ params: SamplingParams, uniform: Double) {
        self.init(temperature: params.temperature, topK: params.topK, topP: params.topP, minP: params.minP, uniform: uniform)
    }
}
