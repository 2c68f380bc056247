import XCTest

@testable import HiFCCore

final class SchedulerTests: XCTestCase {
    private func makeScheduler(
        blocks: Int, stepTokens: Int = 64, mode: PreemptionMode = .swapFlash, prefetch: Int = 2
    ) -> Scheduler {
        Scheduler(
            config: SchedulerConfig(
                blockTokens: 4, deviceBlocks: blocks, blockBytes: 1024, maxStepTokens: stepTokens,
                preemption: mode, prefetchDepth: prefetch))
    }

    /// Samples token `position * 10 + id` for each sampling chunk and reports the step.
    private func run(_ plan: StepPlan, on scheduler: inout Scheduler) {
        var sampled: [SequenceID: Int] = [:]
        for chunk in plan.chunks where chunk.samples {
            sampled[chunk.sequence] = (chunk.start + chunk.count) * 10 + Int(chunk.sequence)
        }
        scheduler.completeStep(plan, sampled: sampled)
    }

    func testPrefillIsChunkedUnderTheStepTokenBudget() throws {
        var scheduler = makeScheduler(blocks: 16, stepTokens: 8)
        try scheduler.add(id: 1, prompt: Array(0..<20), maxTotalTokens: 30)
        var starts: [Int] = []
        for _ in 0..<3 {
            let plan = scheduler.schedule()
            XCTAssertLessThanOrEqual(plan.scheduledTokens, 8)
            starts += plan.prefills.map(\.start)
            run(plan, on: &scheduler)
        }
        XCTAssertEqual(starts, [0, 8, 16])
        XCTAssertEqual(scheduler.sequence(1)?.generatedCount, 1)
        let decode = scheduler.schedule()
        XCTAssertEqual(decode.decodes.map(\.start), [20])
        XCTAssertEqual(scheduler.sequence(1)?.table.blocks.count, 6)
    }

    func testRequestsAreAdmittedFirstComeFirstServed() throws {
        var scheduler = makeScheduler(blocks: 16, stepTokens: 10)
        try scheduler.add(id: 5, prompt: Array(0..<8), maxTotalTokens: 12)
        try scheduler.add(id: 3, prompt: Array(0..<8), maxTotalTokens: 12)
        let plan = scheduler.schedule()
        XCTAssertEqual(plan.prefills.map(\.sequence), [5, 3])
        XCTAssertEqual(plan.prefills.map(\.count), [8, 2])
    }

    /// Two running sequences (8 and 4 prompt tokens) in 5 blocks of 4 tokens, stepped until the
    /// first preemption; returns that plan (not yet carried out).
    private func stepUntilPreemption(_ scheduler: inout Scheduler) throws -> StepPlan {
        try scheduler.add(id: 1, prompt: Array(0..<8), maxTotalTokens: 20)
        try scheduler.add(id: 2, prompt: Array(0..<4), maxTotalTokens: 20)
        for _ in 0..<20 {
            let plan = scheduler.schedule()
            if !plan.swapOuts.isEmpty || !plan.recomputes.isEmpty { return plan }
            XCTAssertEqual(Set(plan.chunks.map(\.sequence)), [1, 2], "both sequences run until the pool is full")
            run(plan, on: &scheduler)
        }
        XCTFail("no preemption")
        return StepPlan()
    }

