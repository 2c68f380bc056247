import XCTest

@testable import HiFCCore

/// The scheduler's decisions without a model: tokens are "sampled" as `position * 10 + id`, and
/// transfers complete when the test says so.
final class SchedulerTests: XCTestCase {
    static let namespace = PrefixNamespace(
        modelIdentity: [1, 2, 3], layout: KVBlockLayout(layers: 1, kvHeads: 1, headDim: 4, blockTokens: 4, dtype: .float32), backend: "test")

    static func makeScheduler(
        blocks: Int, stepTokens: Int = 64, mode: PreemptionMode = .swapFlash, prefetch: Int = 2, prefixCaching: Bool = false,
        writePolicy: PrefixWritePolicy = .onEvict, prefixFlashBlocks: Int = 0,
        resumeHeadroom: Int = SchedulerConfig.defaultResumeHeadroomTokens,
        sharedStepSlowdown: Double? = SchedulerConfig.defaultSharedStepSlowdown
    ) -> Scheduler {
        Scheduler(
            config: SchedulerConfig(
                blockTokens: 4, deviceBlocks: blocks, blockBytes: 1024, maxStepTokens: stepTokens,
                preemption: mode, prefetchDepth: prefetch, resumeHeadroomTokens: resumeHeadroom, prefixCaching: prefixCaching,
                namespace: namespace, prefixWritePolicy: writePolicy, prefixFlashBlocks: prefixFlashBlocks,
                sharedStepSlowdown: sharedStepSlowdown))
    }

    /// Samples token `position * 10 + id` for each sampling chunk and reports the step.
    static func run(_ plan: StepPlan, on scheduler: inout Scheduler) {
        var sampled: [SequenceID: Int] = [:]
        for chunk in plan.chunks where chunk.samples {
            sampled[chunk.sequence] = (chunk.start + chunk.count) * 10 + Int(chunk.sequence)
        }
        scheduler.completeStep(plan, sampled: sampled)
    }

    /// Reports every transfer of `plan` as completed intact.
    static func complete(_ plan: StepPlan, on scheduler: inout Scheduler) {
        for write in plan.writes { scheduler.writeCompleted(write.id, succeeded: true) }
        for read in plan.reads { scheduler.readCompleted(read.id, intactBlocks: read.blocks.count) }
    }

    private func makeScheduler(blocks: Int, stepTokens: Int = 64, mode: PreemptionMode = .swapFlash) -> Scheduler {
        Self.makeScheduler(blocks: blocks, stepTokens: stepTokens, mode: mode)
    }

    private func run(_ plan: StepPlan, on scheduler: inout Scheduler) { Self.run(plan, on: &scheduler) }

    func testPrefillIsChunkedUnderTheStepTokenBudget() {
        var scheduler = makeScheduler(blocks: 16, stepTokens: 8)
        scheduler.add(id: 1, prompt: Array(0..<20), maxTotalTokens: 30)
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
        XCTAssertEqual(scheduler.blockTable(of: 1).count, 6)
    }

    func testRequestsAreAdmittedFirstComeFirstServed() {
        var scheduler = makeScheduler(blocks: 16, stepTokens: 10)
        scheduler.add(id: 5, prompt: Array(0..<8), maxTotalTokens: 12)
        scheduler.add(id: 3, prompt: Array(0..<8), maxTotalTokens: 12)
        let plan = scheduler.schedule()
        XCTAssertEqual(plan.prefills.map(\.sequence), [5, 3])
        XCTAssertEqual(plan.prefills.map(\.count), [8, 2])
    }

    /// Two running sequences (8 and 4 prompt tokens) in 5 blocks of 4 tokens, stepped until the
    /// first preemption; returns that plan (not yet carried out).
    private func stepUntilPreemption(_ scheduler: inout Scheduler) -> StepPlan {
        scheduler.add(id: 1, prompt: Array(0..<8), maxTotalTokens: 20)
        scheduler.add(id: 2, prompt: Array(100..<104), maxTotalTokens: 20)
        for _ in 0..<20 {
            let plan = scheduler.schedule()
            if !plan.preemptions.isEmpty { return plan }
            XCTAssertEqual(Set(plan.chunks.map(\.sequence)), [1, 2], "both sequences run until the pool is full")
            run(plan, on: &scheduler)
        }
        XCTFail("no preemption")
        return StepPlan()
    }

