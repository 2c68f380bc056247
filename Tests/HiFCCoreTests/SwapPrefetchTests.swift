import XCTest

@testable import HiFCCore

/// Swap prefetches: the next swapped sequences to resume have their flash blocks read into host
/// memory while the device has no room for them, and the swap-in that resumes one uses its
/// prefetch; prefetches no longer wanted are dropped.
final class SwapPrefetchTests: XCTestCase {
    private typealias Candidate = SwapPrefetchDecision.Candidate

    // MARK: The decision

    func testNextResumersArePrefetchedInResumeOrderWithinTheDepth() {
        let change = SwapPrefetchDecision.decide(
            candidates: [
                .init(sequence: 7, blocks: 3, prefetchable: true), .init(sequence: 2, blocks: 4, prefetchable: true),
                .init(sequence: 9, blocks: 1, prefetchable: true),
            ],
            held: [:], depth: 2, capacityBlocks: 100)
        XCTAssertEqual(change.start.map(\.sequence), [7, 2], "the first two in resume order, not the third")
        XCTAssertEqual(change.start.map(\.blocks), [3, 4])
        XCTAssertTrue(change.drop.isEmpty)
    }

    func testSequenceStillSwappingOutTakesItsPlaceInLineButIsNotPrefetched() {
        let change = SwapPrefetchDecision.decide(
            candidates: [
                .init(sequence: 1, blocks: 5, prefetchable: false), .init(sequence: 2, blocks: 4, prefetchable: true),
                .init(sequence: 3, blocks: 4, prefetchable: true),
            ],
            held: [:], depth: 2, capacityBlocks: 100)
        XCTAssertEqual(change.start.map(\.sequence), [2])
    }

    func testFirstSequenceThatDoesNotFitGetsItsLeadingBlocksAndStopsTheRest() {
        let change = SwapPrefetchDecision.decide(
            candidates: [
                .init(sequence: 1, blocks: 4, prefetchable: true), .init(sequence: 2, blocks: 8, prefetchable: true),
                .init(sequence: 3, blocks: 1, prefetchable: true),
            ],
            held: [1: 4], depth: 3, capacityBlocks: 10)
        XCTAssertEqual(change.start.map(\.sequence), [2], "1 is held already; 3 would take room 2 needs")
        XCTAssertEqual(change.start.map(\.blocks), [6], "what is left of the room beside 1's 4 blocks")
        XCTAssertTrue(change.drop.isEmpty)
    }

    func testPrefetchOfASequenceNoLongerNextInLineIsDropped() {
        // 5 was next; 3, preempted since and older, now resumes first, and the depth is one.
        let change = SwapPrefetchDecision.decide(
            candidates: [.init(sequence: 3, blocks: 2, prefetchable: true), .init(sequence: 5, blocks: 2, prefetchable: true)],
            held: [5: 2, 8: 1], depth: 1, capacityBlocks: 4)
        XCTAssertEqual(change.drop, [5, 8], "5 is out of the depth, 8 left the queue")
        XCTAssertEqual(change.start.map(\.sequence), [3], "the room dropped prefetches held is free again")
    }

    func testNothingIsPrefetchedWithoutRoom() {
        let change = SwapPrefetchDecision.decide(
            candidates: [.init(sequence: 1, blocks: 2, prefetchable: true)], held: [:], depth: 2, capacityBlocks: 0)
        XCTAssertTrue(change.start.isEmpty)
    }

    // MARK: The scheduler

    private static func makeScheduler(blocks: Int, depth: Int = 2, prefetchBlocks: Int = 64, prefixCaching: Bool = false) -> Scheduler {
        Scheduler(
            config: SchedulerConfig(
                blockTokens: 4, deviceBlocks: blocks, blockBytes: 1024, maxStepTokens: 16, preemption: .swapFlash, prefetchDepth: depth,
                swapPrefetchBlocks: prefetchBlocks, prefixCaching: prefixCaching, namespace: SchedulerTests.namespace))
    }

