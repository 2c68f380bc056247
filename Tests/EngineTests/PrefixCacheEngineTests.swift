import Backend
import FlashStore
import Foundation
import HiFCCore
import Models
import SynthModels
import XCTest

@testable import Engine

/// The prefix cache through the real engine and model: greedy outputs are token for token those
/// of the cache off, whatever is shared, preempted, restarted or damaged.
final class PrefixCacheEngineTests: XCTestCase {
    private let maxTokens = 24

    /// Prompts that share a 40-token document and differ after it.
    private let sharedDocument: [[Int]] = (0..<8).map { n in Array(3..<43) + (0..<(5 + n * 3)).map { ($0 * 13 + n * 7) % 190 + 5 } }

    private func greedy(_ maxTokens: Int) -> SamplingParams {
        var sampling = SamplingParams.greedy(maxTokens: maxTokens)
        sampling.ignoreEOS = true
        return sampling
    }

    /// Runs each prompt alone to its end, one after another, through `core`.
    private func runInTurn(_ prompts: [[Int]], through core: EngineCore, firstID: SequenceID = 0) throws -> [[Int]] {
        var outputs: [[Int]] = []
        for (n, prompt) in prompts.enumerated() {
            try core.add(id: firstID + SequenceID(n), GenerationRequest(id: "t\(n)", promptTokens: prompt, sampling: greedy(maxTokens)))
            var tokens: [Int] = []
            while !core.isIdle {
                for (_, event) in try core.step() { if case .delta(let ids, _, _) = event { tokens += ids } }
            }
            outputs.append(tokens)
        }
        return outputs
    }

    private func core(
        prefixCaching: Bool, blocks: Int = 200, mode: PreemptionMode = .recompute, store: FlashStore? = nil,
        policy: PrefixWritePolicy = .onEvict, loaded: LoadedModel = EngineFixture.loaded, kvDType: KVDTypeChoice = .auto
    ) throws -> EngineCore {
        var configuration = EngineFixture.configuration(blocks: blocks, mode: mode, prefixCaching: prefixCaching, prefixCacheWrite: policy)
        configuration.kvDType = kvDType
        return try EngineCore(loaded: loaded, configuration: configuration, flashTier: store.map { FlashTier(store: $0) })
    }

    func testSharedPrefixesGiveTheSameTokensWithTheCacheOnAndOff() throws {
        let off = try EngineFixture.run(sharedDocument, maxTokens: maxTokens, blocks: 200, mode: .recompute)
        let on = try EngineFixture.run(sharedDocument, maxTokens: maxTokens, blocks: 200, mode: .recompute, prefixCaching: true)
        XCTAssertEqual(on.differences(from: off), [])
        XCTAssertGreaterThanOrEqual(on.stats.deviceHitTokens, 6 * 32, "later requests find the document's two full blocks")
        XCTAssertEqual(off.stats.deviceHitTokens, 0)
    }

    func testMultiTurnConversationReusesItsHistory() throws {
        // Each turn resends the conversation so far: the previous prompt, the answer, a new message.
        func conversation(through core: EngineCore) throws -> [[Int]] {
            var prompt = Array(10..<30)
            var answers: [[Int]] = []
            for turn in 0..<4 {
                let answer = try runInTurn([prompt], through: core, firstID: SequenceID(turn))[0]
                answers.append(answer)
                prompt += answer + (0..<7).map { 40 + turn * 7 + $0 }
            }
            return answers
        }
        let cached = try core(prefixCaching: true)
        XCTAssertEqual(try conversation(through: cached), try conversation(through: try core(prefixCaching: false)))
        XCTAssertGreaterThan(cached.snapshot().deviceHitTokens, 3 * 16, "every turn after the first reuses the history")
    }

    func testPrefixHitSurvivesRestart() throws {
        let directory = EngineFixture.scratch + "/prefix-restart-\(UUID().uuidString)"
        let prompt = Array(3..<90)
        let expected = try runInTurn([prompt], through: try core(prefixCaching: false))
        do {
            let store = try EngineFixture.flashStore(path: directory)
            let first = try core(prefixCaching: true, store: store, policy: .writeThrough)
            XCTAssertEqual(try runInTurn([prompt], through: first), expected)
            first.finishTransfersInFlight()
            XCTAssertGreaterThan(first.snapshot().prefixBlocksSaved, 0)
            store.close()
        }
        let store = try EngineFixture.flashStore(path: directory)
        let restarted = try core(prefixCaching: true, store: store)
        XCTAssertEqual(try runInTurn([prompt], through: restarted), expected)
        XCTAssertEqual(restarted.snapshot().flashHitTokens, 80, "the prompt's 5 full blocks come from flash")
        store.close()
    }

