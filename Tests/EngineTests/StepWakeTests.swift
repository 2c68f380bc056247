import Foundation
import HiFCCore
import Synchronization
import XCTest

@testable import Engine

/// A step with nothing to compute waits for transfers; a request arriving meanwhile must not wait
/// with it (on the H200 a prefix save on an idle server held each new request's first token).
final class StepWakeTests: XCTestCase {
    /// A flash tier whose writes wait until `open()` (or 60 s, so a failing test ends).
    private final class GatedWriteTier: KVTierStore {
        let base: any KVTierStore
        private let gate = DispatchSemaphore(value: 0)
        let writesStarted = Atomic<Int>(0)
        let isOpen = Atomic<Bool>(false)
        init(_ base: any KVTierStore) { self.base = base }
        var tier: SwapTier { base.tier }
        var capacityBytes: Int64? { base.capacityBytes }

        func open() {
            isOpen.store(true, ordering: .sequentiallyConsistent)
            gate.signal()
        }

        func write(_ blocks: [KVBlockSource]) async throws(KVTierError) {
            writesStarted.add(1, ordering: .sequentiallyConsistent)
            _ = gate.wait(timeout: .now() + 60)
            gate.signal()
            try await base.write(blocks)
        }

        func read(_ blocks: [KVBlockDestination]) async -> (intact: Int, failure: KVTierError?) { await base.read(blocks) }
        func remove(_ keys: [BlockKey]) { base.remove(keys) }
    }

    private func request(_ n: Int, prompt: [Int]) -> GenerationRequest {
        var sampling = SamplingParams.greedy(maxTokens: 4)
        sampling.ignoreEOS = true
        return GenerationRequest(id: "w\(n)", promptTokens: prompt, sampling: sampling)
    }

    func testARequestArrivingDuringAPrefixSaveIsComputedBeforeTheSaveEnds() throws {
        let store = try EngineFixture.flashStore()
        defer { store.close() }
        let tier = GatedWriteTier(FlashTier(store: store))
        let configuration = EngineFixture.configuration(blocks: 8, mode: .recompute, prefixCaching: true)
        let core = try EngineCore(loaded: EngineFixture.loaded, configuration: configuration, flashTier: tier)
        // Long enough that, without a wake, the test would see the save end first.
        core.transferWaitTimeout = 60
        try core.add(id: 1, request(1, prompt: Array(3..<60)))
        while !core.isIdle { _ = try core.step() }

        // The next step plans a save of the finished request's cached blocks (the next to be
        // evicted) and, with nothing to compute, waits until the blocks are copied off the
        // device; the one after waits for the save itself, on another thread here.
        let staged = DispatchSemaphore(value: 0)
        let returned = DispatchSemaphore(value: 0)
        let box = UncheckedCore(core)
        Thread {
            _ = try? box.core.step()
            staged.signal()
            _ = try? box.core.step()
            returned.signal()
        }.start()
        XCTAssertEqual(staged.wait(timeout: .now() + 30), .success, "the save's blocks were staged")
        // The staged event is sent just before the transfer's task enters the tier's write, so
        // the step can return first (CI once saw no write started yet at this point).
        let deadline = Date().addingTimeInterval(30)
        while tier.writesStarted.load(ordering: .sequentiallyConsistent) == 0, Date() < deadline { usleep(1000) }
        XCTAssertEqual(tier.writesStarted.load(ordering: .sequentiallyConsistent), 1, "a prefix save started")
        core.waker.wake()
        guard returned.wait(timeout: .now() + 30) == .success else {
            XCTFail("the step waiting for the save did not return on the wake")
            tier.open()
            returned.wait()  // the core is the test's again
            return
        }

        // A request added now computes to its end while the save is still held.
        try core.add(id: 2, request(2, prompt: Array(100..<140)))
        var finished = false
        for _ in 0..<50 where !finished {
            for (_, event) in try core.step() { if case .finished = event { finished = true } }
        }
        XCTAssertTrue(finished)
        XCTAssertFalse(tier.isOpen.load(ordering: .sequentiallyConsistent), "the save never ended meanwhile")
        tier.open()
        core.finishTransfersInFlight()
        XCTAssertGreaterThan(core.snapshot().prefixBlocksSaved, 0)
    }
}

/// Hands the core to the thread that runs one step while the test waits on it.
private final class UncheckedCore: @unchecked Sendable {
    let core: EngineCore
    init(_ core: EngineCore) { self.core = core }
}
