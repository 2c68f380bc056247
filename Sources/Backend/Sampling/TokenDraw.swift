import CPUKernels
import Foundation
import HiFCCore

/// One token drawn from a row of logits at a temperature, among the top-k, above the min-p floor
/// and within the top-p nucleus, with `uniform` as the draw's random number: what `Sampler`
/// does after its adjustments, as a value a backend can take where the logits are. The same
/// draw on the same logits gives the same token.
///
/// The candidates are ordered by logit, largest first (of equal logits the lower id first); min-p
/// keeps those whose weight `e^((logit - max) / T)` is at least `minP` (the largest is 1), top-p
/// the shortest prefix of them whose weights reach `topP` of theirs, and the token is the one at
/// which the running sum of weights along that order passes `uniform` of the nucleus's; without
/// top-p, along the vocabulary's order instead (the same distribution).
public struct TokenDraw: Sendable, Hashable {
    /// Greater than 0 (a temperature of 0 is greedy: no draw).
    public var temperature: Float
    /// The most candidates (0 or the vocabulary or more: no limit).
    public var topK: Int
    /// The nucleus's share of the mass (1: no nucleus).
    public var topP: Float
    /// The least weight relative to the largest (0: no floor).
    public var minP: Float
    /// The draw's random number, in [0, 1).
    public var uniform: Double

    /// A draw; see the properties.
    public init(temperature: Float, topK: Int = 0, topP: Float = 1, minP: Float = 0, uniform: Double) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.uniform = uniform
    }

    /// The token this draw picks from `logits`.
    public func pick(from logits: [Float]) -> Int {
        guard logits.count > 1 else { return 0 }
        if topK > 0, topK < logits.count { return fromTopK(logits) }
        return fromVocabulary(logits)
    }

    /// Temperature sampling over the whole vocabulary: every token's weight at once (a vector
    /// exp), min-p as a floor on the weights, and the top-p nucleus found through a histogram of
    /// them, so that only the nucleus and the tokens of its boundary bucket are sorted. At 128K
    /// logits, finding the nucleus by selection (a prefix of 64 candidates, then 256, 1024, ...)
    /// took 3.8 ms a token for top-p 0.9 on this project's VM, this 0.37 ms (logprobs.md).
    private func fromVocabulary(_ logits: [Float]) -> Int {
        var maximum = -Float.infinity
        for logit in logits where logit > maximum { maximum = logit }
        var weights = [Float](repeating: 0, count: logits.count)
        var total = weights.withUnsafeMutableBufferPointer { out in
            logits.withUnsafeBufferPointer { hifc_exp_scaled($0.baseAddress, out.baseAddress, $0.count, maximum, 1 / temperature) }
        }
        // The largest weight is e^0 = 1, so min-p's floor is minP itself. A NaN weight is below
        // any floor, so it is never drawn.
        let floor = max(minP, 0)
        if floor > 0 { total = weights.reduce(0.0) { $1 >= floor ? $0 + Double($1) : $0 } }
        if topP < 1 {
            let nucleus = Self.nucleus(weights: weights, logits: logits, floor: floor, goal: Double(topP) * total)
            return draw(from: nucleus, weights: weights)
        }
        var target = uniform * total
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
    private func draw(from tokens: [Int], weights: [Float]) -> Int {
        var total = 0.0
        for token in tokens { total += Double(weights[token]) }
        var target = uniform * total
        for token in tokens {
            target -= Double(weights[token])
            if target < 0 { return token }
        }
        return tokens.last ?? 0
    }

    /// Temperature sampling among the `topK` largest logits, found by selection and sorted
    /// (`LargestFirst`); then min-p and the top-p nucleus among them. Sorted, the candidates
    /// that min-p keeps and the nucleus are both prefixes.
    private func fromTopK(_ logits: [Float]) -> Int {
        let candidates = LargestFirst.positions(topK, of: logits)
        let maximum = logits[candidates[0]]
        // The largest weight is exp(0) = 1, so min-p's floor is minP itself.
        let weights = candidates.map { Double(exp((logits[$0] - maximum) / temperature)) }
        var count = minP > 0 ? weights.prefix { $0 >= Double(minP) }.count : weights.count
        var total = weights[..<count].reduce(0, +)
        if topP < 1 {
            let goal = Double(topP) * total
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
        var target = uniform * total
        for i in 0..<count {
            target -= weights[i]
            if target < 0 { return candidates[i] }
        }
        return candidates[count - 1]
    }
}
