import Engine
import HiFCChecks
import HiFCCore
import XCTest

/// The comparison the losslessness checks make between a starved run and an unstarved one.
final class GreedyRunTests: XCTestCase {
    private func run(_ tokens: [SequenceID: [Int]], finish: FinishReason = .length) -> GreedyRun {
        var r = GreedyRun()
        r.tokens = tokens
        for id in tokens.keys { r.finish[id] = finish }
        return r
    }

    func testIdenticalRunsHaveNoDifferences() {
        let a = run([0: [1, 2, 3], 1: [4, 5]])
        XCTAssertEqual(a.differences(from: a), [])
        XCTAssertNil(a.firstDivergence(of: 0, from: a))
    }

    func testFirstDivergenceNamesTheFirstDifferingToken() {
        let reference = run([0: [1, 2, 3, 4], 1: [4, 5]])
        let other = run([0: [1, 2, 9, 4], 1: [4, 5]])
        XCTAssertEqual(other.differences(from: reference), [0])
        XCTAssertEqual(other.firstDivergence(of: 0, from: reference), 2)
    }

    func testAShorterOrUnfinishedRequestIsADifference() {
        let reference = run([0: [1, 2, 3]])
        XCTAssertEqual(run([0: [1, 2]]).firstDivergence(of: 0, from: reference), 2)
        XCTAssertEqual(run([0: [1, 2, 3]], finish: .abort).differences(from: reference), [0])
    }
}