    func testMostRecentSequenceIsSwappedOutAndItsBlocksFreedOnlyAfterTheWrite() {
        var scheduler = makeScheduler(blocks: 5)
        let plan = stepUntilPreemption(&scheduler)
        XCTAssertEqual(plan.preemptions.map(\.sequence), [2], "the newest sequence is the victim")
        let write = try! XCTUnwrap(plan.writes.first)
        let victim = scheduler.sequence(2)!
        XCTAssertEqual(write.tier, .flash)
        XCTAssertEqual(write.purpose, .swapOut(2))
        XCTAssertEqual(plan.preemptions[0].tokens, victim.computed)
        XCTAssertEqual(write.blocks.count, victim.computedBlocks)
        XCTAssertEqual(write.keys.first, victim.blockHashes.first?.key, "a full block is written under its content hash")
        XCTAssertEqual(victim.status, .swappingOut(.flash))
        XCTAssertFalse(plan.chunks.contains { $0.sequence == 2 })
        XCTAssertEqual(scheduler.kv.arrivingBlocks, write.blocks.count, "blocks being written are not handed out")
        // Nothing more is preempted while the write is in flight.
        let waiting = scheduler.schedule()
        XCTAssertTrue(waiting.preemptions.isEmpty)
        run(waiting, on: &scheduler)
        let before = scheduler.kv.freeBlocks
        scheduler.writeCompleted(write.id, succeeded: true)
        XCTAssertEqual(scheduler.kv.freeBlocks, before + write.blocks.count)
        XCTAssertEqual(scheduler.sequence(2)?.status, .swapped(.flash))
        XCTAssertEqual(scheduler.schedule().chunks.map(\.sequence), [1])
    }

    func testStagedSwapOutFreesItsDeviceBlocksButResumesOnlyOnceWritten() {
        var scheduler = makeScheduler(blocks: 5)
        let plan = stepUntilPreemption(&scheduler)
        let write = try! XCTUnwrap(plan.writes.first)
        run(plan, on: &scheduler)
        let before = scheduler.kv.freeBlocks
        scheduler.writeStaged(write.id)
        XCTAssertEqual(scheduler.kv.freeBlocks, before + write.blocks.count, "copied off the device: the blocks are free")
        XCTAssertEqual(scheduler.kv.arrivingBlocks, 0)
        XCTAssertEqual(scheduler.sequence(2)?.status, .swappingOut(.flash), "the write still runs")
        scheduler.finish(1)
        let next = scheduler.schedule()
        XCTAssertTrue(next.reads.isEmpty, "no swap-in before the write lands")
        run(next, on: &scheduler)
        let free = scheduler.kv.freeBlocks
        scheduler.writeCompleted(write.id, succeeded: true)
        XCTAssertEqual(scheduler.kv.freeBlocks, free, "the blocks were freed once, at staging")
        XCTAssertEqual(scheduler.sequence(2)?.status, .swapped(.flash))
        XCTAssertEqual(scheduler.schedule().reads.map(\.sequence), [2], "it resumes once written")
    }

    func testSwappedSequenceResumesBeforeNewRequestsAreAdmitted() {
        var scheduler = makeScheduler(blocks: 5)
        let plan = stepUntilPreemption(&scheduler)
        run(plan, on: &scheduler)
        Self.complete(plan, on: &scheduler)
        scheduler.add(id: 3, prompt: Array(200..<204), maxTotalTokens: 8)
        // Finish 1; then 2 comes back before 3 is admitted.
        scheduler.finish(1)
        let resume = scheduler.schedule()
        XCTAssertEqual(resume.reads.map(\.sequence), [2])
        XCTAssertEqual(resume.reads.first?.purpose, .swapIn)
        XCTAssertEqual(resume.reads.first?.blocks.count, (plan.preemptions[0].tokens + 3) / 4)
        XCTAssertTrue(resume.prefills.isEmpty, "no admission while a sequence is swapped")
        XCTAssertEqual(scheduler.sequence(2)?.status, .loading(.flash))
        XCTAssertTrue(scheduler.schedule().chunks.isEmpty, "a sequence runs only once all its blocks arrived")
        Self.complete(resume, on: &scheduler)
        let after = scheduler.schedule()
        XCTAssertEqual(after.decodes.map(\.sequence), [2])
        XCTAssertEqual(after.prefills.map(\.sequence), [3])
        let written = plan.writes[0].keys
        XCTAssertEqual(
            Set(after.deletes.flatMap(\.keys)), Set(written.filter { $0.kind == .sequence }), "a partial block's copy goes once read back")
        scheduler.finish(2)
        XCTAssertEqual(
            Set(scheduler.takeDeletes().flatMap(\.keys)), Set(written.filter { $0.kind == .content }),
            "full blocks stay on flash while the sequence lives, and go with it (no prefix cache)")
    }