    /// Two sequences in 5 blocks stepped until 2 is swapped out and its write has landed, 1 still
    /// running; returns the swap-out's plan.
    private func swapOutSecond(_ scheduler: inout Scheduler) throws -> StepPlan {
        scheduler.add(id: 1, prompt: Array(0..<8), maxTotalTokens: 20)
        scheduler.add(id: 2, prompt: Array(100..<104), maxTotalTokens: 20)
        for _ in 0..<20 {
            let plan = scheduler.schedule()
            SchedulerTests.run(plan, on: &scheduler)
            guard plan.preemptions.isEmpty else {
                XCTAssertEqual(plan.preemptions.map(\.sequence), [2])
                XCTAssertTrue(plan.prefetches.isEmpty, "no prefetch before the swap-out's write lands")
                SchedulerTests.complete(plan, on: &scheduler)
                XCTAssertEqual(scheduler.sequence(2)?.status, .swapped(.flash))
                return plan
            }
        }
        throw XCTSkip("no preemption")
    }

    func testSwappedSequenceIsPrefetchedWhileItsBlocksAreNotFreeAndItsSwapInUsesThePrefetch() throws {
        var scheduler = Self.makeScheduler(blocks: 5)
        let swapOut = try swapOutSecond(&scheduler)
        let next = scheduler.schedule()
        XCTAssertTrue(next.reads.isEmpty, "1 still holds the device")
        let prefetch = try XCTUnwrap(next.prefetches.first)
        XCTAssertEqual(prefetch.sequence, 2)
        XCTAssertEqual(prefetch.tier, .flash)
        XCTAssertEqual(prefetch.keys, swapOut.writes[0].keys, "the blocks its swap-in will read, in order")
        XCTAssertTrue(scheduler.hasTransfersInFlight, "a prefetch in flight keeps the engine from idling")
        SchedulerTests.run(next, on: &scheduler)
        XCTAssertTrue(scheduler.schedule().prefetches.isEmpty, "a sequence is prefetched once")
        scheduler.prefetchCompleted(prefetch.id)
        scheduler.finish(1)
        let resume = scheduler.schedule()
        let read = try XCTUnwrap(resume.reads.first)
        XCTAssertEqual(read.sequence, 2)
        XCTAssertEqual(read.prefetch, prefetch.id)
        XCTAssertEqual(read.keys, prefetch.keys)
        XCTAssertTrue(resume.droppedPrefetches.isEmpty, "the swap-in takes the prefetch")
        SchedulerTests.complete(resume, on: &scheduler)
        XCTAssertEqual(scheduler.schedule().decodes.map(\.sequence), [2])
    }

    func testPrefetchReadsEveryBlockTheTierHoldsTheDevicesCachedOnesToo() throws {
        // The starved device reuses a swapped sequence's cached blocks before it resumes.
        var scheduler = Self.makeScheduler(blocks: 5, prefixCaching: true)
        _ = try swapOutSecond(&scheduler)
        let sequence = try XCTUnwrap(scheduler.sequence(2))
        let prefetch = try XCTUnwrap(scheduler.schedule().prefetches.first)
        XCTAssertEqual(prefetch.keys.count, sequence.computedBlocks)
        XCTAssertEqual(prefetch.keys.first, sequence.blockHashes.first?.key, "from its first block, cached or not")
    }

    func testPrefetchOfASequenceAbortedWhileSwappedIsDropped() throws {
        var scheduler = Self.makeScheduler(blocks: 5)
        _ = try swapOutSecond(&scheduler)
        let next = scheduler.schedule()
        let prefetch = try XCTUnwrap(next.prefetches.first)
        SchedulerTests.run(next, on: &scheduler)
        scheduler.finish(2)
        XCTAssertEqual(scheduler.takeDroppedPrefetches(), [prefetch.id], "its host copies are freed")
        XCTAssertTrue(scheduler.hasTransfersInFlight, "its read still runs")
        scheduler.prefetchCompleted(prefetch.id)
        scheduler.finish(1)
        XCTAssertTrue(scheduler.isIdle)
        XCTAssertEqual(scheduler.tiers.storedCount(in: .flash), 0)
    }