    func testAShutdownSaveThatFailsReportsNothingSaved() throws {
        let store = try EngineFixture.flashStore(faults: FailEveryWrite())
        defer { store.close() }
        let engine = try core(prefixCaching: true, store: store)
        _ = try runInTurn(Array(sharedDocument.prefix(2)), through: engine)
        engine.finishTransfersInFlight()
        XCTAssertEqual(engine.saveCachedPrefixes(), 0, "no block reached flash, so none is reported saved")
        XCTAssertEqual(engine.snapshot().prefixBlocksSaved, 0)
    }

    func testTheStepTimesLearnedBeforeARestartPriceRecomputeAfterIt() throws {
        let directory = EngineFixture.scratch + "/step-time-\(UUID().uuidString)"
        let learned: StepTimeModel
        do {
            let store = try EngineFixture.flashStore(path: directory)
            let first = try core(prefixCaching: true, store: store)
            XCTAssertEqual(first.stepTimeModel.observations, 0)
            _ = try runInTurn(Array(sharedDocument.prefix(2)), through: first)
            learned = first.stepTimeModel
            XCTAssertGreaterThanOrEqual(learned.observations, StepTimeRecord.minimumObservations)
            _ = first.saveCachedPrefixes()
            store.close()
        }
        let store = try EngineFixture.flashStore(path: directory)
        let restarted = try core(prefixCaching: true, store: store)
        XCTAssertEqual(restarted.stepTimeModel, learned, "the restarted engine starts from what the first one learned")
        store.close()
    }

    func testAnUnreadableStepTimeFileIsIgnored() throws {
        let directory = EngineFixture.scratch + "/step-time-bad-\(UUID().uuidString)"
        let store = try EngineFixture.flashStore(path: directory)
        defer { store.close() }
        try Data("not json".utf8).write(to: StepTimeRecord(directory: directory).file)
        let engine = try core(prefixCaching: true, store: store)
        XCTAssertEqual(engine.stepTimeModel.observations, 0, "it starts from the guess, and runs")
        XCTAssertEqual(try runInTurn([Array(3..<30)], through: engine).count, 1)
    }

    func testTheDeviceCacheIsSavedAtShutdownAndFoundAfterARestart() async throws {
        let directory = EngineFixture.scratch + "/prefix-shutdown-\(UUID().uuidString)"
        let prompt = Array(3..<90)
        func generate(_ store: FlashStore) async throws -> (tokens: [Int], engine: LLMEngine) {
            // On-evict saves nothing while the device has room: only the shutdown saves these blocks.
            let engine = try LLMEngine(
                loaded: EngineFixture.loaded, configuration: EngineFixture.configuration(blocks: 200, mode: .recompute, prefixCaching: true),
                flashTier: FlashTier(store: store))
            var tokens: [Int] = []
            for try await event in engine.generate(GenerationRequest(id: "p", promptTokens: prompt, sampling: greedy(maxTokens))) {
                if case .delta(let ids, _, _) = event { tokens += ids }
            }
            return (tokens, engine)
        }
        let store = try EngineFixture.flashStore(path: directory)
        let first = try await generate(store)
        XCTAssertEqual(first.engine.stats().prefixBlocksSaved, 0)
        first.engine.shutdown()
        XCTAssertEqual(first.engine.stats().prefixBlocksSaved, 6, "110 computed tokens: 6 full blocks")
        store.close()
        let reopened = try EngineFixture.flashStore(path: directory)
        let second = try await generate(reopened)
        XCTAssertEqual(second.tokens, first.tokens)
        XCTAssertEqual(second.engine.stats().flashHitTokens, 80)
        second.engine.shutdown()
        reopened.close()
    }

    func testADamagedPrefixSlotIsRecomputedAndCounted() throws {
        let directory = EngineFixture.scratch + "/prefix-damaged-\(UUID().uuidString)"
        let prompt = Array(3..<90)
        let expected = try runInTurn([prompt], through: try core(prefixCaching: false))
        do {
            let store = try EngineFixture.flashStore(path: directory)
            let first = try core(prefixCaching: true, store: store, policy: .writeThrough)
            _ = try runInTurn([prompt], through: first)
            first.finishTransfersInFlight()
            store.close()
        }
        let store = try EngineFixture.flashStore(faults: CorruptEveryRead(), path: directory)
        let restarted = try core(prefixCaching: true, store: store)
        XCTAssertEqual(try runInTurn([prompt], through: restarted), expected, "damaged KV is never used")
        XCTAssertGreaterThan(restarted.snapshot().prefixLoadFailures, 0)
        XCTAssertEqual(restarted.snapshot().flashHitTokens, 0)
        store.close()
    }

