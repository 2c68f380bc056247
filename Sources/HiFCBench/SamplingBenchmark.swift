import Backend
import Foundation
import HiFCCore
import Models

/// The host's time to choose one token from a vocabulary's logits, for each kind of request the
/// server takes: greedy, temperature, top-p, top-k, min-p, penalties, and log probabilities. The
/// engine does this per sampled sequence per step on its own thread (a greedy request without
/// log probabilities leaves the pick to the backend), so at batch B it is B times this a step.
///
/// The logits are normal with a standard deviation of 2.5 (seeded): over a 128K vocabulary the
/// largest sits about 11 above the mean, as a language model's tend to.
public struct SamplingBenchmark: Sendable {
    /// One kind of request.
    public struct Case: Sendable {
        public var name: String
        public var params: SamplingParams
        /// Alternatives listed with each token's log probability; nil: none asked for.
        public var logprobs: Int?
    }

    /// The kinds measured.
    public static let cases: [Case] = [
        Case(name: "greedy", params: SamplingParams(temperature: 0)),
        Case(name: "temperature 1", params: SamplingParams(temperature: 1)),
        Case(name: "temperature 0.7, top_p 0.9", params: SamplingParams(temperature: 0.7, topP: 0.9)),
        Case(name: "temperature 0.7, top_k 40", params: SamplingParams(temperature: 0.7, topK: 40)),
        Case(name: "temperature 0.7, min_p 0.05", params: SamplingParams(temperature: 0.7, minP: 0.05)),
        Case(name: "greedy, presence_penalty 0.5", params: SamplingParams(temperature: 0, presencePenalty: 0.5)),
        Case(name: "greedy, logprobs 5", params: SamplingParams(temperature: 0), logprobs: 5),
    ]

    /// The sampler's top-p and top-k before 2026-12-05, for comparison: a sort of the whole
    /// vocabulary (by logit for top-k, by weight for top-p) on every token.
    static func sortedChoice(_ logits: [Float], temperature: Float, topK: Int, topP: Float, uniform: Double) -> Int {
        var candidates = Array(logits.indices)
        if topK > 0, topK < candidates.count {
            candidates.sort { logits[$0] > logits[$1] }
            candidates.removeSubrange(topK...)
        }
        let maximum = candidates.map { logits[$0] }.max() ?? 0
        var weights = candidates.map { Double(exp((logits[$0] - maximum) / temperature)) }
        if topP < 1 {
            let order = weights.indices.sorted { weights[$0] > weights[$1] }
            let total = weights.reduce(0, +)
            var kept: [Int] = []
            var mass = 0.0
            for i in order {
                kept.append(i)
                mass += weights[i] / total
                if mass >= Double(topP) { break }
            }
            candidates = kept.map { candidates[$0] }
            weights = kept.map { weights[$0] }
        }
        var target = uniform * weights.reduce(0, +)
        for (i, w) in weights.enumerated() {
            target -= w
            if target < 0 { return candidates[i] }
        }
        return candidates[candidates.count - 1]
    }

    public let vocabulary: Int
    public let tokens: Int
    /// Sequences sampled together in one step, for the batch cases (`BatchSampling` against one
    /// row after another on the calling thread); below 2, none.
    public let rows: Int
    /// A model's logits to sample from instead of the synthetic ones (every row of the batch
    /// cases the same); nil: synthetic.
    public let modelLogits: [Float]?

    /// Synthetic logits of `vocabulary` tokens, or `modelLogits` (whose count is then the
    /// vocabulary).
    public init(vocabulary: Int, tokens: Int, rows: Int = 0, modelLogits: [Float]? = nil) {
        self.vocabulary = modelLogits?.count ?? vocabulary
        self.tokens = tokens
        self.rows = rows
        self.modelLogits = modelLogits
    }

    /// The logits of one row: the model's, or normal with a standard deviation of 2.5.
    private func logitsRow(_ random: inout SeededGenerator) -> [Float] {
        modelLogits ?? (0..<vocabulary).map { _ in Float(Self.normal(&random) * 2.5) }
    }

    /// Milliseconds a token for each case, in `cases`' order, after the two cases of the sampler
    /// before (`sortedChoice`); then, with `rows` of 2 or more, milliseconds a step of `rows`
    /// top-p sequences sampled one after another and by `BatchSampling`.
    public func run() -> [(name: String, milliseconds: Double)] {
        single() + (rows > 1 ? batch() : [])
    }

    /// `rows` sequences' top-p choice a step, each its own sampler and logits row, for `tokens`
    /// steps: one after another, then on several threads.
    private func batch() -> [(name: String, milliseconds: Double)] {
        var random = SeededGenerator(seed: 0xBA7C)
        let logits = (0..<rows).map { _ in logitsRow(&random) }
        let params = SamplingParams(temperature: 0.7, topP: 0.9, seed: 1)
        var serial = [Sampler](repeating: Sampler(params), count: rows)
        var parallel = serial
        var checksum = 0
        var start = Date()
        for _ in 0..<tokens {
            for i in 0..<rows { checksum &+= serial[i].sample(logits[i]) }
        }
        let one = Date().timeIntervalSince(start)
        start = Date()
        for _ in 0..<tokens {
            checksum &-= BatchSampling.sample(&parallel, logits) { $0.sample($1) }.reduce(0, &+)
        }
        let several = Date().timeIntervalSince(start)
        // The same samplers on the same rows choose the same tokens either way.
        precondition(checksum == 0, "batch sampling chose other tokens than one row at a time")
        return [
            ("top_p 0.9, \(rows) rows a step, one thread", one * 1000 / Double(tokens)),
            ("top_p 0.9, \(rows) rows a step, threads", several * 1000 / Double(tokens)),
        ]
    }

    /// One standard normal draw (Box-Muller).
    private static func normal(_ random: inout SeededGenerator) -> Double {
        let u = Double.random(in: Double.ulpOfOne..<1, using: &random)
        let v = Double.random(in: Double.ulpOfOne..<1, using: &random)
        return sqrt(-2 * log(u)) * cos(2 * Double.pi * v)
    }

    private func single() -> [(name: String, milliseconds: Double)] {
        var random = SeededGenerator(seed: 0x5EED)
        func uniform() -> Double { Double.random(in: Double.ulpOfOne..<1, using: &random) }
        let logits = logitsRow(&random)
        let sorted = [("top_p 0.9 by a full sort (before)", 0, Float(0.9)), ("top_k 40 by a full sort (before)", 40, Float(1))].map {
            name, topK, topP in
            let start = Date()
            var checksum = 0
            for _ in 0..<tokens {
                checksum &+= Self.sortedChoice(logits, temperature: 0.7, topK: topK, topP: topP, uniform: uniform())
            }
            precondition(checksum != Int.min)
            return (name: name, milliseconds: Date().timeIntervalSince(start) * 1000 / Double(tokens))
        }
        return sorted
            + Self.cases.map { kind in
                var params = kind.params
                params.seed = 1
                var sampler = Sampler(params)
                var checksum = 0
                let start = Date()
                for _ in 0..<tokens {
                    let token = sampler.sample(logits)
                    if let top = kind.logprobs { checksum &+= TokenLogprobs(logits: logits, chosen: token, top: top).top.count }
                    checksum &+= token
                }
                let seconds = Date().timeIntervalSince(start)
                precondition(checksum != Int.min)  // the work is used
                return (kind.name, seconds * 1000 / Double(tokens))
            }
    }
}