    func testPrefetchOfASequenceThatFinishesWhileSwappedIsDroppedWithTheNextPlan() throws {
        var scheduler = Self.makeScheduler(blocks: 5)
        _ = try swapOutSecond(&scheduler)
        let next = scheduler.schedule()
        let prefetch = try XCTUnwrap(next.prefetches.first)
        SchedulerTests.run(next, on: &scheduler)
        scheduler.prefetchCompleted(prefetch.id)
        scheduler.finish(2)
        XCTAssertEqual(scheduler.schedule().droppedPrefetches, [prefetch.id])
    }

    func testNoPrefetchWithoutRoomForOne() throws {
        var scheduler = Self.makeScheduler(blocks: 5, prefetchBlocks: 0)
        _ = try swapOutSecond(&scheduler)
        XCTAssertTrue(scheduler.schedule().prefetches.isEmpty)
    }

    /// Many sequences through a tiny pool with prefetches one sequence deep, transfers and
    /// prefetches completing a step later: every token is what a free run gives, every prefetch
    /// is taken by one swap-in of its sequence or dropped, some are dropped because an older
    /// sequence was preempted ahead of theirs, and nothing leaks.
    func testStarvedWorkloadUsesOrDropsEveryPrefetchAndStaysLossless() {
        var scheduler = Self.makeScheduler(blocks: 10, depth: 1, prefetchBlocks: 6)
        var expectedLength: [SequenceID: Int] = [:]
        for id in 1...8 {
            let prompt = Array(0..<(4 + id % 5)).map { $0 + 10 * id }
            expectedLength[SequenceID(id)] = prompt.count + 24
            scheduler.add(id: SequenceID(id), prompt: prompt, maxTotalTokens: prompt.count + 24)
        }
        var open: [TransferID: SequenceID] = [:]
        var used = 0
        var droppedWhileSwapped = 0
        var inFlight = StepPlan()
        var steps = 0
        while !scheduler.isIdle {
            steps += 1
            guard steps < 2_000 else { return XCTFail("no progress") }
            SchedulerTests.complete(inFlight, on: &scheduler)
            inFlight.prefetches.forEach { scheduler.prefetchCompleted($0.id) }
            let plan = scheduler.schedule()
            inFlight = plan
            for id in plan.droppedPrefetches {
                let sequence = open.removeValue(forKey: id)
                XCTAssertNotNil(sequence, "only a prefetch planned and not yet used is dropped")
                if let sequence, case .swapped = scheduler.sequence(sequence)?.status { droppedWhileSwapped += 1 }
            }
            for read in plan.reads {
                guard let id = read.prefetch else { continue }
                XCTAssertEqual(open.removeValue(forKey: id), read.sequence, "a swap-in takes its own sequence's prefetch")
                used += 1
            }
            for prefetch in plan.prefetches {
                XCTAssertEqual(scheduler.sequence(prefetch.sequence)?.status, .swapped(.flash))
                XCTAssertLessThanOrEqual(prefetch.keys.count, 6)
                open[prefetch.id] = prefetch.sequence
            }
            SchedulerTests.run(plan, on: &scheduler)
            for chunk in plan.chunks where chunk.samples {
                let sequence = scheduler.sequence(chunk.sequence)!
                XCTAssertEqual(sequence.tokens.last, (sequence.tokens.count - 1) * 10 + Int(chunk.sequence))
                if sequence.tokens.count == expectedLength[chunk.sequence] { scheduler.finish(chunk.sequence) }
            }
            for id in scheduler.takeDroppedPrefetches() { XCTAssertNotNil(open.removeValue(forKey: id)) }
        }
        XCTAssertGreaterThan(used, 0, "swap-ins are meant to use prefetches")
        XCTAssertGreaterThan(droppedWhileSwapped, 0, "the line is meant to change under a prefetch")
        XCTAssertTrue(open.isEmpty, "prefetches neither used nor dropped: \(open)")
        XCTAssertEqual(scheduler.kv.freeBlocks, 10)
        XCTAssertEqual(scheduler.tiers.storedCount(in: .flash), 0)
    }
}
