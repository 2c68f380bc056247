import Engine
import FlashStore
import Foundation
import HiFCChecks
import HiFCCore
import XCTest

/// Greedy outputs under a starved KV budget, in every preemption mode, must match a run whose
/// budget never runs out, token for token.
final class EngineLosslessnessTests: XCTestCase {
    private let prompts = GreedyRun.distinctPrompts(24)
    private let maxTokens = 64

    private func reference() throws -> GreedyRun {
        let run = try EngineFixture.run(prompts, maxTokens: maxTokens, blocks: 200, mode: .recompute)
        XCTAssertEqual(run.stats.preemptions, 0)
        XCTAssertEqual(run.tokens.count, prompts.count)
        for tokens in run.tokens.values { XCTAssertEqual(tokens.count, maxTokens) }
        return run
    }

    private func assertSame(_ run: GreedyRun, as reference: GreedyRun, _ mode: String) {
        for id in run.differences(from: reference) {
            XCTFail(
                "\(mode): sequence \(id) differs from token \(run.firstDivergence(of: id, from: reference).map(String.init) ?? "-") or did not finish (\(String(describing: run.finish[id])))"
            )
        }
    }

    func testSwapToFlashIsLosslessUnderStarvation() throws {
        let expected = try reference()
        let store = try EngineFixture.flashStore()
        let run = try EngineFixture.run(prompts, maxTokens: maxTokens, blocks: 10, mode: .swapFlash, flashTier: FlashTier(store: store))
        assertSame(run, as: expected, "swap-flash")
        XCTAssertGreaterThanOrEqual(run.stats.swapOuts, 20, "the budget is meant to force dozens of swaps")
        XCTAssertEqual(run.stats.swapIns, run.stats.swapOuts)
        XCTAssertEqual(run.stats.swapFailures, 0)
        XCTAssertEqual(run.stats.flashBytesWritten, run.stats.swapOutBytes)
        XCTAssertEqual(store.stats.liveSlots, 0, "every swapped block is freed once read back")
    }

    func testSwapToHostMemoryIsLosslessUnderStarvation() throws {
        let expected = try reference()
        let run = try EngineFixture.run(prompts, maxTokens: maxTokens, blocks: 10, mode: .swapDRAM)
        assertSame(run, as: expected, "swap-dram")
        XCTAssertGreaterThanOrEqual(run.stats.swapOuts, 20)
        XCTAssertEqual(run.stats.flashBytesWritten, 0)
    }

    func testRecomputeIsLosslessUnderStarvation() throws {
        let expected = try reference()
        let run = try EngineFixture.run(prompts, maxTokens: maxTokens, blocks: 10, mode: .recompute)
        assertSame(run, as: expected, "recompute")
        XCTAssertGreaterThanOrEqual(run.stats.preemptions, 20)
        XCTAssertGreaterThan(run.stats.recomputedTokens, 0)
        XCTAssertEqual(run.stats.swapOuts, 0)
    }

    func testAutoModeIsLosslessUnderStarvation() throws {
        let expected = try reference()
        let store = try EngineFixture.flashStore()
        let run = try EngineFixture.run(prompts, maxTokens: maxTokens, blocks: 10, mode: .auto, flashTier: FlashTier(store: store))
        assertSame(run, as: expected, "auto")
        XCTAssertGreaterThanOrEqual(run.stats.preemptions, 20)
    }
}
