import XCTest

@testable import HiFCCore

/// Attained service per request and the shares of a step, without a scheduler.
final class FairShareTests: XCTestCase {
    func testTheLeastServedGroupComesFirstThenArrivalOrder() {
        var share = FairShare()
        share.join(1, group: 7)
        share.join(2, group: 7)
        share.join(3, group: 8)
        share.record(1, tokens: 40)
        let order = share.order([1, 2, 3]) { UInt64($0) }
        XCTAssertEqual(order, [3, 1, 2], "group 8 has had nothing; group 7's sequences keep their arrival order")
    }

    func testSequencesWithoutAGroupShareOneAndKeepArrivalOrder() {
        var share = FairShare()
        for id in 1...3 { share.join(SequenceID(id), group: nil) }
        share.record(1, tokens: 100)
        XCTAssertEqual(share.service(of: 3), 100)
        XCTAssertEqual(share.order([3, 1, 2]) { UInt64($0) }, [1, 2, 3])
    }

    func testAGroupsServiceGoesWithItsLastSequence() {
        var share = FairShare()
        share.join(1, group: 5)
        share.join(2, group: 5)
        share.record(1, tokens: 10)
        share.leave(1)
        XCTAssertEqual(share.service(of: 2), 10, "the group lives on in its other sequence")
        share.leave(2)
        share.join(3, group: 5)
        XCTAssertEqual(share.service(of: 3), 0)
    }

    func testTheMoreServedRequestsTogetherTakeNoMoreOfAStepThanTheLeastServedOne() {
        var share = FairShare()
        // Request 1 has had no service; requests 2 and 3 (and 2's second sequence 4) much more.
        for (id, group, service) in [(1, 1, 0), (2, 2, 50), (3, 3, 90), (4, 2, 0)] as [(SequenceID, UInt64, Int)] {
            share.join(id, group: group)
            share.record(id, tokens: service)
        }
        var step = share.step(margin: 10)
        // The most-served request asks first: nothing less served has taken anything yet.
        XCTAssertEqual(step.allowance(for: 3), Int.max)
        step.take(8, by: 3, from: 0)
        XCTAssertEqual(step.allowance(for: 1), Int.max, "the least served is never capped, whoever came first")
        step.take(2, by: 1, from: 0)
        XCTAssertEqual(step.allowance(for: 2), 0, "request 3 already took more than request 1's two tokens, for both")
    }

    func testManyMoreServedRequestsShareOneAllowanceInsteadOfEachTakingIt() {
        var share = FairShare()
        share.join(100, group: 100)
        // Eight requests of increasing service, each far above request 100's none.
        for group in 1...8 {
            share.join(SequenceID(group), group: UInt64(group))
            share.record(SequenceID(group), tokens: 1_000 * group)
        }
        var step = share.step(margin: 64)
        step.take(1, by: 100, from: 0)
        var taken = 0
        for id in 1...8 {
            let tokens = min(step.allowance(for: SequenceID(id)), 4)
            step.take(tokens, by: SequenceID(id), from: 0)
            taken += tokens
        }
        XCTAssertEqual(taken, 1, "one token beside request 100's one, not one more per request")
    }

    func testRequestsWithinTheMarginLeadTheStepTogether() {
        var share = FairShare()
        for (id, service) in [(1, 0), (2, 40), (3, 500)] as [(SequenceID, Int)] {
            share.join(id, group: UInt64(id))
            share.record(id, tokens: service)
        }
        var step = share.step(margin: 64)
        step.take(1, by: 1, from: 0)
        XCTAssertEqual(step.allowance(for: 2), Int.max, "40 tokens of service apart is within a step's margin: not capped")
        step.take(3, by: 2, from: 0)
        XCTAssertEqual(step.allowance(for: 3), 4, "the most-served request may match both leaders' tokens")
    }

    func testOneRequestIsNeverCapped() {
        var share = FairShare()
        for id in 1...64 { share.join(SequenceID(id), group: nil) }
        share.record(1, tokens: 1_000)
        var step = share.step(margin: 8)
        for id in 1...64 {
            XCTAssertEqual(step.allowance(for: SequenceID(id)), Int.max)
            step.take(8, by: SequenceID(id), from: 0)
        }
    }

    /// Request 1 decodes (one token, 0.5 ms at the model's default 2,000 tokens a second);
    /// request 2, far more served, wants a token of its own at each step.
    private func sharedStep(_ share: FairShare, carried: Double) -> (granted: Int, carried: Double) {
        var step = share.step(margin: 16, pace: FairShare.Pace(model: StepTimeModel(), slowdown: 1.5), carried: carried)
        step.take(1, by: 1, from: 20)
        let granted = step.grant(1, to: 2, from: 400)
        step.take(granted, by: 2, from: 400)
        return (granted, step.carriedSlack)
    }

    func testATrailingTokenWaitsUntilTheStepsSavedSlackPaysForIt() {
        var share = FairShare()
        share.join(1, group: 1)
        share.join(2, group: 2)
        share.record(2, tokens: 1_000)
        var carried = 0.0
        var granted: [Int] = []
        for _ in 0..<6 {
            let step = sharedStep(share, carried: carried)
            granted.append(step.granted)
            carried = step.carried
        }
        // Each step may add half of request 1's 0.5 ms; request 2's token costs 0.5 ms.
        XCTAssertEqual(granted, [0, 1, 0, 1, 0, 1], "a token every second step: request 1's steps take 1.5 times its own part")
    }

    func testWithoutATrailingRequestNothingIsSaved() {
        var share = FairShare()
        share.join(1, group: 1)
        share.join(2, group: 1)
        var step = share.step(margin: 16, pace: FairShare.Pace(model: StepTimeModel(), slowdown: 1.5), carried: 0.01)
        step.take(1, by: 1, from: 20)
        XCTAssertEqual(step.grant(64, to: 2, from: 0), 64, "one request: never capped, by tokens or by time")
        step.take(64, by: 2, from: 0)
        XCTAssertEqual(step.carriedSlack, 0)
    }
}
