import XCTest

@testable import HiFCCore

/// A sequence swapped back in and preempted again in the next plan, before it computes anything,
/// writes its partial last block again under the same key.
final class SwapRewriteTests: XCTestCase {
    func testSequenceSwappedStraightBackOutRewritesItsPartialBlockWithoutDeletingIt() {
        // Four prompts of 25-40 tokens prefilled in chunks of 16 through 18 blocks of 4 tokens,
        // with no resume headroom; transfers complete one step after they start.
        var state: UInt64 = 1
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33)
        }
        var scheduler = SchedulerTests.makeScheduler(blocks: 18, stepTokens: 16, mode: .swapFlash, prefixCaching: true, resumeHeadroom: 0)
        var total: [SequenceID: Int] = [:]
        for id in 1...4 {
            let length = 25 + next() % 16
            total[SequenceID(id)] = length + 8
            scheduler.add(id: SequenceID(id), prompt: (0..<length).map { _ in next() % 5000 }, maxTotalTokens: length + 8)
        }
        var inFlight = StepPlan()
        var rewrites = 0
        var steps = 0
        while !scheduler.isIdle, steps < 1_000 {
            steps += 1
            let swappedIn = Set(inFlight.reads.filter { $0.purpose == .swapIn }.flatMap(\.keys))
            SchedulerTests.complete(inFlight, on: &scheduler)
            let plan = scheduler.schedule()
            let written = Set(plan.writes.flatMap(\.keys))
            rewrites += written.intersection(swappedIn).count
            for delete in plan.deletes {
                XCTAssertTrue(written.isDisjoint(with: delete.keys), "step \(steps): a plan deletes a key it writes")
            }
            inFlight = plan
            SchedulerTests.run(plan, on: &scheduler)
            for chunk in plan.chunks where chunk.samples && scheduler.sequence(chunk.sequence)!.tokens.count == total[chunk.sequence] {
                scheduler.finish(chunk.sequence)
            }
        }
        XCTAssertTrue(scheduler.isIdle, "the load finishes")
        XCTAssertGreaterThan(rewrites, 0, "the load is meant to swap a sequence straight back out")
        XCTAssertEqual(scheduler.tiers.storedCount(in: .flash), 0, "no tier block leaks")
    }
}