    func testMostRecentSequenceIsSwappedOutAndItsBlocksFreedOnlyAfterTheWrite() throws {
        var scheduler = makeScheduler(blocks: 5)
        let plan = try stepUntilPreemption(&scheduler)
        XCTAssertEqual(plan.swapOuts.map(\.sequence), [2], "the newest sequence is the victim")
        let swap = try XCTUnwrap(plan.swapOuts.first)
        let victim = try XCTUnwrap(scheduler.sequence(2))
        XCTAssertEqual(swap.tier, .flash)
        XCTAssertEqual(swap.tokens, victim.computed)
        XCTAssertEqual(swap.blocks.count, victim.computedBlocks)
        XCTAssertEqual(victim.status, .swappingOut(.flash))
        XCTAssertFalse(plan.chunks.contains { $0.sequence == 2 })
        let free = scheduler.pool.freeCount
        // Nothing more is preempted while the write is in flight, and its blocks stay held.
        let waiting = scheduler.schedule()
        XCTAssertTrue(waiting.swapOuts.isEmpty && waiting.recomputes.isEmpty)
        run(waiting, on: &scheduler)
        XCTAssertLessThanOrEqual(scheduler.pool.freeCount, free)
        let before = scheduler.pool.freeCount
        scheduler.swapOutCompleted(2, .completed)
        XCTAssertEqual(scheduler.pool.freeCount, before + swap.blocks.count)
        XCTAssertEqual(scheduler.sequence(2)?.status, .swapped(.flash))
        XCTAssertEqual(scheduler.schedule().chunks.map(\.sequence), [1])
    }

    func testSwappedSequenceResumesBeforeNewRequestsAreAdmitted() throws {
        var scheduler = makeScheduler(blocks: 5)
        let plan = try stepUntilPreemption(&scheduler)
        run(plan, on: &scheduler)
        scheduler.swapOutCompleted(2, .completed)
        try scheduler.add(id: 3, prompt: Array(0..<4), maxTotalTokens: 8)
        // Finish 1; then 2 comes back before 3 is admitted.
        XCTAssertEqual(scheduler.finish(1), .done)
        let resume = scheduler.schedule()
        XCTAssertEqual(resume.swapIns.map(\.sequence), [2])
        XCTAssertEqual(resume.swapIns.first?.blocks.count, scheduler.sequence(2)?.computedBlocks)
        XCTAssertTrue(resume.prefills.isEmpty, "no admission while a sequence is swapped")
        XCTAssertEqual(scheduler.sequence(2)?.status, .swappingIn(.flash))
        XCTAssertTrue(scheduler.schedule().chunks.isEmpty, "a sequence runs only once all its blocks arrived")
        XCTAssertEqual(scheduler.swapInCompleted(2, .completed), .freeTier(.flash, blocks: resume.swapIns[0].blocks.count))
        let after = scheduler.schedule()
        XCTAssertEqual(after.decodes.map(\.sequence), [2])
        XCTAssertEqual(after.prefills.map(\.sequence), [3])
    }

    func testRecomputeFreesBlocksAtOnceAndRequeuesAllTokens() throws {
        var scheduler = makeScheduler(blocks: 5, mode: .recompute)
        let plan = try stepUntilPreemption(&scheduler)
        let victim = try XCTUnwrap(scheduler.sequence(2))
        XCTAssertEqual(plan.recomputes.map(\.sequence), [2])
        XCTAssertGreaterThan(plan.recomputes[0].tokens, 4)
        XCTAssertEqual(victim.status, .waiting)
        XCTAssertEqual(victim.computed, 0)
        XCTAssertTrue(victim.table.blocks.isEmpty)
        XCTAssertEqual(victim.tokens.count, plan.recomputes[0].tokens + 1, "generated tokens are kept and recomputed")
    }

    func testFailedSwapOutFallsBackToRecompute() throws {
        var scheduler = makeScheduler(blocks: 5)
        _ = try stepUntilPreemption(&scheduler)
        let held = scheduler.sequence(2)!.table.blocks.count
        let free = scheduler.pool.freeCount
        XCTAssertEqual(scheduler.swapOutCompleted(2, .failed), .done)
        XCTAssertEqual(scheduler.sequence(2)?.status, .waiting)
        XCTAssertEqual(scheduler.sequence(2)?.computed, 0)
        XCTAssertEqual(scheduler.pool.freeCount, free + held)
    }

