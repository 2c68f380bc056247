import Engine
import FlashStore
import Foundation
import HiFCChecks
import HiFCCore
import XCTest

/// Swap-ins that copy blocks a prefetch read into host memory ahead of the resume give the same
/// tokens as a run that never swaps, with the prefetch whole, partial or off, and when the
/// sequences it was read for are aborted.
final class SwapPrefetchEngineTests: XCTestCase {
    private let prompts = GreedyRun.distinctPrompts(12)
    private let maxTokens = 64

    private static let unstarved = Result(catching: {
        try EngineFixture.run(GreedyRun.distinctPrompts(12), maxTokens: 64, blocks: 200, mode: .recompute)
    })

    private func core(prefetch: ByteSize, store: FlashStore) throws -> EngineCore {
        var configuration = EngineFixture.configuration(blocks: 10, mode: .swapFlash)
        configuration.swapPrefetchCapacity = prefetch
        return try EngineCore(loaded: EngineFixture.loaded, configuration: configuration, flashTier: FlashTier(store: store))
    }

    private func assertSame(_ run: GreedyRun, as reference: GreedyRun, only ids: Set<SequenceID>? = nil, _ label: String) {
        for id in run.differences(from: reference) where ids?.contains(id) ?? true {
            XCTFail("\(label): sequence \(id) differs from token \(run.firstDivergence(of: id, from: reference).map(String.init) ?? "-")")
        }
    }

    func testSwapInsFromPrefetchedBlocksAreLossless() throws {
        let expected = try Self.unstarved.get()
        let stride = EngineFixture.loaded.model.kvLayout(blockTokens: 16).blockStride
        for (label, capacity) in [("whole", ByteSize.mib(64)), ("two blocks", ByteSize(Int64(2 * stride))), ("off", ByteSize(0))] {
            let store = try EngineFixture.flashStore()
            let run = try GreedyRun.run(prompts, maxTokens: maxTokens, through: try core(prefetch: capacity, store: store))
            assertSame(run, as: expected, "prefetch \(label)")
            XCTAssertGreaterThanOrEqual(run.stats.swapIns, 5, "\(label): the budget is meant to force swaps")
            XCTAssertEqual(run.stats.swapFailures, 0, label)
            XCTAssertEqual(store.stats.liveSlots, 0, "\(label): every swapped block is freed once its sequence ends")
            if capacity.bytes == 0 {
                XCTAssertEqual(run.stats.swapPrefetchBytes, 0)
            } else {
                XCTAssertGreaterThan(run.stats.prefetchedSwapInBytes, 0, "\(label): swap-ins are meant to use prefetched blocks")
                XCTAssertLessThanOrEqual(run.stats.prefetchedSwapInBytes, run.stats.swapPrefetchBytes)
            }
        }
    }

    func testAbortingSequencesWhosePrefetchIsHeldLeavesTheOthersLossless() throws {
        let expected = try Self.unstarved.get()
        let store = try EngineFixture.flashStore()
        let core = try core(prefetch: .mib(64), store: store)
        var sampling = SamplingParams.greedy(maxTokens: maxTokens)
        sampling.ignoreEOS = true
        for (n, prompt) in prompts.enumerated() {
            try core.add(id: SequenceID(n), GenerationRequest(id: "r\(n)", promptTokens: prompt, sampling: sampling))
        }
        var run = GreedyRun()
        var kept: Set<SequenceID>?
        var steps = 0
        while !core.isIdle {
            steps += 1
            guard steps < 20_000 else { return XCTFail("no progress") }
            for (id, event) in try core.step() {
                switch event {
                case .delta(let ids, _, _): run.tokens[id, default: []] += ids
                case .finished(let reason, _): run.finish[id] = reason
                }
            }
            // Once a prefetch has read blocks that no swap-in used yet, abort all but the four
            // oldest unfinished requests (the swapped sequences are the newest: victims are).
            let stats = core.snapshot()
            if kept == nil, stats.swapPrefetchBytes > stats.prefetchedSwapInBytes {
                let unfinished = (0..<SequenceID(prompts.count)).filter { run.finish[$0] == nil }
                kept = Set(unfinished.prefix(4))
                for id in unfinished.dropFirst(4) { core.abort(id: id) }
            }
        }
        let survivors = try XCTUnwrap(kept, "no prefetch was held")
        assertSame(run, as: expected, only: survivors.union((0..<SequenceID(prompts.count)).filter { run.finish[$0] == .length }), "after aborts")
        XCTAssertEqual(core.snapshot().swapFailures, 0)
        XCTAssertEqual(store.stats.liveSlots, 0, "the aborted sequences' blocks are freed")
    }
}
