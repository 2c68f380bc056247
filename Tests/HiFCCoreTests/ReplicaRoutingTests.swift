import XCTest

@testable import HiFCCore

final class ReplicaRouterTests: XCTestCase {
    private let router = ReplicaRouter(blockTokens: 16)
    private let request = ReplicaRouter.Request(promptTokens: 256, maxTokens: 64)

    func testTheLeastLoadedReplicaWinsWithoutAffinity() {
        let loads = [ReplicaLoad(requests: 3, tokens: 900), ReplicaLoad(requests: 1, tokens: 300), ReplicaLoad(requests: 2, tokens: 600)]
        XCTAssertEqual(router.choose(request, loads: loads), 1)
    }

    func testEqualReplicasTakeTurnsByRotation() {
        let idle = [ReplicaLoad](repeating: ReplicaLoad(), count: 3)
        XCTAssertEqual((0..<6).map { router.choose(request, loads: idle, rotation: $0) }, [0, 1, 2, 0, 1, 2])
    }

    func testEqualTokensGoToTheReplicaWithFewerRequests() {
        let loads = [ReplicaLoad(requests: 4, tokens: 500), ReplicaLoad(requests: 1, tokens: 500)]
        XCTAssertEqual(router.choose(request, loads: loads), 1)
    }

    func testAReplicaHoldingThePrefixWinsWhenItsExtraLoadIsLessThanThePrefillSaved() {
        // Replica 0 holds 12 of the 16 prompt blocks (192 tokens of prefill saved) and carries
        // 100 tokens more than replica 1: it wins.
        let loads = [ReplicaLoad(requests: 2, tokens: 400), ReplicaLoad(requests: 1, tokens: 300)]
        XCTAssertEqual(router.choose(request, loads: loads, affinityBlocks: [12, 0]), 0)
        // 300 tokens more than replica 1: the saving no longer pays, the least loaded wins.
        let busier = [ReplicaLoad(requests: 4, tokens: 600), ReplicaLoad(requests: 1, tokens: 300)]
        XCTAssertEqual(router.choose(request, loads: busier, affinityBlocks: [12, 0]), 1)
    }

    func testAffinityBeyondThePromptSavesNoMoreThanThePrompt() {
        XCTAssertEqual(router.cost(of: request, affinityBlocks: 100), 64)
        XCTAssertEqual(router.cost(of: request, affinityBlocks: 0), 320)
    }
}

final class PrefixAffinityTableTests: XCTestCase {
    private func prompt(_ prefix: Int, length: Int) -> [Int] { (0..<length).map { $0 < 32 ? prefix * 1000 + $0 : 7 + $0 } }

    func testLeadingBlocksRoutedToAReplicaAreFoundForAPromptSharingThem() {
        var table = PrefixAffinityTable(blockTokens: 8)
        table.record(prompt(1, length: 64), replica: 1)
        // Same first 32 tokens (4 blocks), different after: 4 blocks of affinity with replica 1.
        var other = prompt(1, length: 40)
        other[35] = -5
        XCTAssertEqual(table.affinity(of: other, replicas: 3), [0, 4, 0])
        XCTAssertEqual(table.affinity(of: prompt(2, length: 64), replicas: 3), [0, 0, 0], "another prefix shares nothing")
        XCTAssertEqual(table.affinity(of: Array(prompt(1, length: 64).prefix(7)), replicas: 3), [0, 0, 0], "no full block, no affinity")
    }

    func testAPrefixRoutedToTwoReplicasCountsForBothAndAMismatchEndsTheRun() {
        var table = PrefixAffinityTable(blockTokens: 4)
        let a = Array(0..<16)
        table.record(a, replica: 0)
        table.record(Array(a.prefix(8)), replica: 2)
        XCTAssertEqual(table.affinity(of: a, replicas: 3), [4, 0, 2])
        var b = a
        b[5] = 99  // second block differs: only the first block matches
        XCTAssertEqual(table.affinity(of: b, replicas: 3), [1, 0, 1])
    }

    func testMemoryIsBoundedAndTheLeastRecentlyRoutedPrefixIsForgottenFirst() {
        var table = PrefixAffinityTable(blockTokens: 4, capacity: 8)
        let first = Array(100..<116)  // 4 blocks
        let second = Array(200..<216)
        let third = Array(300..<316)
        table.record(first, replica: 0)
        table.record(second, replica: 1)
        table.record(first, replica: 0)  // first is now more recent than second
        table.record(third, replica: 2)  // 4 more blocks: second's are forgotten
        XCTAssertEqual(table.count, 8)
        XCTAssertEqual(table.affinity(of: first, replicas: 3), [4, 0, 0])
        XCTAssertEqual(table.affinity(of: second, replicas: 3), [0, 0, 0])
        XCTAssertEqual(table.affinity(of: third, replicas: 3), [0, 0, 4])
    }

    func testADifferentCacheSaltSharesNoAffinity() {
        var table = PrefixAffinityTable(blockTokens: 4)
        let prompt = Array(0..<16)
        table.record(prompt, salt: "tenant-a", replica: 1)
        XCTAssertEqual(table.affinity(of: prompt, salt: "tenant-a", replicas: 2), [0, 4])
        XCTAssertEqual(table.affinity(of: prompt, salt: "tenant-b", replicas: 2), [0, 0])
        XCTAssertEqual(table.affinity(of: prompt, replicas: 2), [0, 0])
    }

    func testOnlyTheFirstMaxBlocksAreLookedAt() {
        let table = PrefixAffinityTable(blockTokens: 2, maxBlocks: 3)
        XCTAssertEqual(table.blockHashes(Array(0..<20)).count, 3)
        XCTAssertEqual(table.blockHashes(Array(0..<20)), table.blockHashes(Array(0..<6)), "hashes depend only on their prefix")
    }
}
