import Foundation
import HiFCCore
import XCTest

@testable import Models

/// The sampler's logit adjustments (bias, penalties, `minTokens`, `minP`) and the log
/// probabilities reported for generated tokens.
final class LogitAdjustmentTests: XCTestCase {
    private func greedyRun(_ params: SamplingParams, _ logits: [Float], steps: Int, prompt: [Int] = [], ends: Set<Int> = []) -> [Int] {
        var sampler = Sampler(params, prompt: prompt, endTokens: ends)
        return (0..<steps).map { _ in sampler.sample(logits) }
    }

    func testLogitBiasPicksATokenTheModelWouldNot() {
        let logits: [Float] = [3, 1, 0.5]
        XCTAssertEqual(greedyRun(SamplingParams(temperature: 0, logitBias: [2: 5]), logits, steps: 3), [2, 2, 2])
        XCTAssertEqual(greedyRun(SamplingParams(temperature: 0, logitBias: [0: -100]), logits, steps: 2), [1, 1])
    }

    func testOnlyAnUnadjustedTemperatureGivesADrawForTheBackend() {
        var plain = Sampler(SamplingParams(temperature: 0.7, topP: 0.9, seed: 4))
        var twin = Sampler(SamplingParams(temperature: 0.7, topP: 0.9, seed: 4))
        let logits: [Float] = [2, 1.5, 1, 0, -1]
        for _ in 0..<20 {
            XCTAssertEqual(plain.nextDraw()?.pick(from: logits), twin.sample(logits), "a draw takes the random number sampling would")
        }
        var greedy = Sampler(SamplingParams(temperature: 0))
        XCTAssertNil(greedy.nextDraw(), "greedy: the backend's argmax")
        var penalized = Sampler(SamplingParams(temperature: 0.7, presencePenalty: 0.5))
        XCTAssertNil(penalized.nextDraw(), "a penalty needs the sampler to see the logits")
        var biased = Sampler(SamplingParams(temperature: 0.7, logitBias: [2: 5]))
        XCTAssertNil(biased.nextDraw())
        XCTAssertTrue(SamplingParams(temperature: 0.7, topP: 0.9).isPlainDraw)
        for params in [
            SamplingParams(temperature: 0), SamplingParams(temperature: 0.7, minTokens: 2), SamplingParams(temperature: 0.7, repetitionPenalty: 1.1),
        ] {
            XCTAssertFalse(params.isPlainDraw, "\(params)")
        }
    }

    func testFrequencyPenaltyGrowsWithEachRepeatAndPresencePenaltyDoesNot() {
        let logits: [Float] = [1.0, 0.9, 0.0]
        XCTAssertEqual(greedyRun(SamplingParams(temperature: 0, frequencyPenalty: 0.2), logits, steps: 4), [0, 1, 0, 1])
        XCTAssertEqual(greedyRun(SamplingParams(temperature: 0, presencePenalty: 0.5), logits, steps: 4), [0, 1, 0, 0])
        XCTAssertEqual(
            greedyRun(SamplingParams(temperature: 0, presencePenalty: -0.5), logits, steps: 3), [0, 0, 0], "a negative penalty favours repeats")
    }

    func testRepetitionPenaltyCoversThePromptAndScalesLogitsByTheirSign() {
        // Token 0 (in the prompt) falls from 2.0 to 1.0, below token 1's 1.5; once 1 is generated
        // it falls to 0.75 and 0 leads again.
        let logits: [Float] = [2.0, 1.5, -1.0, -1.2]
        XCTAssertEqual(greedyRun(SamplingParams(temperature: 0, repetitionPenalty: 2), logits, steps: 2, prompt: [0, 2]), [1, 0])
        var sampler = Sampler(SamplingParams(temperature: 0, repetitionPenalty: 2, logitBias: [0: -10, 1: -10]), prompt: [2])
        XCTAssertEqual(sampler.sample(logits), 3, "-2.0 (penalized, in the prompt) < -1.2")
    }

    func testMinTokensHoldsOffTheEndTokensUntilReached() {
        let logits: [Float] = [0.5, 0.1, 2.0]  // 2 is EOS and the most likely
        XCTAssertEqual(greedyRun(SamplingParams(temperature: 0, minTokens: 2), logits, steps: 3, ends: [2]), [0, 0, 2])
        XCTAssertEqual(
            greedyRun(SamplingParams(temperature: 0, stopTokenIDs: [0], minTokens: 1), logits, steps: 2, ends: [2]), [1, 2],
            "stop token ids are held off too")
        XCTAssertEqual(greedyRun(SamplingParams(temperature: 0), logits, steps: 1, ends: [2]), [2])
    }

