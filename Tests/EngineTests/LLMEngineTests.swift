import Backend
import Engine
import Foundation
import HiFCChecks
import HiFCCore
import XCTest

/// The engine as the server sees it: streams, errors, cancellation.
final class LLMEngineTests: XCTestCase {
    private func makeEngine(blocks: Int = 100, overlap: StepOverlap = .auto) throws -> LLMEngine {
        var configuration = EngineConfiguration(kvBudget: .blocks(blocks), blockTokens: 16, preemption: .recompute)
        configuration.stepOverlap = overlap
        return try LLMEngine(loaded: EngineFixture.loaded, configuration: configuration)
    }

    private func greedy(_ maxTokens: Int) -> SamplingParams {
        var sampling = SamplingParams.greedy(maxTokens: maxTokens)
        sampling.ignoreEOS = true
        return sampling
    }

    func testStreamDeliversTheSameTokensAsTheStepLoopThenUsage() async throws {
        let prompt = GreedyRun.distinctPrompts(1)[0]
        let expected = try EngineFixture.run([prompt], maxTokens: 12, blocks: 100, mode: .recompute)
        let engine = try makeEngine()
        var tokens: [Int] = []
        var last: GenerationEvent?
        for try await event in engine.generate(GenerationRequest(id: "a", promptTokens: prompt, sampling: greedy(12))) {
            if case .delta(let ids, _, _) = event { tokens += ids }
            last = event
        }
        XCTAssertEqual(tokens, expected.tokens[0])
        XCTAssertEqual(last, .finished(.length, TokenUsage(promptTokens: prompt.count, completionTokens: 12)))
        XCTAssertEqual(engine.stats().generatedTokens, 12)
    }

    func testLogprobsComeFromTheLogitsTheGreedyTokensWerePickedFrom() async throws {
        let prompt = GreedyRun.distinctPrompts(1)[0]
        let expected = try EngineFixture.run([prompt], maxTokens: 10, blocks: 100, mode: .recompute).tokens[0]
        var sampling = greedy(10)
        sampling.logprobs = 3
        var tokens: [Int] = []
        var logprobs: [GeneratedLogprobs] = []
        let engine = try makeEngine()
        for try await event in engine.generate(GenerationRequest(id: "lp", promptTokens: prompt, sampling: sampling)) {
            if case .delta(let ids, _, let entries) = event {
                tokens += ids
                logprobs += entries
            }
        }
        XCTAssertEqual(tokens, expected, "the host's pick from the logits is the backend's")
        XCTAssertEqual(logprobs.map(\.chosen.token), tokens)
        for entry in logprobs {
            XCTAssertEqual(entry.top.count, 3)
            XCTAssertEqual(entry.top.first?.token, entry.chosen.token, "greedy: the chosen token is the most likely")
            XCTAssertEqual(entry.top.first?.logprob, entry.chosen.logprob)
            XCTAssertEqual(entry.top.map(\.logprob), entry.top.map(\.logprob).sorted(by: >))
            XCTAssertTrue(entry.top.allSatisfy { $0.logprob <= 0 && $0.logprob.isFinite })
            let tokenizer = EngineFixture.loaded.tokenizer
            XCTAssertEqual(entry.chosen.bytes, tokenizer.isSpecial(entry.chosen.token) ? [] : tokenizer.bytes(of: entry.chosen.token))
        }
    }

    func testASampledRequestDrawnByTheBackendGetsTheHostSamplersTokens() async throws {
        let prompt = GreedyRun.distinctPrompts(1)[0]
        // Log probabilities keep the logits coming to the host, whose sampler draws; without them
        // the backend makes the same draws where the logits are.
        func run(logprobs: Int?) async throws -> [Int] {
            var sampling = SamplingParams(maxTokens: 16, temperature: 1.3, topP: 0.95, seed: 21, logprobs: logprobs)
            sampling.ignoreEOS = true
            let engine = try makeEngine()
            var tokens: [Int] = []
            for try await event in engine.generate(GenerationRequest(id: "s", promptTokens: prompt, sampling: sampling)) {
                if case .delta(let ids, _, _) = event { tokens += ids }
            }
            return tokens
        }
        let host = try await run(logprobs: 1)
        let backend = try await run(logprobs: nil)
        XCTAssertEqual(backend, host)
        XCTAssertEqual(host.count, 16)
        XCTAssertGreaterThan(Set(host).count, 1, "a temperature of 1.3 draws more than one token")
    }

    func testALogitBiasForcesItsTokenAndOneOutsideTheVocabularyIsRefused() async throws {
        let engine = try makeEngine()
        var sampling = greedy(4)
        sampling.logitBias = [7: 100]
        var tokens: [Int] = []
        for try await event in engine.generate(GenerationRequest(id: "b", promptTokens: [5, 6, 9], sampling: sampling)) {
            if case .delta(let ids, _, _) = event { tokens += ids }
        }
        XCTAssertEqual(tokens, [7, 7, 7, 7])
        let vocabulary = EngineFixture.loaded.config.vocabSize
        sampling.logitBias = [vocabulary: 1]
        do {
            for try await _ in engine.generate(GenerationRequest(id: "o", promptTokens: [5, 6], sampling: sampling)) {}
            XCTFail("a bias on a token outside the vocabulary was accepted")
        } catch {
            XCTAssertEqual(
                error as? GenerationError,
                .invalidParameter(parameter: "logit_bias", reason: "token id \(vocabulary) is outside the vocabulary of \(vocabulary)"))
        }
    }