    func testRecomputeFreesBlocksAtOnceAndRequeuesAllTokens() {
        var scheduler = makeScheduler(blocks: 5, mode: .recompute)
        let plan = stepUntilPreemption(&scheduler)
        let victim = scheduler.sequence(2)!
        XCTAssertEqual(plan.preemptions.map(\.sequence), [2])
        XCTAssertEqual(plan.preemptions[0].choice, .recompute)
        XCTAssertGreaterThan(plan.preemptions[0].tokens, 4)
        XCTAssertEqual(victim.status, .waiting)
        XCTAssertEqual(victim.computed, 0)
        XCTAssertTrue(scheduler.blockTable(of: 2).isEmpty)
        XCTAssertEqual(victim.tokens.count, plan.preemptions[0].tokens + 1, "generated tokens are kept and recomputed")
    }

    func testFailedSwapOutFallsBackToRecompute() {
        var scheduler = makeScheduler(blocks: 5)
        let plan = stepUntilPreemption(&scheduler)
        let written = plan.writes[0].blocks.count
        let free = scheduler.kv.freeBlocks
        scheduler.writeCompleted(plan.writes[0].id, succeeded: false)
        XCTAssertEqual(scheduler.sequence(2)?.status, .waiting)
        XCTAssertEqual(scheduler.sequence(2)?.computed, 0)
        XCTAssertEqual(scheduler.kv.freeBlocks, free + written)
        XCTAssertFalse(scheduler.tiers.isStored(plan.writes[0].keys[0], in: .flash))
    }

    func testPartlyFailedSwapInComputesWhatDidNotArrive() {
        var scheduler = makeScheduler(blocks: 5)
        let plan = stepUntilPreemption(&scheduler)
        run(plan, on: &scheduler)
        Self.complete(plan, on: &scheduler)
        scheduler.finish(1)
        let resume = scheduler.schedule()
        let read = try! XCTUnwrap(resume.reads.first)
        XCTAssertGreaterThan(read.blocks.count, 1)
        scheduler.readCompleted(read.id, intactBlocks: 1)
        XCTAssertEqual(scheduler.sequence(2)?.status, .running)
        XCTAssertEqual(scheduler.sequence(2)?.computed, 4, "the first block arrived")
        XCTAssertEqual(scheduler.blockTable(of: 2).count, 1)
        let next = scheduler.schedule()
        XCTAssertEqual(next.prefills.first?.start, 4)
        XCTAssertEqual(next.prefills.first?.count, scheduler.sequence(2)!.tokens.count - 4)
    }

    func testAbortDuringSwapOutFreesBlocksWhenTheWriteCompletes() {
        var scheduler = makeScheduler(blocks: 5)
        let plan = stepUntilPreemption(&scheduler)
        let free = scheduler.kv.freeBlocks
        scheduler.finish(2)
        XCTAssertEqual(scheduler.kv.freeBlocks, free, "the write still reads those blocks")
        let blocks = plan.writes[0].blocks.count
        scheduler.writeCompleted(plan.writes[0].id, succeeded: true)
        XCTAssertNil(scheduler.sequence(2))
        XCTAssertEqual(scheduler.kv.freeBlocks, free + blocks)
        XCTAssertEqual(Set(scheduler.takeDeletes().flatMap(\.keys)), Set(plan.writes[0].keys), "its tier copies are deleted")
    }

    func testSequencePreemptedAgainWritesOnlyBlocksTheTierLacks() {
        var scheduler = makeScheduler(blocks: 5)
        var plan = stepUntilPreemption(&scheduler)
        let first = plan.writes[0]
        run(plan, on: &scheduler)
        Self.complete(plan, on: &scheduler)
        scheduler.finish(1)
        scheduler.add(id: 3, prompt: Array(300..<312), maxTotalTokens: 20)
        // 2 resumes and runs; 3 is admitted beside it until 2 is preempted again.
        var second: StepPlan.Write?
        for _ in 0..<30 where second == nil {
            plan = scheduler.schedule()
            second = plan.writes.first { $0.purpose == .swapOut(2) }
            run(plan, on: &scheduler)
            Self.complete(plan, on: &scheduler)
        }
        guard let second else { return XCTFail("2 was not preempted again") }
        let fullBefore = first.keys.filter { $0.kind == .content }
        XCTAssertFalse(fullBefore.isEmpty)
        XCTAssertTrue(Set(second.keys).isDisjoint(with: fullBefore), "blocks already on flash are not written again")
    }

