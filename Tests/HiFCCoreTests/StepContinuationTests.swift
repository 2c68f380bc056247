import XCTest

@testable import HiFCCore

/// `Scheduler.planContinuation`: the next step planned before the last one's tokens are known.
final class StepContinuationTests: XCTestCase {
    private func makeScheduler(blocks: Int = 32) -> Scheduler { SchedulerTests.makeScheduler(blocks: blocks) }

    /// Two sequences of 6-token prompts, prefilled (not yet reported): the plan returned.
    private func prefillTwo(_ scheduler: inout Scheduler, maxTotal: Int = 20) -> StepPlan {
        scheduler.add(id: 1, prompt: Array(0..<6), maxTotalTokens: maxTotal)
        scheduler.add(id: 2, prompt: Array(10..<16), maxTotalTokens: maxTotal)
        return scheduler.schedule()
    }

    func testContinuationDecodesTheTokenEachSequenceSamples() {
        var scheduler = makeScheduler()
        let prefill = prefillTwo(&scheduler)
        let next = scheduler.planContinuation(of: prefill)
        XCTAssertEqual(next?.decodes.map(\.start), [6, 6])
        XCTAssertEqual(Set(next?.decodes.map(\.sequence) ?? []), [1, 2])
        XCTAssertTrue(next?.decodes.allSatisfy { $0.count == 1 && $0.samples } ?? false)
        // Position 6 is the seventh token: a second block of 4 for each.
        XCTAssertEqual(scheduler.blockTable(of: 1).count, 2)
        // Reported in order, the two steps leave each sequence as two ordinary steps would.
        SchedulerTests.run(prefill, on: &scheduler)
        SchedulerTests.run(next!, on: &scheduler)
        XCTAssertEqual(scheduler.sequence(1)?.computed, 7)
        XCTAssertEqual(scheduler.sequence(1)?.tokens.count, 8)
        XCTAssertEqual(scheduler.schedule().decodes.map(\.start), [7, 7])
    }

    func testContinuationFollowsAContinuation() {
        var scheduler = makeScheduler()
        var plan = prefillTwo(&scheduler)
        for step in 0..<5 {
            guard let next = scheduler.planContinuation(of: plan) else { return XCTFail("no continuation at step \(step)") }
            SchedulerTests.run(plan, on: &scheduler)
            plan = next
        }
        XCTAssertEqual(plan.decodes.map(\.start), [10, 10])
    }

    func testSequenceAtItsLengthLimitIsLeftOut() {
        var scheduler = makeScheduler()
        scheduler.add(id: 1, prompt: Array(0..<6), maxTotalTokens: 7)
        scheduler.add(id: 2, prompt: Array(10..<16), maxTotalTokens: 20)
        let prefill = scheduler.schedule()
        // Sequence 1's sampled token is its seventh and last.
        XCTAssertEqual(scheduler.planContinuation(of: prefill)?.decodes.map(\.sequence), [2])
    }

    func testNoContinuationWhileARequestWaits() {
        var scheduler = makeScheduler()
        let prefill = prefillTwo(&scheduler)
        scheduler.add(id: 3, prompt: Array(0..<6), maxTotalTokens: 20)
        XCTAssertNil(scheduler.planContinuation(of: prefill))
    }

    func testNoContinuationWhileAPrefillGoesOn() {
        var scheduler = SchedulerTests.makeScheduler(blocks: 32, stepTokens: 8)
        scheduler.add(id: 1, prompt: Array(0..<6), maxTotalTokens: 20)
        scheduler.add(id: 2, prompt: Array(10..<16), maxTotalTokens: 20)
        // Sequence 2 gets 2 of its 6 prompt tokens: nothing is sampled for it.
        let plan = scheduler.schedule()
        XCTAssertEqual(plan.prefills.map(\.count), [6, 2])
        XCTAssertNil(scheduler.planContinuation(of: plan))
    }

    func testNoContinuationWhenABlockWouldNeedAPreemption() {
        // 5 blocks of 4: two 6-token prompts take 2 each, and position 8 needs a third each.
        var scheduler = makeScheduler(blocks: 5)
        let prefill = prefillTwo(&scheduler, maxTotal: 12)
        SchedulerTests.run(prefill, on: &scheduler)
        let plan = scheduler.schedule()
        XCTAssertEqual(plan.decodes.map(\.start), [6, 6])
        let next = scheduler.planContinuation(of: plan)
        XCTAssertEqual(next?.decodes.map(\.start), [7, 7], "position 7 fits the blocks held")
        XCTAssertEqual(scheduler.kv.freeBlocks, 1)
        SchedulerTests.run(plan, on: &scheduler)
        XCTAssertNil(scheduler.planContinuation(of: next!))
    }

    func testFinishedSequenceInAContinuationIsSkippedWhenReported() {
        var scheduler = makeScheduler()
        let prefill = prefillTwo(&scheduler)
        let next = scheduler.planContinuation(of: prefill)!
        SchedulerTests.run(prefill, on: &scheduler)
        // Sequence 1 ends on its sampled token (a stop string) while `next` computes it.
        scheduler.finish(1)
        let after = scheduler.planContinuation(of: next)
        XCTAssertEqual(after?.decodes.map(\.sequence), [2])
        SchedulerTests.run(next, on: &scheduler)
        XCTAssertNil(scheduler.sequence(1))
        XCTAssertEqual(scheduler.sequence(2)?.computed, 7)
    }
}
