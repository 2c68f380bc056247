import XCTest

@testable import HiFCCore

final class CoActivationRecordTests: XCTestCase {
    private func key(_ n: UInt64) -> BlockKey { .content(high: n, low: n) }

    func testHotnessCountsRememberedGroupsAndFadesPastTheWindow() {
        var record = CoActivationRecord(windowGroups: 3)
        record.record([key(1), key(2)])
        record.record([key(1), key(3)])
        record.record([key(1), key(1)])  // a key twice in one batch counts once
        XCTAssertEqual(record.reads(of: key(1)), 3)
        XCTAssertEqual(record.reads(of: key(2)), 1)
        record.record([key(4)])  // the first group leaves the window
        XCTAssertEqual(record.reads(of: key(1)), 2)
        XCTAssertEqual(record.reads(of: key(2)), 0)
        XCTAssertEqual(record.trackedKeys, 3, "key 2 is forgotten entirely")
    }

    func testPartnersAreTheKeysOfTheMostRecentGroups() {
        var record = CoActivationRecord(windowGroups: 8, groupsPerKey: 2)
        record.record([key(1), key(2)])
        record.record([key(1), key(3)])
        record.record([key(1), key(4), key(5)])
        XCTAssertEqual(Set(record.partners(of: key(1))), [key(3), key(4), key(5)], "only the last two groups of key 1")
        XCTAssertEqual(record.partners(of: key(1), limit: 2).count, 2)
        XCTAssertEqual(record.partners(of: key(9)), [])
    }
}

final class SwarmPlacementTests: XCTestCase {
    private func key(_ n: UInt64) -> BlockKey { .content(high: 7, low: n) }
    private let idle4 = [Int64](repeating: 0, count: 4)

    func testANewBatchSpreadsOverEveryPathStartingWithTheLeastBusy() {
        let swarm = SwarmPlacement(pathCount: 4, settings: .init(replicationBudgetBytes: 0))
        let keys = (0..<8).map { key($0) }
        let paths = swarm.placeBatch(
            keys: keys, lengths: Array(repeating: 100, count: 8), queuedBytes: [500, 0, 900, 0], usedBytes: idle4, pathsOf: { _ in [] })
        XCTAssertEqual(paths, [1, 3, 0, 2, 1, 3, 0, 2])
    }

    func testBlocksReadTogetherBeforeAvoidThePathsOfTheirPartners() {
        var swarm = SwarmPlacement(pathCount: 4, settings: .init(replicationBudgetBytes: 0))
        // Blocks 0..2 were loaded together with block 9, which now sits alone on path 0.
        let stored: [BlockKey: [Int]] = [key(0): [1], key(1): [2], key(9): [0]]
        _ = swarm.noteRead(
            keys: [key(0), key(1), key(2), key(9)], lengths: [1, 1, 1, 1], copies: [[1], [2], [], [0]],
            queuedBytes: idle4, usedBytes: idle4, pathsOf: { stored[$0] ?? [] })
        // Block 2 is written now (its old copy was lost): paths 0, 1, 2 hold its partners.
        let path = swarm.placeBatch(keys: [key(2)], lengths: [1], queuedBytes: idle4, usedBytes: idle4, pathsOf: { stored[$0] ?? [] })
        XCTAssertEqual(path, [3])
    }

    func testEachReadGoesToTheCopyOnTheLeastBusyPath() {
        let chosen = SwarmPlacement.chooseCopies(
            [[0], [0, 1], [0, 1, 2], [2]], lengths: [10, 10, 10, 10], queuedBytes: [0, 5, 0, 0])
        // The single-copy blocks are placed first (paths 0 and 2), then block 1 on path 1 (5 < 10),
        // then block 2 on the least busy of 0 (10), 1 (15), 2 (10): path 0 by index.
        XCTAssertEqual(chosen, [0, 1, 0, 2])
    }

