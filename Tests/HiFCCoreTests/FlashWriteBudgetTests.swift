import XCTest

@testable import HiFCCore

/// The daily flash write budget from a target lifetime, and where preempted sequences go under it.
final class FlashWriteBudgetTests: XCTestCase {
    func testTargetLifetimeTurnsEnduranceIntoADailyBudget() throws {
        let tbw: Int64 = 6_000 * 1_000_000_000_000
        let fiveYears = FlashWriteBudget(enduranceBytesPerRegion: tbw, targetLifetimeYears: 5)
        XCTAssertEqual(try XCTUnwrap(fiveYears.dailyBytes), 6e15 / (5 * 365), accuracy: 1)
        // Two regions take twice as much; a smaller configured budget holds.
        XCTAssertEqual(
            try XCTUnwrap(FlashWriteBudget(enduranceBytesPerRegion: tbw, targetLifetimeYears: 5, regions: 2).dailyBytes), 2 * 6e15 / 1825, accuracy: 1
        )
        let both = FlashWriteBudget(dailyBytesPerRegion: 1_000_000_000_000, enduranceBytesPerRegion: tbw, targetLifetimeYears: 5)
        XCTAssertEqual(both.dailyBytes, 1e12)
        XCTAssertEqual(both.bytesLeft(afterWriting: 400_000_000_000), 6e11)
        XCTAssertEqual(both.bytesLeft(afterWriting: 2_000_000_000_000), 0)
        // Without a target or a rating there is no lifetime budget, and without either no budget.
        XCTAssertNil(FlashWriteBudget(enduranceBytesPerRegion: tbw).dailyBytes)
        XCTAssertNil(FlashWriteBudget(targetLifetimeYears: 5).bytesLeft(afterWriting: 0))
    }

    func testLifetimesParseInYearsMonthsAndDays() throws {
        XCTAssertEqual(try TargetLifetime(parsing: "5y").years, 5)
        XCTAssertEqual(try TargetLifetime(parsing: "2.5 years").years, 2.5)
        XCTAssertEqual(try TargetLifetime(parsing: "18mo").years, 1.5, accuracy: 1e-12)
        XCTAssertEqual(try TargetLifetime(parsing: "365d").years, 1, accuracy: 1e-12)
        XCTAssertEqual(try TargetLifetime(parsing: "3").years, 3)
        XCTAssertEqual(TargetLifetime(years: 5).description, "5y")
        XCTAssertThrowsError(try TargetLifetime(parsing: "five years"))
        XCTAssertThrowsError(try TargetLifetime(parsing: "5w"))
        XCTAssertThrowsError(try TargetLifetime(parsing: "0y"))
    }

    /// A scheduler of `mode` with a DRAM tier beside flash (or not), whose cost model has
    /// `flashBytesLeft` of today's budget and finds recomputing slow (or fast).
    private func preemptionChoice(
        _ mode: PreemptionMode, flashBytesLeft: Double?, hasDRAMTier: Bool, recomputeIsSlow: Bool = true
    ) -> PreemptionChoice {
        var scheduler = Scheduler(
            config: SchedulerConfig(
                blockTokens: 4, deviceBlocks: 5, blockBytes: 1024, maxStepTokens: 64, preemption: mode,
                namespace: SchedulerTests.namespace, hasDRAMTier: hasDRAMTier),
            costModel: KVCostModel(
                steps: StepTimeModel(tokensPerSecond: recomputeIsSlow ? 1 : 1e12), transferLatency: recomputeIsSlow ? 0 : 1,
                flashBytesLeftToday: flashBytesLeft))
        scheduler.add(id: 1, prompt: Array(0..<8), maxTotalTokens: 20)
        SchedulerTests.run(scheduler.schedule(), on: &scheduler)
        return scheduler.choice(forPreempting: scheduler.sequence(1)!)
    }

    func testSpentFlashBudgetSendsSwapsToDRAMOrRecompute() {
        // Within the budget swap-flash writes to flash; auto takes DRAM first while it has room.
        XCTAssertEqual(preemptionChoice(.swapFlash, flashBytesLeft: 1e9, hasDRAMTier: true), .swap(.flash))
        XCTAssertEqual(preemptionChoice(.auto, flashBytesLeft: 1e9, hasDRAMTier: true), .swap(.dram))
        XCTAssertEqual(preemptionChoice(.auto, flashBytesLeft: 1e9, hasDRAMTier: false), .swap(.flash))
        for mode in [PreemptionMode.swapFlash, .auto] {
            XCTAssertEqual(preemptionChoice(mode, flashBytesLeft: 0, hasDRAMTier: true), .swap(.dram), "\(mode) past it, with DRAM")
            XCTAssertEqual(preemptionChoice(mode, flashBytesLeft: 0, hasDRAMTier: false), .recompute, "\(mode) past it, no DRAM")
        }
        // No budget: swap-flash swaps whatever it costs.
        XCTAssertEqual(preemptionChoice(.swapFlash, flashBytesLeft: nil, hasDRAMTier: false, recomputeIsSlow: false), .swap(.flash))
    }

    func testUnderABudgetFlashTakesOnlySwapsThatPay() {
        XCTAssertEqual(preemptionChoice(.swapFlash, flashBytesLeft: 1e9, hasDRAMTier: false, recomputeIsSlow: false), .recompute)
        XCTAssertEqual(preemptionChoice(.swapFlash, flashBytesLeft: 1e9, hasDRAMTier: false, recomputeIsSlow: true), .swap(.flash))
    }

    func testFlashWritesInFlightCountAgainstTheBudget() {
        // Room for 3 blocks (at their footprint on flash) today; each sequence would write 2.
        var scheduler = Scheduler(
            config: SchedulerConfig(
                blockTokens: 4, deviceBlocks: 5, blockBytes: 1024, maxStepTokens: 64, preemption: .swapFlash, prefixCaching: false,
                namespace: SchedulerTests.namespace),
            costModel: KVCostModel(
                steps: StepTimeModel(tokensPerSecond: 1), transferLatency: 0,
                flashBytesLeftToday: Double(3 * FlashLayout.slotFootprint(payloadLength: 1024))))
        scheduler.add(id: 1, prompt: Array(0..<8), maxTotalTokens: 16)
        scheduler.add(id: 2, prompt: Array(100..<108), maxTotalTokens: 16)
        var plan = scheduler.schedule()
        for _ in 0..<8 where plan.preemptions.isEmpty {
            SchedulerTests.run(plan, on: &scheduler)
            plan = scheduler.schedule()
        }
        // Both outgrow their 2 blocks and one block is free: the later one is swapped to flash.
        XCTAssertEqual(plan.preemptions.map(\.choice), [.swap(.flash)])
        // Its write is in flight, not yet in the wear ledger: 2 more blocks would pass the budget.
        XCTAssertEqual(scheduler.choice(forPreempting: scheduler.sequence(1)!), .recompute)
        // Once it has ended (the ledger as it was, for the test), they fit again.
        SchedulerTests.complete(plan, on: &scheduler)
        XCTAssertEqual(scheduler.choice(forPreempting: scheduler.sequence(1)!), .swap(.flash))
    }
}