    func testFailedSwapInFallsBackToRecompute() throws {
        var scheduler = makeScheduler(blocks: 5)
        let plan = try stepUntilPreemption(&scheduler)
        run(plan, on: &scheduler)
        scheduler.swapOutCompleted(2, .completed)
        XCTAssertEqual(scheduler.finish(1), .done)
        let resume = scheduler.schedule()
        XCTAssertEqual(resume.swapIns.map(\.sequence), [2])
        XCTAssertEqual(scheduler.swapInCompleted(2, .failed), .freeTier(.flash, blocks: resume.swapIns[0].blocks.count))
        XCTAssertEqual(scheduler.sequence(2)?.status, .waiting)
        XCTAssertEqual(scheduler.pool.freeCount, 5)
        let tokens = scheduler.sequence(2)!.tokens.count
        XCTAssertEqual(scheduler.schedule().prefills.first?.count, tokens)
    }

    func testAbortDuringSwapOutFreesBlocksWhenTheWriteCompletes() throws {
        var scheduler = makeScheduler(blocks: 5)
        let plan = try stepUntilPreemption(&scheduler)
        let free = scheduler.pool.freeCount
        XCTAssertEqual(scheduler.finish(2), .afterIO)
        XCTAssertEqual(scheduler.pool.freeCount, free, "the write still reads those blocks")
        let blocks = plan.swapOuts[0].blocks.count
        XCTAssertEqual(scheduler.swapOutCompleted(2, .completed), .freeTier(.flash, blocks: blocks))
        XCTAssertNil(scheduler.sequence(2))
        XCTAssertEqual(scheduler.pool.freeCount, free + blocks)
    }

    func testSequenceLargerThanTheBudgetIsRefused() {
        var scheduler = makeScheduler(blocks: 4)
        XCTAssertThrowsError(try scheduler.add(id: 1, prompt: [1], maxTotalTokens: 17)) {
            XCTAssertTrue("\($0)".contains("--kv-budget"))
        }
    }

    /// Many sequences of different lengths through a tiny pool, with swap I/O completing one step
    /// later: every sequence finishes with exactly the tokens a free run gives, and no block leaks.
    func testStarvedWorkloadFinishesEverySequenceWithoutLeaks() throws {
        for mode in [PreemptionMode.recompute, .swapDRAM, .swapFlash, .auto] {
            var scheduler = makeScheduler(blocks: 10, stepTokens: 16, mode: mode)
            var expectedLength: [SequenceID: Int] = [:]
            for id in 1...8 {
                let prompt = Array(0..<(3 + id))
                expectedLength[SequenceID(id)] = prompt.count + 24
                try scheduler.add(id: SequenceID(id), prompt: prompt, maxTotalTokens: prompt.count + 24)
            }
            var inFlightOut: [SequenceID] = []
            var inFlightIn: [SequenceID] = []
            var preemptions = 0
            var steps = 0
            while !scheduler.isIdle {
                steps += 1
                XCTAssertLessThan(steps, 2_000, "\(mode) makes no progress")
                if steps > 2_000 { return }
                for id in inFlightOut { scheduler.swapOutCompleted(id, .completed) }
                for id in inFlightIn { scheduler.swapInCompleted(id, .completed) }
                let plan = scheduler.schedule()
                inFlightOut = plan.swapOuts.map(\.sequence)
                inFlightIn = plan.swapIns.map(\.sequence)
                preemptions += plan.swapOuts.count + plan.recomputes.count
                run(plan, on: &scheduler)
                for chunk in plan.chunks where chunk.samples {
                    let sequence = scheduler.sequence(chunk.sequence)!
                    // The token sampled after position p is always p * 10 + id: recompute and
                    // swap never change what a sequence sees.
                    XCTAssertEqual(
                        sequence.tokens.last,
                        sequence.tokens.count - 1 == sequence.promptCount
                            ? sequence.promptCount * 10 + Int(chunk.sequence)
                            : (sequence.tokens.count - 1) * 10 + Int(chunk.sequence))
                    if sequence.tokens.count == expectedLength[chunk.sequence] { _ = scheduler.finish(chunk.sequence) }
                }
            }
            XCTAssertGreaterThan(preemptions, 3, "\(mode): the pool is meant to be starved")
            XCTAssertEqual(scheduler.pool.freeCount, 10, "\(mode) leaked blocks")
        }
    }
}