    func testAnotherModelOnTheSameDirectoryFindsNothing() throws {
        let directory = EngineFixture.scratch + "/prefix-foreign-\(UUID().uuidString)"
        let prompt = Array(3..<90)
        do {
            let store = try EngineFixture.flashStore(path: directory)
            let first = try core(prefixCaching: true, store: store, policy: .writeThrough)
            _ = try runInTurn([prompt], through: first)
            first.finishTransfersInFlight()
            store.close()
        }
        let otherDirectory = EngineFixture.scratch + "/engine-other-model-\(UUID().uuidString)"
        try SynthModel(architecture: .llama, preset: .tiny, dtype: .float32, seed: 12).write(to: otherDirectory)
        let other = try LoadedModel(directory: otherDirectory, backend: CPUBackend())
        let store = try EngineFixture.flashStore(path: directory)
        let restarted = try core(prefixCaching: true, store: store, loaded: other)
        _ = try runInTurn([prompt], through: restarted)
        XCTAssertEqual(restarted.snapshot().flashHitTokens, 0)
        XCTAssertEqual(restarted.snapshot().declinedLoads, 0, "the other model's blocks are not even candidates")
        store.close()
    }

    /// fp8 blocks (elements and scales) go to flash and come back whole, and a cache of the other
    /// KV dtype on the same directory never finds them: the dtype is part of the namespace.
    func testFP8AndF32CachesOnTheSameDirectoryNeverShareBlocks() throws {
        let directory = NSTemporaryDirectory() + "hifc-prefix-fp8-\(UUID().uuidString)"
        let prompt = Array(3..<90)
        let expected = try runInTurn([prompt], through: try core(prefixCaching: false, kvDType: .fp8))
        do {
            let store = try EngineFixture.flashStore(path: directory)
            let first = try core(prefixCaching: true, store: store, policy: .writeThrough, kvDType: .fp8)
            XCTAssertEqual(try runInTurn([prompt], through: first), expected)
            first.finishTransfersInFlight()
            XCTAssertGreaterThan(first.snapshot().prefixBlocksSaved, 0)
            store.close()
        }
        do {
            let store = try EngineFixture.flashStore(path: directory)
            let f32 = try core(prefixCaching: true, store: store)
            _ = try runInTurn([prompt], through: f32)
            XCTAssertEqual(f32.snapshot().flashHitTokens, 0, "an f32 cache does not load fp8 blocks")
            XCTAssertEqual(f32.snapshot().declinedLoads, 0, "the fp8 blocks are not even candidates")
            store.close()
        }
        let store = try EngineFixture.flashStore(path: directory)
        let restarted = try core(prefixCaching: true, store: store, kvDType: .fp8)
        XCTAssertEqual(try runInTurn([prompt], through: restarted), expected, "the fp8 blocks and their scales came back whole")
        XCTAssertEqual(restarted.snapshot().flashHitTokens, 80)
        store.close()
    }

    func testCacheSaltsIsolateRequests() throws {
        let engine = try core(prefixCaching: true)
        let prompt = Array(3..<60)
        for (n, salt) in ["a", "b", "a"].enumerated() {
            try engine.add(id: SequenceID(n), GenerationRequest(id: "s\(n)", promptTokens: prompt, sampling: greedy(4), cacheSalt: salt))
            while !engine.isIdle { _ = try engine.step() }
        }
        XCTAssertEqual(engine.snapshot().deviceHitTokens, 48, "only the third request, with the first one's salt, hits")
    }
}

/// Corrupts every read of the flash store's data path.
private final class FailEveryWrite: IOFaultInjector, @unchecked Sendable {
    func faultBeforeWrite(path: String, offset: Int64, length: Int) -> Int32? { EIO }
}

private final class CorruptEveryRead: IOFaultInjector, @unchecked Sendable {
    func faultBeforeWrite(path: String, offset: Int64, length: Int) -> Int32? { nil }
    func faultBeforeRead(path: String, offset: Int64, length: Int) -> Int32? { nil }
    func corruptRead(path: String, offset: Int64) -> Bool { true }
}
