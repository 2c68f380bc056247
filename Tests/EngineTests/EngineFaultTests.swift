import Engine
import FlashStore
import Foundation
import HiFCChecks
import HiFCCore
import HiFCTestSupport
import XCTest

/// Fails every `period`-th write or read of the flash store's data path with `errno`, or corrupts
/// every `period`-th read.
private final class PeriodicFaults: IOFaultInjector, @unchecked Sendable {
    enum Kind {
        case write(Int32)
        case read(Int32)
        case corrupt
    }
    private let kind: Kind
    private let period: Int
    private let lock = NSLock()
    private var count = 0
    private(set) var injected = 0

    init(_ kind: Kind, every period: Int) {
        self.kind = kind
        self.period = period
    }

    private func tick() -> Bool {
        lock.withLock {
            count += 1
            if count % period == 0 {
                injected += 1
                return true
            }
            return false
        }
    }

    func faultBeforeWrite(path: String, offset: Int64, length: Int) -> Int32? {
        if case .write(let code) = kind, tick() { return code }
        return nil
    }

    func faultBeforeRead(path: String, offset: Int64, length: Int) -> Int32? {
        if case .read(let code) = kind, tick() { return code }
        return nil
    }

    func corruptRead(path: String, offset: Int64) -> Bool {
        if case .corrupt = kind { return tick() }
        return false
    }
}

/// When flash I/O fails, the sequence is recomputed and its request still completes with the
/// same tokens; the failure is counted.
final class EngineFaultTests: XCTestCase {
    private let prompts = GreedyRun.distinctPrompts(6)
    private let maxTokens = 64

    override class func setUp() {
        super.setUp()
        // Each swap these tests fail on purpose logs a warning; they are shown only if a test fails.
        CapturedLogs.install()
    }

    private func check(_ faults: PeriodicFaults?, _ name: String) throws {
        try check(EngineFixture.flashStore(faults: faults), name)
    }

    private func check(_ store: FlashStore, _ name: String) throws {
        let expected = try EngineFixture.run(prompts, maxTokens: maxTokens, blocks: 200, mode: .recompute)
        let run = try EngineFixture.run(prompts, maxTokens: maxTokens, blocks: 10, mode: .swapFlash, flashTier: FlashTier(store: store))
        for id in expected.tokens.keys {
            XCTAssertEqual(run.tokens[id], expected.tokens[id], "\(name): sequence \(id) differs")
            XCTAssertEqual(run.finish[id], .length, "\(name): sequence \(id) did not complete")
        }
        XCTAssertGreaterThan(run.stats.swapFailures, 0, "\(name): no fault reached the engine")
        XCTAssertGreaterThan(run.stats.recomputedTokens, 0, "\(name): failed swaps are recomputed")
    }

    func testWriteENOSPCFallsBackToRecompute() throws {
        try check(PeriodicFaults(.write(ENOSPC), every: 3), "ENOSPC")
    }

    func testWriteEIOFallsBackToRecompute() throws {
        try check(PeriodicFaults(.write(EIO), every: 2), "EIO write")
    }

    func testReadEIOFallsBackToRecompute() throws {
        try check(PeriodicFaults(.read(EIO), every: 3), "EIO read")
    }

    func testChecksumMismatchFallsBackToRecompute() throws {
        try check(PeriodicFaults(.corrupt, every: 2), "checksum")
    }

    func testFullRegionFallsBackToRecompute() async throws {
        // A small region filled with live prefix blocks, which nothing may evict: swap-outs find
        // it full.
        let store = try EngineFixture.flashStore(capacity: .mib(4))
        let filler = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 4096)
        defer { filler.deallocate() }
        filler.initializeMemory(as: UInt8.self, repeating: 7)
        var stored: UInt64 = 0
        while stored < 1_000 {
            do {
                try await store.put([FlashPutItem(key: .content(high: 1, low: stored), bytes: UnsafeRawBufferPointer(filler))])
                stored += 1
            } catch {
                break
            }
        }
        XCTAssertLessThan(stored, 1_000, "the region never filled")
        try check(store, "region full")
    }
}
