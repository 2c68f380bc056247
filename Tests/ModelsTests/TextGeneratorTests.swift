import HiFCBench
import HiFCCore
import Models
import XCTest

/// The single-sequence generation loop behind `hifc generate`, and the benchmark loop.
final class TextGeneratorTests: XCTestCase {
    func testGreedyGenerationIsReproducibleAndStopsAtMaxTokens() throws {
        let fixture = try ModelFixture(.llama)
        defer { fixture.remove() }
        let prompt = fixture.loaded.tokenizer.encode("The river ran past the old mill")
        // A small block size and prefill chunk make the prompt span blocks and chunks.
        let generator = TextGenerator(model: fixture.loaded, blockTokens: 4, prefillChunk: 3)
        var streamed = ""
        let params = SamplingParams(maxTokens: 12, temperature: 0, ignoreEOS: true)
        let first = try generator.generate(prompt: prompt, params: params) { streamed += $0 }
        XCTAssertEqual(first.tokenIDs.count, 12)
        XCTAssertEqual(first.finish, .length)
        XCTAssertEqual(streamed, first.text)
        let oneShot = try TextGenerator(model: fixture.loaded, blockTokens: 64, prefillChunk: 512)
            .generate(prompt: prompt, params: params)
        XCTAssertEqual(oneShot.tokenIDs, first.tokenIDs)
    }

    func testStopStringEndsGenerationAndIsNotReturned() throws {
        let fixture = try ModelFixture(.qwen2)
        defer { fixture.remove() }
        let generator = TextGenerator(model: fixture.loaded, blockTokens: 16)
        let prompt = fixture.loaded.tokenizer.encode("Question: what")
        let free = try generator.generate(prompt: prompt, params: SamplingParams(maxTokens: 24, temperature: 0, ignoreEOS: true))
        guard free.text.count >= 4 else { throw XCTSkip("the random model produced too little text to cut") }
        let stop = String(free.text.dropFirst(free.text.count / 2).prefix(2))
        let cut = try generator.generate(prompt: prompt, params: SamplingParams(maxTokens: 24, temperature: 0, stop: [stop], ignoreEOS: true))
        XCTAssertEqual(cut.finish, .stop)
        XCTAssertFalse(cut.text.contains(stop))
        XCTAssertTrue(free.text.hasPrefix(cut.text))
    }

    func testBenchmarkReportsPositiveThroughputAtBatchOneAndFour() throws {
        let fixture = try ModelFixture(.mistral)
        defer { fixture.remove() }
        let bench = ModelBenchmark(model: fixture.model, blockTokens: 8)
        for batch in [1, 4] {
            let figures = try bench.run(batch: batch, promptTokens: 10, decodeTokens: 3)
            XCTAssertGreaterThan(figures.prefillTokensPerSecond, 0)
            XCTAssertGreaterThan(figures.decodeTokensPerSecond, 0)
        }
    }

    func testBenchmarkLaunchingStepsAheadPicksTheSameTokens() throws {
        let fixture = try ModelFixture(.mistral)
        defer { fixture.remove() }
        let ahead = try ModelBenchmark(model: fixture.model, blockTokens: 8, stepOverlap: .on).run(batch: 3, promptTokens: 10, decodeTokens: 6)
        let one = try ModelBenchmark(model: fixture.model, blockTokens: 8, stepOverlap: .off).run(batch: 3, promptTokens: 10, decodeTokens: 6)
        XCTAssertTrue(ahead.launchedAhead)
        XCTAssertFalse(one.launchedAhead)
        XCTAssertEqual(ahead.lastTokens, one.lastTokens)
        XCTAssertEqual(ahead.lastTokens.count, 3)
    }

    func testBenchmarkStepsLaunchedBehindDrawsPickTheSameTokens() throws {
        let fixture = try ModelFixture(.mistral)
        defer { fixture.remove() }
        // The CPU backend's draws are made as a step is launched (`queuesDraws`), so the step
        // after it may be launched behind them, as the CUDA backend launches it behind its draws.
        let ahead = try ModelBenchmark(model: fixture.model, blockTokens: 8, stepOverlap: .on, decodeDraws: (0.8, 0.9))
            .run(batch: 3, promptTokens: 10, decodeTokens: 5)
        let one = try ModelBenchmark(model: fixture.model, blockTokens: 8, stepOverlap: .off, decodeDraws: (0.8, 0.9))
            .run(batch: 3, promptTokens: 10, decodeTokens: 5)
        XCTAssertTrue(ahead.launchedAhead)
        XCTAssertEqual(ahead.lastTokens, one.lastTokens)
        XCTAssertEqual(ahead.lastTokens.count, 3)
        XCTAssertGreaterThan(ahead.decodeTokensPerSecond, 0)
    }

    func testBenchmarkChunkedPrefillPicksTheSameTokensAsOneStep() throws {
        let fixture = try ModelFixture(.mistral)
        defer { fixture.remove() }
        let whole = try ModelBenchmark(model: fixture.model, blockTokens: 8, stepOverlap: .off).run(batch: 3, promptTokens: 11, decodeTokens: 4)
        let chunked = try ModelBenchmark(model: fixture.model, blockTokens: 8, stepOverlap: .off, prefillStepTokens: 7)
            .run(batch: 3, promptTokens: 11, decodeTokens: 4)
        XCTAssertEqual(whole.prefillSteps, 1)
        XCTAssertEqual(chunked.prefillSteps, 5)
        XCTAssertEqual(chunked.lastTokens, whole.lastTokens)
    }
}
