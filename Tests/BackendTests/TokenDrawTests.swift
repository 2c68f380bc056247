import Foundation
import XCTest

@testable import Backend

/// The draw a backend or the host sampler makes from a row of logits (`TokenDraw`), and the
/// largest-first selection it and the log probabilities use (`LargestFirst`).
final class TokenDrawTests: XCTestCase {
    func testTheLargestAreFoundInTheOrderASortGivesWhateverTheirCountTiesAndNaNs() {
        var generator = SystemRandomNumberGenerator()
        for (count, k) in [(1, 1), (50, 3), (1000, 64), (1000, 65), (5000, 700), (300, 300)] {
            // Few distinct values, so ties are everywhere; some NaNs, which count as -infinity.
            var values = (0..<count).map { _ in Float(Int.random(in: -20...20, using: &generator)) / 4 }
            for _ in 0..<(count / 50) { values[Int.random(in: 0..<count, using: &generator)] = .nan }
            let key = { (i: Int) -> Float in values[i].isNaN ? -.infinity : values[i] }
            let reference = values.indices.sorted { key($0) > key($1) || (key($0) == key($1) && $0 < $1) }
            XCTAssertEqual(LargestFirst.positions(k, of: values), Array(reference.prefix(k)), "\(count), \(k)")
        }
    }

    func testHistogramNucleusIsTheSortedPrefixThatReachesTopP() {
        var generator = SystemRandomNumberGenerator()
        for trial in 0..<60 {
            let count = [2, 50, 3000, 20000][trial % 4]
            let spread: Float = [0.01, 1, 4, 20][trial % 3 + (trial / 30)]
            // Every fifth trial draws from few distinct logits, so that ties cross the boundary.
            var logits = (0..<count).map { _ in Float.random(in: -spread...spread, using: &generator) }
            if trial % 5 == 0 { logits = logits.map { ($0 * 2).rounded() / 2 } }
            let maximum = logits.max()!
            let weights = logits.map { exp($0 - maximum) }
            let floor: Float = trial % 6 == 0 ? 0.01 : 0
            let kept = logits.indices.filter { weights[$0] >= floor }
            let total = kept.reduce(0.0) { $0 + Double(weights[$1]) }
            let topP = Double([0.1, 0.5, 0.9, 0.99, 0.999][trial % 5])
            let sorted = kept.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
            var mass = 0.0
            var size = sorted.count
            for (i, token) in sorted.enumerated() {
                mass += Double(weights[token])
                if mass >= topP * total {
                    size = i + 1
                    break
                }
            }
            let nucleus = TokenDraw.nucleus(weights: weights, logits: logits, floor: floor, goal: topP * total)
            XCTAssertTrue(nucleus == Array(sorted.prefix(size)), "trial \(trial): \(count) logits, spread \(spread), top_p \(topP)")
        }
    }
}
