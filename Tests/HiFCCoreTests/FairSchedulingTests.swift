import XCTest

@testable import HiFCCore

/// The scheduler between requests (`FairShare`): a small request is not held behind a big one's
/// many sequences. Tokens are "sampled" as in `SchedulerTests`.
final class FairSchedulingTests: XCTestCase {
    private func run(_ plan: StepPlan, on scheduler: inout Scheduler) { SchedulerTests.run(plan, on: &scheduler) }

    /// Adds `count` sequences of request `group` with `prompt`-token prompts, ids from `first`.
    private func add(
        _ count: Int, from first: SequenceID, group: UInt64, prompt: Int, maxTotal: Int, to scheduler: inout Scheduler
    ) {
        for id in first..<first + SequenceID(count) {
            scheduler.add(id: id, prompt: Array(0..<prompt).map { $0 + 100 * Int(id) }, maxTotalTokens: maxTotal, group: group)
        }
    }

    func testASmallRequestIsAdmittedBeforeABigRequestsRemainingSequences() {
        var scheduler = SchedulerTests.makeScheduler(blocks: 64, stepTokens: 8)
        add(4, from: 1, group: 1, prompt: 8, maxTotal: 16, to: &scheduler)
        run(scheduler.schedule(), on: &scheduler)  // 1's prompt
        scheduler.add(id: 9, prompt: Array(0..<4), maxTotalTokens: 8, group: 2)
        let plan = scheduler.schedule()
        XCTAssertEqual(plan.decodes.map(\.sequence), [1])
        XCTAssertEqual(
            plan.prefills.map(\.sequence), [9, 2], "the new request has had no service: it goes before 2 (which takes the rest of the step), 3 and 4")
        XCTAssertEqual(plan.prefills.first?.count, 4)
    }

    func testTheBiggestConsumerIsPreemptedFirst() {
        // Two sequences of request 1, then one of request 2 (the newest), in 8 blocks of 4 tokens.
        var scheduler = SchedulerTests.makeScheduler(blocks: 8, stepTokens: 64)
        add(2, from: 1, group: 1, prompt: 4, maxTotal: 24, to: &scheduler)
        run(scheduler.schedule(), on: &scheduler)
        scheduler.add(id: 3, prompt: Array(300..<304), maxTotalTokens: 24, group: 2)
        for _ in 0..<24 {
            let running = scheduler.sequence(3)?.status == .running
            let plan = scheduler.schedule()
            if !plan.preemptions.isEmpty {
                XCTAssertTrue(running, "3 ran beside 1 and 2")
                XCTAssertEqual(plan.preemptions.map(\.sequence), [2], "the newest sequence of the most-served request, not 3")
                XCTAssertEqual(scheduler.sequence(3)?.status, .running)
                return
            }
            run(plan, on: &scheduler)
        }
        XCTFail("no preemption")
    }

    func testAnUnderservedRequestPreemptsTheMostServedOneToGetIn() {
        // Request 1's two sequences fill the device; request 2 must not wait for them to end.
        var scheduler = SchedulerTests.makeScheduler(blocks: 8, stepTokens: 8)
        add(2, from: 1, group: 1, prompt: 8, maxTotal: 32, to: &scheduler)
        for _ in 0..<8 { run(scheduler.schedule(), on: &scheduler) }
        XCTAssertEqual(scheduler.kv.freeBlocks, 0, "request 1 holds the device")
        scheduler.add(id: 3, prompt: Array(0..<4), maxTotalTokens: 8, group: 2)
        var plan = scheduler.schedule()
        XCTAssertEqual(plan.preemptions.map(\.sequence), [2], "request 1's newest sequence makes room")
        XCTAssertFalse(plan.chunks.contains { $0.sequence == 2 }, "a victim computes nothing in the step that preempts it")
        run(plan, on: &scheduler)
        SchedulerTests.complete(plan, on: &scheduler)
        plan = scheduler.schedule()
        XCTAssertEqual(plan.prefills.map(\.sequence), [3], "admitted ahead of the swapped sequence")
        XCTAssertTrue(plan.reads.isEmpty)
    }

    func testAMoreServedRequestTakesNoMoreOfAStepThanALessServedOne() {
        // The token cap alone (no time budget).
        var scheduler = SchedulerTests.makeScheduler(blocks: 64, stepTokens: 16, sharedStepSlowdown: nil)
        add(4, from: 1, group: 1, prompt: 4, maxTotal: 40, to: &scheduler)
        run(scheduler.schedule(), on: &scheduler)  // a step's tokens of service: no longer request 2's peer
        scheduler.add(id: 9, prompt: Array(0..<4), maxTotalTokens: 12, group: 2)
        var plan = scheduler.schedule()
        XCTAssertEqual(plan.prefills.map(\.sequence), [9])
        run(plan, on: &scheduler)
        plan = scheduler.schedule()
        XCTAssertEqual(plan.decodes.map(\.sequence), [9, 1], "request 1 gets one token beside request 2's one")
        run(plan, on: &scheduler)
        scheduler.finish(9)
        XCTAssertEqual(scheduler.schedule().decodes.map(\.sequence), [1, 2, 3, 4], "alone again, request 1 fills the step")
    }

