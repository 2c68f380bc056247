import Foundation
import HiFCCore

/// Picks the next token from logits as `SamplingParams` say: greedy at temperature 0, otherwise
/// softmax at the temperature restricted to the top-k and then the top-p nucleus, drawn from a
/// seeded generator (the same seed and logits give the same tokens).
public struct Sampler: Sendable {
    /// The parameters in force.
    public let params: SamplingParams
    private var state: UInt64

    /// A sampler for `params`; with no seed, one is drawn from the system generator.
    public init(_ params: SamplingParams) {
        self.params = params
        state = params.seed ?? UInt64.random(in: .min ... .max)
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

    /// Whether `sample` always returns the largest logit's index (temperature 0).
    public var isGreedy: Bool { !(params.temperature > 0) }

    /// Chooses a token id from `logits`.
    public mutating func sample(_ logits: [Float]) -> Int {
        guard !isGreedy, logits.count > 1 else { return Self.argmax(logits) }
        var candidates = Array(logits.indices)
        if params.topK > 0, params.topK < candidates.count {
            candidates.sort { logits[$0] > logits[$1] }
            candidates.removeSubrange(params.topK...)
        }
        let maximum = candidates.map { logits[$0] }.max() ?? 0
        var weights = candidates.map { Double(exp((logits[$0] - maximum) / params.temperature)) }
        if params.topP < 1 {
            let order = weights.indices.sorted { weights[$0] > weights[$1] }
            let total = weights.reduce(0, +)
            var kept: [Int] = []
            var mass = 0.0
            for i in order {
                kept.append(i)
                mass += weights[i] / total
                if mass >= Double(params.topP) { break }
            }
            candidates = kept.map { candidates[$0] }
            weights = kept.map { weights[$0] }
        }
        let total = weights.reduce(0, +)
        var target = nextUniform() * total
        for (i, w) in weights.enumerated() {
            target -= w
            if target < 0 { return candidates[i] }
        }
        return candidates[candidates.count - 1]
    }
}
