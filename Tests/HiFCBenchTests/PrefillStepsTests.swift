import HiFCBench
import XCTest

final class PrefillStepsTests: XCTestCase {
    func testNoBudgetPrefillsEveryPromptInOneStep() {
        let steps = ModelBenchmark.prefillSteps(batch: 3, promptTokens: 5, stepTokens: nil)
        XCTAssertEqual(steps.count, 1)
        XCTAssertEqual(steps[0].map(\.count), [5, 5, 5])
        XCTAssertTrue(steps[0].allSatisfy(\.endsPrompt))
    }

    func testBudgetCutsPromptsWhereAStepFillsAndContinuesThemInTheNext() {
        let steps = ModelBenchmark.prefillSteps(batch: 2, promptTokens: 5, stepTokens: 4)
        let pieces = steps.map { $0.map { [$0.sequence, $0.start, $0.count] } }
        XCTAssertEqual(pieces, [[[0, 0, 4]], [[0, 4, 1], [1, 0, 3]], [[1, 3, 2]]])
        XCTAssertEqual(steps.flatMap { $0 }.filter(\.endsPrompt).map(\.sequence), [0, 1])
        XCTAssertTrue(steps.dropLast().allSatisfy { $0.map(\.count).reduce(0, +) == 4 })
    }

    func testEveryPromptTokenIsComputedOnceInOrder() {
        for budget in [1, 3, 7, 16, 64, 1000] {
            let steps = ModelBenchmark.prefillSteps(batch: 4, promptTokens: 13, stepTokens: budget)
            for sequence in 0..<4 {
                let pieces = steps.flatMap { $0 }.filter { $0.sequence == sequence }
                XCTAssertEqual(pieces.map(\.start), pieces.indices.map { pieces[..<$0].map(\.count).reduce(0, +) })
                XCTAssertEqual(pieces.map(\.count).reduce(0, +), 13)
                XCTAssertEqual(pieces.last?.endsPrompt, true)
            }
            XCTAssertTrue(steps.allSatisfy { $0.map(\.count).reduce(0, +) <= budget })
        }
    }
}