    func testAnUnderservedRequestsFirstStepHoldsTheOthersToItsShare() {
        for slowdown in [nil, 1.5] as [Double?] {
            var scheduler = SchedulerTests.makeScheduler(blocks: 64, stepTokens: 16, sharedStepSlowdown: slowdown)
            add(8, from: 1, group: 1, prompt: 2, maxTotal: 40, to: &scheduler)
            for _ in 0..<4 { run(scheduler.schedule(), on: &scheduler) }
            scheduler.add(id: 20, prompt: Array(0..<3), maxTotalTokens: 8, group: 2)
            let plan = scheduler.schedule()
            XCTAssertEqual(plan.prefills.map(\.sequence), [20], "the underserved request is planned first")
            XCTAssertEqual(plan.prefills.first?.count, 3)
            // By tokens: as many as request 2's prompt. By time (every token priced alike by the
            // default model): the half of its prompt's time that 1.5 allows, one token.
            XCTAssertEqual(
                plan.decodes.count, slowdown == nil ? 3 : 1, "request 1's eight decoding sequences, slowdown \(String(describing: slowdown))")
        }
    }

    func testTheMostServedRequestKeepsFinishingWhileSmallRequestsComeAndGo() {
        var scheduler = SchedulerTests.makeScheduler(blocks: 64, stepTokens: 16)
        add(8, from: 1, group: 1, prompt: 2, maxTotal: 24, to: &scheduler)
        var nextSmall: SequenceID = 100
        var bigLeft = Set<SequenceID>(1...8)
        var steps = 0
        while !bigLeft.isEmpty {
            steps += 1
            guard steps < 2_000 else { return XCTFail("the big request is starved: \(bigLeft.count) sequences left") }
            // A small request is always there: a new one as soon as the last one ends.
            if !(100..<nextSmall).contains(where: { scheduler.sequence($0) != nil }) {
                scheduler.add(id: nextSmall, prompt: Array(0..<3).map { $0 + Int(nextSmall) }, maxTotalTokens: 8, group: UInt64(nextSmall))
                nextSmall += 1
            }
            let plan = scheduler.schedule()
            run(plan, on: &scheduler)
            for chunk in plan.chunks where chunk.samples {
                let sequence = scheduler.sequence(chunk.sequence)!
                if sequence.tokens.count == sequence.maxTotalTokens {
                    scheduler.finish(chunk.sequence)
                    bigLeft.remove(chunk.sequence)
                }
            }
        }
        XCTAssertGreaterThan(nextSmall - 100, 10, "small requests were served all along")
    }

    /// The starved workload of `SchedulerTests` with each sequence its own request: every
    /// sequence still finishes with its own tokens, without leaks, in every mode.
    func testStarvedRequestsEachFinishWithoutLeaks() {
        for mode in [PreemptionMode.recompute, .swapFlash] {
            var scheduler = SchedulerTests.makeScheduler(blocks: 10, stepTokens: 16, mode: mode)
            var expectedLength: [SequenceID: Int] = [:]
            for id in 1...8 {
                let prompt = Array(0..<(4 + id % 4)).map { $0 + 10 * id }
                expectedLength[SequenceID(id)] = prompt.count + 24
                scheduler.add(id: SequenceID(id), prompt: prompt, maxTotalTokens: prompt.count + 24, group: UInt64(id % 3))
            }
            var inFlight = StepPlan()
            var steps = 0
            while !scheduler.isIdle {
                steps += 1
                guard steps < 2_000 else { return XCTFail("\(mode) makes no progress") }
                SchedulerTests.complete(inFlight, on: &scheduler)
                let plan = scheduler.schedule()
                inFlight = plan
                run(plan, on: &scheduler)
                for chunk in plan.chunks where chunk.samples {
                    let sequence = scheduler.sequence(chunk.sequence)!
                    XCTAssertEqual(sequence.tokens.last, (sequence.tokens.count - 1) * 10 + Int(chunk.sequence))
                    if sequence.tokens.count == expectedLength[chunk.sequence] { scheduler.finish(chunk.sequence) }
                }
            }
            XCTAssertEqual(scheduler.kv.freeBlocks, 10, "\(mode): leaked blocks")
            XCTAssertEqual(scheduler.tiers.storedCount(in: .flash), 0, "\(mode): leaked tier blocks")
        }
    }
}