    func testAHotContentBlockThatWaitedGetsOneMoreCopyPerThresholdReadsUpToOnePerPath() {
        var swarm = SwarmPlacement(pathCount: 3, settings: .init(replicateAfterReads: 2, replicationBudgetBytes: 1000))
        var holders = [0]
        var copiesMade: [Int] = []
        for _ in 0..<8 {
            // Each read found its copies' paths busy (300 bytes queued) and another idle.
            let queued = (0..<3).map { holders.contains($0) ? Int64(300) : 0 }
            let plan = swarm.noteRead(
                keys: [key(1)], lengths: [100], copies: [holders], queuedBytes: queued, usedBytes: [0, 0, 0], pathsOf: { _ in [] })
            holders += plan.copies.map(\.path)
            copiesMade.append(plan.copies.count)
        }
        XCTAssertEqual(copiesMade, [0, 1, 0, 1, 0, 0, 0, 0], "a copy at 2 and 4 reads, then every path holds one")
        XCTAssertEqual(Set(holders), [0, 1, 2])
        XCTAssertEqual(swarm.replicaBytes, 200)
    }

    func testAHotBlockWhosePathWasNotBusierIsNotCopied() {
        var swarm = SwarmPlacement(pathCount: 3, settings: .init(replicateAfterReads: 1, replicationBudgetBytes: 1000))
        for _ in 0..<4 {
            let plan = swarm.noteRead(
                keys: [key(1)], lengths: [100], copies: [[0]], queuedBytes: [50, 0, 0], usedBytes: [0, 0, 0], pathsOf: { _ in [] })
            XCTAssertTrue(plan.isEmpty, "50 queued bytes ahead of a 100-byte read: a copy elsewhere gains too little")
        }
    }

    func testSwappedSequenceBlocksAreNeverCopied() {
        var swarm = SwarmPlacement(pathCount: 2, settings: .init(replicateAfterReads: 1, replicationBudgetBytes: 1 << 30))
        for _ in 0..<4 {
            let plan = swarm.noteRead(
                keys: [.sequence(3, block: 0), .sequence(3, block: 1)], lengths: [10, 10], copies: [[0], [0]],
                queuedBytes: [0, 0], usedBytes: [0, 0], pathsOf: { _ in [] })
            XCTAssertTrue(plan.isEmpty)
        }
    }

    func testACrowdedPrefixReadTwiceIsSpreadOverTheIdlePaths() {
        var swarm = SwarmPlacement(pathCount: 4, settings: .init(replicateAfterReads: 100, replicationBudgetBytes: 1 << 30))
        let keys = (0..<8).map { key($0) }
        let crowded = [[Int]](repeating: [0], count: 8)  // all on path 0 (written one by one under affinity, say)
        let first = swarm.noteRead(
            keys: keys, lengths: Array(repeating: 10, count: 8), copies: crowded, queuedBytes: idle4, usedBytes: idle4, pathsOf: { _ in [0] })
        XCTAssertTrue(first.isEmpty, "read once: nothing to gain yet")
        let second = swarm.noteRead(
            keys: keys, lengths: Array(repeating: 10, count: 8), copies: crowded, queuedBytes: idle4, usedBytes: idle4, pathsOf: { _ in [0] })
        var holders = crowded
        for copy in second.copies { holders[Int(copy.key.low)].append(copy.path) }
        let reads = SwarmPlacement.chooseCopies(holders, lengths: Array(repeating: 10, count: 8), queuedBytes: idle4)
        XCTAssertEqual((0..<4).map { path in reads.filter { $0 == path }.count }, [2, 2, 2, 2])
        XCTAssertEqual(second.copies.count, 6)
    }

    func testWhenTheBudgetIsSpentAHotterBlockTakesTheCopiesOfTheColdest() {
        var swarm = SwarmPlacement(pathCount: 2, settings: .init(replicateAfterReads: 2, replicationBudgetBytes: 100))
        func read(_ k: BlockKey) -> ReplicationPlan {
            swarm.noteRead(keys: [k], lengths: [100], copies: [[0]], queuedBytes: [100, 0], usedBytes: [0, 0], pathsOf: { _ in [0] })
        }
        _ = read(key(1))
        XCTAssertEqual(read(key(1)).copies.map(\.key), [key(1)])  // 2 reads: copied, the budget is full
        _ = read(key(2))
        XCTAssertTrue(read(key(2)).isEmpty, "as hot as block 1, not hotter: no room")
        let plan = read(key(2))  // 3 reads against 2
        XCTAssertEqual(plan.drops, [key(1)])
        XCTAssertEqual(plan.copies.map(\.key), [key(2)])
        XCTAssertEqual(swarm.replicaBytes, 100)
        swarm.forgetCopies(of: key(2))
        XCTAssertEqual(swarm.replicaBytes, 0)
    }
}
