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

    func testAMoreServedRequestTakesNoMoreOfAStepThanTheLessServedOnes() {
        var share = FairShare()
        for (id, group, service) in [(1, 1, 0), (2, 2, 50), (3, 3, 90), (4, 2, 0)] as [(SequenceID, UInt64, Int)] {
            share.join(id, group: group)
            share.record(id, tokens: service)
        }
        var step = share.step()
        // The most-served request asks first: nothing lighter has taken anything yet.
        XCTAssertEqual(step.allowance(for: 3), Int.max)
        step.take(8, by: 3)
        XCTAssertEqual(step.allowance(for: 1), Int.max, "the least served is never capped, whoever came first")
        step.take(1, by: 1)
        XCTAssertEqual(step.allowance(for: 2), 1, "request 2 may match request 1's one token")
        step.take(1, by: 4)
        XCTAssertEqual(step.allowance(for: 2), 0, "sequence 4 is request 2's too")
        XCTAssertEqual(step.allowance(for: 3), 0, "request 3 already took more than the two before it")
    }

    func testOneRequestIsNeverCapped() {
        var share = FairShare()
        for id in 1...64 { share.join(SequenceID(id), group: nil) }
        share.record(1, tokens: 1_000)
        var step = share.step()
        for id in 1...64 {
            XCTAssertEqual(step.allowance(for: SequenceID(id)), Int.max)
            step.take(8, by: SequenceID(id))
        }
    }
}