    func testMinPKeepsOnlyTokensNearTheMostLikely() {
        let logits: [Float] = [0, -0.1, -5, -6]
        var sampler = Sampler(SamplingParams(temperature: 1, minP: 0.5, seed: 3))
        XCTAssertEqual(Set((0..<300).map { _ in sampler.sample(logits) }), [0, 1])
        var open = Sampler(SamplingParams(temperature: 1, seed: 3))
        XCTAssertEqual(Set((0..<3000).map { _ in open.sample(logits) }).count, 4)
    }

    func testLogprobsAreTheRawLogSoftmaxWithTheMostLikelyFirst() {
        var generator = SystemRandomNumberGenerator()
        let logits = (0..<50_000).map { _ in Float.random(in: -20...20, using: &generator) }
        let lp = TokenLogprobs(logits: logits, chosen: 123, top: 5)
        let total = logits.reduce(0.0) { $0 + exp(Double($1)) }
        func reference(_ i: Int) -> Double { Double(logits[i]) - log(total) }
        XCTAssertEqual(Double(lp.chosen.logprob), reference(123), accuracy: 1e-4)
        XCTAssertEqual(lp.chosen.token, 123)
        let expected = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(5)
        XCTAssertEqual(lp.top.map(\.token), Array(expected))
        for entry in lp.top { XCTAssertEqual(Double(entry.logprob), reference(entry.token), accuracy: 1e-4) }
        XCTAssertEqual(
            TokenLogprobs(logits: [1, 1, 0], chosen: 2, top: 5).top.map(\.token), [0, 1, 2],
            "ties keep the lower id first; k past the vocabulary lists it all")
        XCTAssertEqual(TokenLogprobs(logits: [1, 1, 0], chosen: 2, top: 0).top, [])
    }

    func testTopPSamplesOnlyTheNucleusAndTopKOnlyTheKMostLikely() {
        var generator = SystemRandomNumberGenerator()
        let logits = (0..<4000).map { _ in Float.random(in: -8...8, using: &generator) }
        let temperature: Float = 0.5
        let byLogit = logits.indices.sorted { logits[$0] > logits[$1] }
        let weights = byLogit.map { exp(Double((logits[$0] - logits[byLogit[0]]) / temperature)) }
        let total = weights.reduce(0, +)
        var mass = 0.0
        let nucleusSize =
            weights.firstIndex {
                mass += $0
                return mass >= 0.9 * total
            }! + 1
        XCTAssertGreaterThan(nucleusSize, 64, "the nucleus needs more than the first prefix")
        let nucleus = Set(byLogit.prefix(nucleusSize))
        var topP = Sampler(SamplingParams(temperature: temperature, topP: 0.9, seed: 5))
        let drawn = Set((0..<300).map { _ in topP.sample(logits) })
        XCTAssertTrue(drawn.isSubset(of: nucleus))
        XCTAssertGreaterThan(drawn.count, min(nucleusSize, 300) / 4)
        var topK = Sampler(SamplingParams(temperature: 2, topK: 100, seed: 5))
        XCTAssertTrue(Set((0..<300).map { _ in topK.sample(logits) }).isSubset(of: Set(byLogit.prefix(100))))
    }

    func testTemperatureDrawsFollowTheSoftmaxOverTheWholeVocabulary() {
        let logits: [Float] = [2, 1, 0, -1] + [Float](repeating: -30, count: 1000)
        let temperature: Float = 0.8
        let weights = logits.map { exp(Double($0 / temperature)) }
        let total = weights.reduce(0, +)
        var sampler = Sampler(SamplingParams(temperature: temperature, seed: 11))
        var counts = [Int: Int]()
        let draws = 20000
        for _ in 0..<draws { counts[sampler.sample(logits), default: 0] += 1 }
        for token in 0..<4 {
            let expected = weights[token] / total
            XCTAssertEqual(Double(counts[token, default: 0]) / Double(draws), expected, accuracy: 0.01, "token \(token)")
        }
        var nucleus = Sampler(SamplingParams(temperature: temperature, topP: 0.8, minP: 0.2, seed: 11))
        // min_p 0.2 keeps tokens 0 and 1 (weights 1 and 0.29); 0.8 of their mass needs both.
        XCTAssertEqual(Set((0..<2000).map { _ in nucleus.sample(logits) }), [0, 1])
    }
}
