import XCTest

@testable import HiFCCore

/// What the scheduler believes the tiers below the device hold, with blocks of other instances.
final class TierContentsTests: XCTestCase {
    private let mine = BlockKey(kind: .content, high: 1, low: 1)
    private let theirs = BlockKey(kind: .content, high: 2, low: 2)

    func testAnotherInstancesBlocksAreNeverDeletedOrEvictedByThisOne() {
        var tiers = TierContents(keepsPrefixBlocks: true, prefixCapacityBlocks: 0)
        tiers.learn([mine], in: .flash, owned: true)
        tiers.learn([theirs], in: .flash, owned: false)
        XCTAssertEqual(tiers.trimPrefixBlocks(), [mine], "only its own prefix blocks count against its room")
        XCTAssertTrue(tiers.isStored(theirs, in: .flash))
        tiers.pin([theirs], in: .flash)
        XCTAssertEqual(tiers.unpin([theirs], in: .flash), [], "a swapped sequence that used their block does not delete it")
        XCTAssertEqual(tiers.dropPrefixBlocks(), [], "a reset drops only its own blocks")
    }

    func testBlocksAnotherInstanceLostAreForgottenButOwnCopiesStay() {
        var tiers = TierContents(keepsPrefixBlocks: true, prefixCapacityBlocks: 8)
        tiers.learn([mine], in: .flash, owned: true)
        tiers.learn([theirs], in: .flash, owned: false)
        tiers.learn([mine], in: .flash, owned: false)  // both wrote it: it stays this one's
        tiers.forgetForeign([mine, theirs], in: .flash)
        XCTAssertTrue(tiers.isStored(mine, in: .flash))
        XCTAssertFalse(tiers.isStored(theirs, in: .flash))
    }
}
