import XCTest

@testable import HiFCCore

final class PreemptionCostModelTests: XCTestCase {
    func testFastTierSwapsAndSlowTierRecomputes() {
        var model = PreemptionCostModel(prefillTokensPerSecond: 1_000)
        model.writeBytesPerSecond[.flash] = 1e9
        model.readBytesPerSecond[.flash] = 1e9
        // 1,000 tokens: recompute 1 s; swap 2 x 100 MB at 1 GB/s = 0.2 s.
        XCTAssertEqual(model.choose(tokens: 1_000, bytes: 100_000_000), .swap(.flash))
        model.writeBytesPerSecond[.flash] = 1e8
        model.readBytesPerSecond[.flash] = 1e8
        XCTAssertEqual(model.choose(tokens: 1_000, bytes: 100_000_000), .recompute)
        // Swap time hidden behind compute makes swapping cheap again.
        model.exposedSwapFraction = 0.1
        XCTAssertEqual(model.choose(tokens: 1_000, bytes: 100_000_000), .swap(.flash))
    }

    func testFlashWriteBudgetForcesRecompute() {
        var model = PreemptionCostModel(prefillTokensPerSecond: 10, flashWriteBudgetBytesPerDay: 1e9)
        XCTAssertEqual(model.choose(tokens: 1_000, bytes: 1_000_000), .swap(.flash))
        model.flashBytesWrittenToday = 1e9
        XCTAssertFalse(model.flashBudgetAllows(bytes: 1_000_000))
        XCTAssertEqual(model.choose(tokens: 1_000, bytes: 1_000_000), .recompute)
        // The DRAM tier has no write budget.
        XCTAssertEqual(model.choose(tokens: 1_000, bytes: 1_000_000, tier: .dram), .swap(.dram))
    }
}