    /// Six sequences decoding 48 tokens each in 14 blocks of 4 tokens, transfers completing a
    /// step after they start. Returns the preemptions, and those that hit a sequence within
    /// `window` steps of its swap-in (a sequence swapped straight back out).
    private func steadyLoad(resumeHeadroom: Int, window: Int) -> (preemptions: Int, quick: Int) {
        var scheduler = Self.makeScheduler(blocks: 14, stepTokens: 32, resumeHeadroom: resumeHeadroom)
        for id in 1...6 { scheduler.add(id: SequenceID(id), prompt: Array(0..<5).map { $0 + 10 * id }, maxTotalTokens: 53) }
        var inFlight = StepPlan()
        var resumedAt: [SequenceID: Int] = [:]
        var preemptions = 0
        var quick = 0
        var step = 0
        while !scheduler.isIdle, step < 5_000 {
            step += 1
            for read in inFlight.reads where read.purpose == .swapIn { resumedAt[read.sequence] = step }
            Self.complete(inFlight, on: &scheduler)
            let plan = scheduler.schedule()
            inFlight = plan
            for preemption in plan.preemptions {
                preemptions += 1
                if let resumed = resumedAt[preemption.sequence], step - resumed <= window { quick += 1 }
            }
            run(plan, on: &scheduler)
            for chunk in plan.chunks where chunk.samples && scheduler.sequence(chunk.sequence)!.tokens.count == 53 {
                scheduler.finish(chunk.sequence)
            }
        }
        XCTAssertTrue(scheduler.isIdle, "the load finishes")
        XCTAssertEqual(scheduler.kv.freeBlocks, 14, "no block leaks")
        return (preemptions, quick)
    }

    func testResumedSequenceIsNotPreemptedAgainInTheNextSteps() {
        // Without headroom a sequence comes back as soon as its blocks fit and is soon swapped out again.
        let thrashing = steadyLoad(resumeHeadroom: 0, window: 8)
        XCTAssertGreaterThan(thrashing.quick, 0, "the load is meant to thrash without headroom")
        // With room for 8 more tokens each, no sequence is preempted within 8 steps of its return,
        // and fewer are preempted in all.
        let steady = steadyLoad(resumeHeadroom: 8, window: 8)
        XCTAssertEqual(steady.quick, 0)
        XCTAssertLessThan(steady.preemptions, thrashing.preemptions)
    }

    /// Many sequences of different lengths through a tiny pool, with transfers completing one
    /// step later: every sequence finishes with exactly the tokens a free run gives, and no block
    /// leaks, in every mode, with and without the prefix cache.
    func testStarvedWorkloadFinishesEverySequenceWithoutLeaks() {
        for mode in [PreemptionMode.recompute, .swapDRAM, .swapFlash, .auto] {
            for prefixCaching in [false, true] {
                var scheduler = Self.makeScheduler(
                    blocks: 10, stepTokens: 16, mode: mode, prefixCaching: prefixCaching, prefixFlashBlocks: prefixCaching ? 8 : 0)
                var expectedLength: [SequenceID: Int] = [:]
                for id in 1...8 {
                    // Pairs of sequences share their first block.
                    let prompt = Array(0..<4) + Array(0..<(id % 4)).map { $0 + 10 * id }
                    expectedLength[SequenceID(id)] = prompt.count + 24
                    scheduler.add(id: SequenceID(id), prompt: prompt, maxTotalTokens: prompt.count + 24)
                }
                var inFlight = StepPlan()
                var preemptions = 0
                var steps = 0
                while !scheduler.isIdle {
                    steps += 1
                    XCTAssertLessThan(steps, 2_000, "\(mode) makes no progress")
                    if steps > 2_000 { return }
                    Self.complete(inFlight, on: &scheduler)
                    let plan = scheduler.schedule()
                    inFlight = plan
                    preemptions += plan.preemptions.count
                    run(plan, on: &scheduler)
                    for chunk in plan.chunks where chunk.samples {
                        let sequence = scheduler.sequence(chunk.sequence)!
                        // The token sampled after position p is always p * 10 + id: recompute,
                        // swaps and shared blocks never change what a sequence sees.
                        XCTAssertEqual(sequence.tokens.last, (sequence.tokens.count - 1) * 10 + Int(chunk.sequence))
                        if sequence.tokens.count == expectedLength[chunk.sequence] { scheduler.finish(chunk.sequence) }
                    }
                }
                XCTAssertGreaterThan(preemptions, 3, "\(mode): the pool is meant to be starved")
                XCTAssertEqual(scheduler.kv.freeBlocks, 10, "\(mode), prefix cache \(prefixCaching): leaked blocks")
                XCTAssertEqual(scheduler.kv.arrivingBlocks, 0)
                if !prefixCaching { XCTAssertEqual(scheduler.tiers.storedCount(in: .flash), 0, "\(mode) leaked tier blocks") }
                XCTAssertEqual(scheduler.tiers.storedCount(in: .dram), 0, "\(mode) leaked host blocks")
            }
        }
    }
}
