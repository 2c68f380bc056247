import XCTest

@testable import HiFCCore

/// `--preemption auto` with a DRAM tier: the cheapest of host memory (while it has room), flash
/// (within the day's write budget) and recomputing.
final class AutoPreemptionTests: XCTestCase {
    /// 1,000 tokens recompute in about 1 s; 100 MB move at 50 GB/s to DRAM and 2 GB/s to flash.
    private func model(flashBytesLeft: Double? = nil) -> KVCostModel {
        KVCostModel(
            steps: StepTimeModel(tokensPerSecond: 1_000), writeBytesPerSecond: [.dram: 50e9, .flash: 2e9],
            readBytesPerSecond: [.dram: 50e9, .flash: 2e9], transferLatency: 0, flashBytesLeftToday: flashBytesLeft)
    }

    private let dram = SwapOption(tier: .dram, bytesToWrite: 100_000_000, bytesToRead: 100_000_000)
    private let flash = SwapOption(tier: .flash, bytesToWrite: 100_000_000, bytesToRead: 100_000_000)

    func testCheapestPreemptionTakesTheFastestTierThatCanTakeTheVictim() {
        let model = model()
        XCTAssertEqual(model.cheapestPreemption(computedTokens: 1_000, swaps: [dram, flash]), .swap(.dram))
        XCTAssertEqual(model.cheapestPreemption(computedTokens: 1_000, swaps: [flash, dram]), .swap(.dram), "order does not matter")
        // DRAM full (not offered): flash, which beats recomputing (0.1 s against 1 s).
        XCTAssertEqual(model.cheapestPreemption(computedTokens: 1_000, swaps: [flash]), .swap(.flash))
        // 50 tokens recompute in 50 ms, faster than flash's 100 ms but not DRAM's 4 ms.
        XCTAssertEqual(model.cheapestPreemption(computedTokens: 50, swaps: [flash]), .recompute)
        XCTAssertEqual(model.cheapestPreemption(computedTokens: 50, swaps: [dram, flash]), .swap(.dram))
        XCTAssertEqual(model.cheapestPreemption(computedTokens: 1_000, swaps: []), .recompute)
    }

    func testFlashPastTheDaysWriteBudgetIsNoChoice() {
        let model = model(flashBytesLeft: 1_000)
        XCTAssertEqual(model.cheapestPreemption(computedTokens: 1_000, swaps: [flash]), .recompute)
        XCTAssertEqual(model.cheapestPreemption(computedTokens: 1_000, swaps: [flash, dram]), .swap(.dram))
    }

    /// An `auto` scheduler whose DRAM tier holds `dramBlocks` blocks of 1 KiB, with `deviceBlocks`
    /// device blocks of 4 tokens, and whose cost model finds recomputing slow.
    private func scheduler(deviceBlocks: Int = 20, dramBlocks: Int, hasDRAMTier: Bool = true) -> Scheduler {
        Scheduler(
            config: SchedulerConfig(
                blockTokens: 4, deviceBlocks: deviceBlocks, blockBytes: 1024, maxStepTokens: 64, preemption: .auto,
                namespace: SchedulerTests.namespace, hasDRAMTier: hasDRAMTier, dramBlocks: dramBlocks),
            costModel: KVCostModel(steps: StepTimeModel(tokensPerSecond: 1), transferLatency: 0))
    }

    func testAutoSwapsToDRAMWhileItHasRoomThenToFlash() {
        // Two sequences of 8 and 10 prompt tokens decode in 6 blocks until one must go.
        var scheduler = scheduler(deviceBlocks: 6, dramBlocks: 4)
        scheduler.add(id: 1, prompt: Array(0..<8), maxTotalTokens: 24)
        scheduler.add(id: 2, prompt: Array(100..<110), maxTotalTokens: 24)
        var first: StepPlan?
        for _ in 0..<20 where first == nil {
            let plan = scheduler.schedule()
            SchedulerTests.run(plan, on: &scheduler)
            if !plan.preemptions.isEmpty { first = plan }
        }
        guard let first else { return XCTFail("no preemption") }
        XCTAssertEqual(first.preemptions.map(\.choice), [.swap(.dram)], "the first victim fits the DRAM tier")
        XCTAssertLessThanOrEqual(first.writes[0].blocks.count, 4)
        SchedulerTests.complete(first, on: &scheduler)
        // The other sequence's blocks do not fit beside the first's: flash takes it.
        let other = scheduler.sequence(first.preemptions[0].sequence == 1 ? 2 : 1)!
        XCTAssertGreaterThan(other.computedBlocks + first.writes[0].blocks.count, 4)
        XCTAssertEqual(scheduler.choice(forPreempting: other), .swap(.flash))
        // Without a DRAM tier auto chooses between flash and recomputing, as before.
        var flashOnly = self.scheduler(dramBlocks: 0, hasDRAMTier: false)
        flashOnly.add(id: 1, prompt: Array(0..<8), maxTotalTokens: 20)
        SchedulerTests.run(flashOnly.schedule(), on: &flashOnly)
        XCTAssertEqual(flashOnly.choice(forPreempting: flashOnly.sequence(1)!), .swap(.flash))
    }

    func testSwapDRAMRecomputesWhatItsTierHasNoRoomFor() {
        var scheduler = Scheduler(
            config: SchedulerConfig(
                blockTokens: 4, deviceBlocks: 20, blockBytes: 1024, maxStepTokens: 64, preemption: .swapDRAM,
                namespace: SchedulerTests.namespace, hasDRAMTier: true, dramBlocks: 1))
        scheduler.add(id: 1, prompt: Array(0..<8), maxTotalTokens: 20)
        SchedulerTests.run(scheduler.schedule(), on: &scheduler)
        XCTAssertEqual(scheduler.choice(forPreempting: scheduler.sequence(1)!), .recompute)
    }
}
