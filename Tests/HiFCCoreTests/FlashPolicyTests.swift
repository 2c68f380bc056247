import XCTest

@testable import HiFCCore

final class FlashPlacementTests: XCTestCase {
    func testAffinitySendsEveryBlockToTheGPUsPath() {
        let p = FlashPlacement(policy: .affinity, pathCount: 3, gpuIndex: 4)
        XCTAssertEqual(p.paths(forBatchOf: 4, rotation: 7), [1, 1, 1, 1])
    }

    func testStripeDealsABatchOverAllPathsAndRotatesBetweenBatches() {
        let p = FlashPlacement(policy: .stripe, pathCount: 3)
        XCTAssertEqual(p.paths(forBatchOf: 5, rotation: 0), [0, 1, 2, 0, 1])
        XCTAssertEqual(p.paths(forBatchOf: 1, rotation: 5), [2])
    }

    func testFallbackTriesThePreferredPathFirstThenTheOthers() {
        XCTAssertEqual(FlashPlacement(policy: .stripe, pathCount: 3).fallbackOrder(from: 2), [2, 0, 1])
    }
}

final class WearLedgerTests: XCTestCase {
    func testLifetimeFollowsThePapersFormula() throws {
        var ledger = WearLedger(createdAt: 0)
        ledger.record(bytes: 2_000_000_000_000, at: 10)  // 2 TB ...
        let day = 86_400.0  // ... in one day
        XCTAssertEqual(ledger.bytesPerDay(at: day), 2e12, accuracy: 1)
        // 6000 TB / (2 TB/day x 365) = 8.22 years.
        XCTAssertEqual(try XCTUnwrap(ledger.lifetimeYears(endurance: 6_000_000_000_000_000, at: day)), 6000.0 / 730, accuracy: 1e-9)
        XCTAssertNil(WearLedger(createdAt: 0).lifetimeYears(endurance: 1, at: day), "nothing written: no finite lifetime")
        XCTAssertNil(ledger.lifetimeYears(endurance: nil, at: day))
    }

    func testTheDailyBudgetIsReportedExceededWithinADayAndResetsAfter() {
        var ledger = WearLedger(createdAt: 0)
        ledger.record(bytes: 600, at: 100)
        XCTAssertFalse(ledger.isOverBudget(1000, at: 200))
        ledger.record(bytes: 600, at: 300)
        XCTAssertTrue(ledger.isOverBudget(1000, at: 400))
        XCTAssertFalse(ledger.isOverBudget(nil, at: 400))
        ledger.record(bytes: 10, at: 90_000)
        XCTAssertEqual(ledger.bytesWrittenToday, 10)
        XCTAssertEqual(ledger.bytesWritten, 1210)
    }
}

final class FlashWritePatternTests: XCTestCase {
    func testContiguousWritesFormSequentialExtentsAndSmallScatteredOnesDoNot() {
        var pattern = FlashWritePattern()
        for i in 0..<4 { pattern.recordWrite(path: 0, offset: Int64(i * 262_144), length: 262_144) }  // 1 MiB run
        pattern.recordWrite(path: 0, offset: 0, length: 4096)  // a superblock write elsewhere
        pattern.recordWrite(path: 1, offset: 8192, length: 4096)
        XCTAssertEqual(pattern.deviceBytes, (1 << 20) + 8192)
        XCTAssertEqual(pattern.writes, 6)
        XCTAssertEqual(pattern.sequentialBytes, 1 << 20)
        XCTAssertEqual(pattern.sequentialFraction, Double(1 << 20) / Double((1 << 20) + 8192), accuracy: 1e-12)
        XCTAssertNil(pattern.writeAmplification)
        pattern.recordPayload(1 << 20)
        XCTAssertEqual(try XCTUnwrap(pattern.writeAmplification), Double((1 << 20) + 8192) / Double(1 << 20), accuracy: 1e-12)
    }

    func testAnExtentStillGrowingCountsOnceItReachesOneMiB() {
        var pattern = FlashWritePattern()
        pattern.recordWrite(path: 0, offset: 4096, length: 512 << 10)
        XCTAssertEqual(pattern.sequentialBytes, 0)
        pattern.recordWrite(path: 0, offset: 4096 + (512 << 10), length: 512 << 10)
        XCTAssertEqual(pattern.sequentialBytes, 1 << 20)
    }
}
