import XCTest

@testable import HiFCCore

final class KVCostModelTests: XCTestCase {
    func testFastTierSwapsAndSlowTierRecomputes() {
        var model = KVCostModel(steps: StepTimeModel(tokensPerSecond: 1_000), transferLatency: 0)
        model.writeBytesPerSecond[.flash] = 1e9
        model.readBytesPerSecond[.flash] = 1e9
        // 1,000 tokens: recompute about 1 s; swap 2 x 100 MB at 1 GB/s = 0.2 s.
        XCTAssertEqual(
            model.preemptionChoice(computedTokens: 1_000, bytesToWrite: 100_000_000, bytesToRead: 100_000_000, tier: .flash), .swap(.flash))
        model.writeBytesPerSecond[.flash] = 1e8
        model.readBytesPerSecond[.flash] = 1e8
        XCTAssertEqual(model.preemptionChoice(computedTokens: 1_000, bytesToWrite: 100_000_000, bytesToRead: 100_000_000, tier: .flash), .recompute)
        // Swap time hidden behind compute makes swapping cheap again.
        model.exposedSwapFraction = 0.1
        XCTAssertEqual(
            model.preemptionChoice(computedTokens: 1_000, bytesToWrite: 100_000_000, bytesToRead: 100_000_000, tier: .flash), .swap(.flash))
        // Blocks already on flash cost no write.
        model.exposedSwapFraction = 1
        XCTAssertEqual(model.preemptionChoice(computedTokens: 1_000, bytesToWrite: 0, bytesToRead: 50_000_000, tier: .flash), .swap(.flash))
    }

    func testFlashWriteBudgetForcesRecompute() {
        var model = KVCostModel(steps: StepTimeModel(tokensPerSecond: 10), flashBytesLeftToday: 1e9)
        XCTAssertEqual(model.preemptionChoice(computedTokens: 1_000, bytesToWrite: 1_000_000, bytesToRead: 1_000_000, tier: .flash), .swap(.flash))
        model.flashBytesLeftToday = 0
        XCTAssertFalse(model.flashBudgetAllows(bytes: 1_000_000))
        XCTAssertEqual(model.preemptionChoice(computedTokens: 1_000, bytesToWrite: 1_000_000, bytesToRead: 1_000_000, tier: .flash), .recompute)
        // The DRAM tier has no write budget.
        XCTAssertEqual(model.preemptionChoice(computedTokens: 1_000, bytesToWrite: 1_000_000, bytesToRead: 1_000_000, tier: .dram), .swap(.dram))
    }

    func testLoadingPaysOnlyWhenReadingBeatsComputing() {
        let model = KVCostModel(steps: StepTimeModel(tokensPerSecond: 1_000), readBytesPerSecond: [.flash: 1e9], transferLatency: 0.001)
        // 4,096 tokens take about 4 s to compute; 64 MB take 65 ms to read.
        XCTAssertTrue(model.loadPays(from: 0, to: 4_096, bytes: 64 << 20, tier: .flash))
        // 16 tokens take 16 ms; 10 GB take 10 s.
        XCTAssertFalse(model.loadPays(from: 0, to: 16, bytes: 10_000_000_000, tier: .flash))
    }

    func testStepTimeModelLearnsTheQuadraticTermOfLongContexts() {
        var model = StepTimeModel(tokensPerSecond: 100)
        // The truth: 2 ms a step, 0.05 ms a token, 1 ns a pair.
        func truth(_ tokens: Int, _ pairs: Double) -> Double { 0.002 + 5e-5 * Double(tokens) + 1e-9 * pairs }
        for round in 0..<200 {
            let start = (round * 997) % 16_384
            let tokens = [1, 16, 512][round % 3]
            let pairs = StepTimeModel.attendedPairs(from: start, to: start + tokens)
            model.observe(tokens: tokens, pairs: pairs, seconds: truth(tokens, pairs))
        }
        let long = StepTimeModel.attendedPairs(from: 30_000, to: 30_512)
        XCTAssertEqual(model.stepSeconds(tokens: 512, pairs: long), truth(512, long), accuracy: truth(512, long) * 0.05)
        XCTAssertEqual(
            model.seconds(from: 0, to: 1_024, chunkTokens: 512),
            truth(512, StepTimeModel.attendedPairs(from: 0, to: 512)) + truth(512, StepTimeModel.attendedPairs(from: 512, to: 1_024)), accuracy: 0.002
        )
    }
}