    func testASharedStepSlowdownNotAboveOneIsRefusedAtStartNamingTheSetting() throws {
        var configuration = EngineFixture.configuration(blocks: 8, mode: .recompute)
        configuration.sharedStepSlowdown = 1
        XCTAssertThrowsError(try EngineCore(loaded: EngineFixture.loaded, configuration: configuration, flashTier: nil)) { error in
            XCTAssertEqual(error as? EngineError, .sharedStepSlowdownNotAboveOne(1))
            XCTAssertTrue("\(error)".contains("--fair-step-slowdown"), "\(error)")
        }
    }

    func testBadRequestsEndWithAClearError() async throws {
        let engine = try makeEngine(blocks: 4)
        do {
            for try await _ in engine.generate(GenerationRequest(id: "e", promptTokens: [], sampling: greedy(4))) {}
            XCTFail("an empty prompt was accepted")
        } catch {
            XCTAssertEqual(error as? GenerationError, .emptyPrompt)
        }
        do {
            for try await _ in engine.generate(GenerationRequest(id: "l", promptTokens: [5, 6], sampling: greedy(100))) {}
            XCTFail("a request larger than the KV budget was accepted")
        } catch {
            XCTAssertEqual(error as? GenerationError, .contextTooLong(promptTokens: 2, maxTokens: 100, limit: 64))
        }
    }

    func testShutdownStopsRunningRequestsAndReturnsOnceTheStepThreadHasStopped() async throws {
        let engine = try LLMEngine(
            loaded: EngineFixture.loaded,
            configuration: EngineConfiguration(kvBudget: .blocks(12), blockTokens: 16, preemption: .swapDRAM))
        let streams = GreedyRun.distinctPrompts(4).enumerated().map { n, prompt in
            engine.generate(GenerationRequest(id: "s\(n)", promptTokens: prompt, sampling: greedy(150)))
        }
        let deadline = Date(timeIntervalSinceNow: 30)
        while engine.stats().generatedTokens < 20, Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
        engine.shutdown()
        // The step thread is gone: nothing counts any more, and a second shutdown returns at once.
        let after = engine.stats()
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertEqual(engine.stats().generatedTokens, after.generatedTokens)
        engine.shutdown()
        for stream in streams {
            do {
                for try await _ in stream {}
                XCTFail("a request outlived the engine")
            } catch {
                guard case .engineStopped = error as? GenerationError else { return XCTFail("\(error)") }
            }
        }
    }

    /// What a GPU process needs at exit: once `shutdown` returns, the engine's KV pool (device
    /// memory on a GPU) and everything holding it are gone, so closing the flash store or exiting
    /// next never races the step thread's teardown.
    func testShutdownReleasesTheKVPoolBeforeReturning() async throws {
        final class WeakPool: @unchecked Sendable {
            weak var pool: (any KVCachePool)?
        }
        let store = try EngineFixture.flashStore()
        defer { store.close() }
        let seen = WeakPool()
        let engine = try LLMEngine(
            loaded: EngineFixture.loaded,
            configuration: EngineConfiguration(kvBudget: .blocks(12), blockTokens: 16, preemption: .swapFlash),
            flashTier: FlashTier(store: store),
            deviceSwapper: { pool in
                seen.pool = pool
                return nil
            })
        let streams = GreedyRun.distinctPrompts(4).enumerated().map { n, prompt in
            engine.generate(GenerationRequest(id: "p\(n)", promptTokens: prompt, sampling: greedy(150)))
        }
        let deadline = Date(timeIntervalSinceNow: 30)
        while engine.stats().swapOuts < 1, Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
        XCTAssertNotNil(seen.pool)
        engine.shutdown()
        XCTAssertNil(seen.pool, "the KV pool outlived shutdown")
        for stream in streams {
            do { for try await _ in stream {} } catch {}
        }
    }

    func testCancellingTheConsumerAbortsTheRequestAndFreesItsBlocks() async throws {
        try await cancelMidStream(overlap: .off)
    }

    func testCancellingARequestWhoseNextStepIsLaunchedAheadFreesItsBlocks() async throws {
        try await cancelMidStream(overlap: .on)
    }

    private func cancelMidStream(overlap: StepOverlap) async throws {
        let engine = try makeEngine(overlap: overlap)
        let stream = engine.generate(GenerationRequest(id: "c", promptTokens: GreedyRun.distinctPrompts(1)[0], sampling: greedy(1_000)))
        let consumer = Task {
            for try await _ in stream {}
        }
        let deadline = Date(timeIntervalSinceNow: 30)
        while engine.stats().generatedTokens < 5, Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
        XCTAssertGreaterThan(engine.stats().kvUtilization, 0)
        consumer.cancel()
        while engine.stats().finishedRequests < 1, Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
        let stats = engine.stats()
        XCTAssertEqual(stats.finishedRequests, 1)
        XCTAssertEqual(stats.running, 0)
        XCTAssertLessThan(stats.generatedTokens, 1_000)
        XCTAssertEqual(stats.kvUtilization, 0, "the aborted request's blocks are free")
        if overlap == .on { XCTAssertGreaterThan(stats.stepsLaunchedAhead, 0) }
    }
}
