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

    /// The run with a budget that never runs out, made once for every test.
    private static let unstarved = Result(catching: {
        try EngineFixture.run(GreedyRun.distinctPrompts(24), maxTokens: 64, blocks: 200, mode: .recompute)
    })

    private func reference() throws -> GreedyRun {
        let run = try Self.unstarved.get()
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
        XCTAssertGreaterThanOrEqual(run.stats.swapIns, 20)
        XCTAssertEqual(run.stats.swapFailures, 0)
        XCTAssertEqual(run.stats.flashBytesWritten, run.stats.swapOutBytes)
        XCTAssertEqual(store.stats.liveSlots, 0, "every swapped block is freed once its sequence ends")
        // A preempted sequence writes only the blocks flash lacks: each full block once in its
        // life, and its partial last block at each preemption.
        let stride = FlashLayout.padded(EngineFixture.loaded.model.kvLayout(blockTokens: 16).blockBytes)
        let fullBlocks = prompts.reduce(0) { $0 + ($1.count + maxTokens) / 16 }
        XCTAssertLessThanOrEqual(run.stats.swapOutBytes, (fullBlocks + run.stats.preemptions) * stride)
    }

    func testSwapToHostMemoryIsLosslessUnderStarvation() throws {
        let expected = try reference()
        let run = try EngineFixture.run(prompts, maxTokens: maxTokens, blocks: 10, mode: .swapDRAM)
        assertSame(run, as: expected, "swap-dram")
        XCTAssertGreaterThanOrEqual(run.stats.swapOuts, 20)
        XCTAssertEqual(run.stats.flashBytesWritten, 0)
    }

    func testTargetLifetimeKeepsTheDailyFlashBudgetLosslessly() throws {
        // A rating that, over a year's target lifetime, lets flash take 8 blocks a day: far less
        // than this load swaps (dozens of swaps, see above). What flash cannot take goes to the
        // DRAM tier set up beside it, or is recomputed.
        let expected = try reference()
        let store = try EngineFixture.flashStore()
        let stride = FlashLayout.padded(EngineFixture.loaded.model.kvLayout(blockTokens: 16).blockBytes)
        let budget = 8 * stride
        var configuration = EngineFixture.configuration(blocks: 10, mode: .swapFlash)
        configuration.flashEnduranceTBW = ByteSize(Int64(budget) * 365)
        configuration.flashTargetLifetime = TargetLifetime(years: 1)
        let core = try EngineCore(loaded: EngineFixture.loaded, configuration: configuration, flashTier: FlashTier(store: store))
        let run = try GreedyRun.run(prompts, maxTokens: maxTokens, through: core)
        assertSame(run, as: expected, "swap-flash under a target lifetime")
        XCTAssertGreaterThanOrEqual(run.stats.preemptions, 20)
        XCTAssertEqual(run.stats.flashDailyWriteBudget, budget, "TBW / (1 year x 365)")
        XCTAssertLessThanOrEqual(run.stats.flashBytesWritten, budget, "flash took more than the day's budget")
        let left = try XCTUnwrap(run.stats.flashBytesLeftToday)
        XCTAssertLessThanOrEqual(left, budget - run.stats.flashBytesWritten)
    }

    func testRecomputeIsLosslessUnderStarvation() throws {
        let expected = try reference()
        let run = try EngineFixture.run(prompts, maxTokens: maxTokens, blocks: 10, mode: .recompute)
        assertSame(run, as: expected, "recompute")
        XCTAssertGreaterThanOrEqual(run.stats.preemptions, 20)
        XCTAssertGreaterThan(run.stats.recomputedTokens, 0)
        XCTAssertEqual(run.stats.swapOuts, 0)
    }

    func testEveryModeIsLosslessWithThePrefixCacheOn() throws {
        // Half the prompts, each with a twin sharing its first block, so shared blocks are
        // preempted and swapped too.
        let expected = try reference()
        let twins = prompts.prefix(12).map { Array($0.prefix(16)) + $0.dropFirst(16).map { ($0 * 3) % 200 + 3 } }
        let prompts = Array(self.prompts.prefix(12)) + twins
        let unstarved = try EngineFixture.run(prompts, maxTokens: maxTokens, blocks: 200, mode: .recompute)
        for n in 0..<12 { XCTAssertEqual(unstarved.tokens[SequenceID(n)], expected.tokens[SequenceID(n)]) }
        for mode in [PreemptionMode.recompute, .swapDRAM, .swapFlash, .auto] {
            let store = try EngineFixture.flashStore()
            let run = try EngineFixture.run(
                prompts, maxTokens: maxTokens, blocks: 10, mode: mode, flashTier: FlashTier(store: store), prefixCaching: true)
            assertSame(run, as: unstarved, "\(mode) with the prefix cache")
            XCTAssertGreaterThanOrEqual(run.stats.preemptions, 10, "\(mode)")
        }
    }

    func testAutoModeIsLosslessUnderStarvation() throws {
        let expected = try reference()
        let store = try EngineFixture.flashStore()
        let run = try EngineFixture.run(prompts, maxTokens: maxTokens, blocks: 10, mode: .auto, flashTier: FlashTier(store: store))
        assertSame(run, as: expected, "auto")
        XCTAssertGreaterThanOrEqual(run.stats.preemptions, 20)
        // The host tier (64 MiB) has room for every victim, and it is the fastest tier.
        XCTAssertGreaterThan(run.stats.swapOutBytes, 0)
        XCTAssertEqual(run.stats.flashBytesWritten, 0, "auto swaps to DRAM while it has room")
        XCTAssertEqual(run.stats.swapFailures, 0)
    }

    func testAutoModeSendsWhatDRAMHasNoRoomForToFlashLosslessly() throws {
        let expected = try reference()
        let store = try EngineFixture.flashStore()
        var configuration = EngineFixture.configuration(blocks: 10, mode: .auto)
        // Room for four blocks in host memory: most victims go to flash.
        let stride = FlashLayout.padded(EngineFixture.loaded.model.kvLayout(blockTokens: 16).blockBytes)
        configuration.hostSwapCapacity = ByteSize(Int64(4 * stride))
        let core = try EngineCore(loaded: EngineFixture.loaded, configuration: configuration, flashTier: FlashTier(store: store))
        let run = try GreedyRun.run(prompts, maxTokens: maxTokens, through: core)
        assertSame(run, as: expected, "auto with a small DRAM tier")
        XCTAssertGreaterThan(run.stats.flashBytesWritten, 0, "flash takes what DRAM has no room for")
        XCTAssertGreaterThan(run.stats.swapOutBytes, run.stats.flashBytesWritten, "DRAM takes some")
        XCTAssertEqual(run.stats.swapFailures, 0, "no swap is planned into a full tier")
    }
}
