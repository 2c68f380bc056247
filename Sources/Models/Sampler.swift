import CPUKernels
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
        if params.topK > 0, params.topK < logits.count { return chooseFromTopK(logits) }
        return chooseFromVocabulary(logits)
    }

    /// Temperature sampling over the whole vocabulary: every token's weight at once (a vector
    /// exp), min-p as a floor on the weights, and the top-p nucleus found through a histogram of
    /// them, so that only the nucleus and the tokens of its boundary bucket are sorted. At 128K
    /// logits, finding the nucleus by selection (a prefix of 64 candidates, then 256, 1024, ...)
    /// took 3.8 ms a token for top-p 0.9 on this project's VM, this 0.37 ms (logprobs.md).
    private mutating func chooseFromVocabulary(_ logits: [Float]) -> Int {
        var maximum = -Float.infinity
        for logit in logits where logit > maximum { maximum = logit }
        var weights = [Float](repeating: 0, count: logits.count)
        var total = weights.withUnsafeMutableBufferPointer { out in
            logits.withUnsafeBufferPointer { hifc_exp_scaled($0.baseAddress, out.baseAddress, $0.count, maximum, 1 / params.temperature) }
        }
        // The largest weight is e^0 = 1, so min-p's floor is minP itself. A NaN weight is below
        // any floor, so it is never drawn.
        let floor = max(params.minP, 0)
        if floor > 0 { total = weights.reduce(0.0) { $1 >= floor ? $0 + Double($1) : $0 } }
        if params.topP < 1 {
            let nucleus = Self.nucleus(weights: weights, logits: logits, floor: floor, goal: Double(params.topP) * total)
            return draw(from: nucleus, weights: weights)
        }
        var target = nextUniform() * total
        var last = 0
        for (token, weight) in weights.enumerated() where weight >= floor {
            target -= Double(weight)
            if target < 0 { return token }
            last = token
        }
        return last
    }

    /// The top-p nucleus: the most likely tokens of weight `floor` or more, most likely first (of
    /// equal logits the lower id first, as `LargestFirst`), until their weights reach `goal`.
    /// Weights in [0, 1] ordered as numbers are ordered as bit patterns, so the top 16 bits (7 of
    /// the mantissa: buckets 0.8% apart) put each in a bucket of the histogram; the buckets from
    /// the top down to the one that reaches the goal hold the nucleus, and only their tokens are
    /// sorted.
    static func nucleus(weights: [Float], logits: [Float], floor: Float, goal: Double) -> [Int] {
        let top = Int(Float(1).bitPattern >> 16)
        var mass = [Double](repeating: 0, count: top + 1)
        weights.withUnsafeBufferPointer { w in
            for weight in w where weight >= floor { mass[min(Int(weight.bitPattern >> 16), top)] += Double(weight) }
        }
        // The histogram sums the weights in another order than the walk below; a goal raised by
        // far more than that rounding (at most n·2^-53 of the total) keeps its buckets enough.
        let bucketGoal = goal * (1 + 1e-9)
        var boundary = top
        var above = 0.0
        while boundary > 0, above + mass[boundary] < bucketGoal {
            above += mass[boundary]
            boundary -= 1
        }
        var candidates: [Int] = []
        weights.withUnsafeBufferPointer { w in
            for (token, weight) in w.enumerated() where weight >= floor && Int(weight.bitPattern >> 16) >= boundary {
                candidates.append(token)
            }
        }
        candidates.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        // Only where the goal is past every weight's sum (top_p within rounding of 1) does the
        // walk not reach it: the nucleus is then every candidate.
        var reached = 0.0
        for (i, token) in candidates.enumerated() {
            reached += Double(weights[token])
            if reached >= goal { return Array(candidates[...i]) }
        }
        return candidates
    }

    /// One of `tokens`, drawn in proportion to its weight.
    private mutating func draw(from tokens: [Int], weights: [Float]) -> Int {
        var total = 0.0
        for token in tokens { total += Double(weights[token]) }
        var target = nextUniform() * total
        for token in tokens {
            target -= Double(weights[token])
            if target < 0 { return token }
        }
        return tokens.last ?? 0
    }

    /// Temperature sampling among the `topK` largest logits, found by selection and sorted
    /// (`LargestFirst`); then min-p and the top-p nucleus among them. Sorted, the candidates
    /// that min-p keeps and the nucleus are both prefixes.
    private mutating func chooseFromTopK(_ logits: [Float]) -> Int {
        let candidates = LargestFirst.positions(params.topK, of: logits)
        let maximum = logits[candidates[0]]
        // The largest weight is exp(0) = 1, so min-p's floor is minP itself.
        let weights = candidates.map { Double(exp((logits[$0] - maximum) / params.temperature)) }
        var count = params.minP > 0 ? weights.prefix { $0 >= Double(params.minP) }.count : weights.count
        var total = weights[..<count].reduce(0, +)
        if params.topP < 1 {
            let goal = Double(params.topP) * total
            var mass = 0.0
            for i in 0..<count {
                mass += weights[i]
                if mass >= goal {
                    count = i + 1
                    break
                }
            }
            total = weights[..<count].reduce(0, +)
        }
        var target = nextUniform() * total
        for i in 0..<count {
            target -= weights[i]
            if target < 0 { return candidates[i] }
        }
        return candidates[count - 1]
    }
}
