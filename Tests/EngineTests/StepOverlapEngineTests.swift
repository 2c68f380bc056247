import Engine
import FlashStore
import Foundation
import HiFCChecks
import HiFCCore
import XCTest

/// Steps launched behind the step before them (`StepOverlap.on`, here on the CPU backend, where
/// the launch computes at once) give every token a step at a time gives.
final class StepOverlapEngineTests: XCTestCase {
    private let prompts = GreedyRun.distinctPrompts(12)

    private func run(
        overlap: StepOverlap, blocks: Int, mode: PreemptionMode, flash: Bool = false, prefixCaching: Bool = false, temperature: Float = 0
    ) throws -> GreedyRun {
        var configuration = EngineFixture.configuration(blocks: blocks, mode: mode, prefixCaching: prefixCaching)
        configuration.stepOverlap = overlap
        let tier = flash ? FlashTier(store: try EngineFixture.flashStore()) : nil
        let core = try EngineCore(loaded: EngineFixture.loaded, configuration: configuration, flashTier: tier)
        XCTAssertEqual(core.overlapsSteps, overlap == .on)
        return try GreedyRun.run(prompts, maxTokens: 40, through: core, temperature: temperature)
    }

    private func assertSame(_ run: GreedyRun, as reference: GreedyRun, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(run.tokens.count, prompts.count, file: file, line: line)
        for id in run.differences(from: reference) {
            XCTFail(
                "sequence \(id) differs from token \(run.firstDivergence(of: id, from: reference).map(String.init) ?? "-")", file: file,
                line: line)
        }
    }

    func testStepsLaunchedBehindDrawsGiveTheSameTokens() throws {
        // The CPU backend's draws are made as the step is launched (`queuesDraws`: it does not run
        // ahead), so steps are launched behind them as behind greedy picks, as the CUDA backend
        // launches them behind its draws on the GPU: each request's sampler hands out its random
        // numbers in the same order.
        let reference = try run(overlap: .off, blocks: 200, mode: .recompute, temperature: 0.8)
        let overlapped = try run(overlap: .on, blocks: 200, mode: .recompute, temperature: 0.8)
        assertSame(overlapped, as: reference)
        XCTAssertGreaterThan(overlapped.stats.stepsLaunchedAhead, overlapped.stats.steps / 3)
        XCTAssertNotEqual(reference.tokens, try run(overlap: .off, blocks: 200, mode: .recompute).tokens, "the draws are not greedy")
    }

    func testStepsLaunchedBehindDrawsStayLosslessUnderPreemption() throws {
        let reference = try run(overlap: .off, blocks: 200, mode: .recompute, temperature: 0.8)
        for (mode, flash) in [(PreemptionMode.swapFlash, true), (.recompute, false)] {
            let overlapped = try run(overlap: .on, blocks: 12, mode: mode, flash: flash, prefixCaching: flash, temperature: 0.8)
            assertSame(overlapped, as: reference)
            XCTAssertGreaterThan(overlapped.stats.preemptions, 0, "\(mode): the budget is meant to force preemptions")
            XCTAssertGreaterThan(overlapped.stats.stepsLaunchedAhead, 0, "\(mode)")
        }
    }

    func testStepsLaunchedAheadGiveTheSameTokens() throws {
        let reference = try run(overlap: .off, blocks: 200, mode: .recompute)
        XCTAssertEqual(reference.stats.stepsLaunchedAhead, 0)
        let overlapped = try run(overlap: .on, blocks: 200, mode: .recompute)
        assertSame(overlapped, as: reference)
        // The steps while 4 of the 12 requests wait, and those that admit them, run one at a time.
        XCTAssertGreaterThan(overlapped.stats.stepsLaunchedAhead, overlapped.stats.steps / 3)
        XCTAssertEqual(overlapped.stats.generatedTokens, reference.stats.generatedTokens)
    }

    func testStepsLaunchedAheadStayLosslessUnderSwapsAndThePrefixCache() throws {
        let reference = try run(overlap: .off, blocks: 200, mode: .recompute)
        let overlapped = try run(overlap: .on, blocks: 12, mode: .swapFlash, flash: true, prefixCaching: true)
        assertSame(overlapped, as: reference)
        XCTAssertGreaterThan(overlapped.stats.preemptions, 0, "the budget is meant to force swaps")
        XCTAssertGreaterThan(overlapped.stats.stepsLaunchedAhead, 0)
    }

    /// Every event of `requests` run to the end through an engine, by request: deltas' tokens
    /// and text, and the finish reason.
    private func events(overlap: StepOverlap, _ requests: [GenerationRequest]) throws -> (byRequest: [SequenceID: String], stats: EngineStats) {
        var configuration = EngineFixture.configuration(blocks: 200, mode: .recompute)
        configuration.stepOverlap = overlap
        let core = try EngineCore(loaded: EngineFixture.loaded, configuration: configuration)
        for (n, request) in requests.enumerated() { try core.add(id: SequenceID(n), request) }
        var log: [SequenceID: String] = [:]
        while !core.isIdle {
            for (id, event) in try core.step() {
                switch event {
                case .delta(let ids, let text, _): log[id, default: ""] += "\(ids)\(text.debugDescription) "
                case .finished(let reason, let usage): log[id, default: ""] += "end \(reason) \(usage.completionTokens)"
                }
            }
        }
        return (log, core.snapshot())
    }

    func testRequestsEndingOnAStopLaunchedAheadEndAsOneStepAtATime() throws {
        // Where each request's tokens would go without stops, to stop them at different steps.
        let free = try run(overlap: .off, blocks: 200, mode: .recompute)
        var requests: [GenerationRequest] = []
        for (n, prompt) in prompts.enumerated() {
            var sampling = SamplingParams.greedy(maxTokens: 40)
            let generated = free.tokens[SequenceID(n)]!
            if n % 2 == 0 {
                sampling.stopTokenIDs = [generated[5 + n]]
            } else {
                sampling.stop = [EngineFixture.loaded.tokenizer.decode(Array(generated[(3 + n)..<(5 + n)]))]
            }
            requests.append(GenerationRequest(id: "r\(n)", promptTokens: prompt, sampling: sampling))
        }
        let reference = try events(overlap: .off, requests)
        let ahead = try events(overlap: .on, requests)
        XCTAssertEqual(ahead.byRequest, reference.byRequest)
        XCTAssertEqual(ahead.stats.generatedTokens, reference.stats.generatedTokens)
        XCTAssertLessThan(reference.stats.generatedTokens, prompts.count * 40, "the stops end requests early")
        XCTAssertGreaterThan(ahead.stats.stepsLaunchedAhead, 0)
    }

    func testTheCPUBackendDoesNotLaunchAheadByDefault() throws {
        let core = try EngineCore(loaded: EngineFixture.loaded, configuration: EngineFixture.configuration(blocks: 50, mode: .recompute))
        XCTAssertFalse(core.overlapsSteps)
    }
}
