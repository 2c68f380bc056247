import XCTest

@testable import HiFCBench

/// The pure maths of `bench serve`: arrival times, percentiles, objectives and the run summary.
final class ArrivalAndStatisticsTests: XCTestCase {
    func testPoissonArrivalsRepeatForASeedAndAverageTheRate() throws {
        let rate = try RequestRate(parsing: "4")
        let offsets = rate.arrivalOffsets(count: 20_000, seed: 7)
        XCTAssertEqual(offsets, rate.arrivalOffsets(count: 20_000, seed: 7), "the same seed gives the same arrivals")
        XCTAssertNotEqual(offsets, rate.arrivalOffsets(count: 20_000, seed: 8))
        XCTAssertEqual(offsets.first, 0)
        XCTAssertEqual(zip(offsets.dropFirst(), offsets).allSatisfy { $0 >= $1 }, true, "arrival times never go back")
        let gaps = zip(offsets.dropFirst(), offsets).map { $0 - $1 }
        let mean = gaps.reduce(0, +) / Double(gaps.count)
        XCTAssertEqual(mean, 0.25, accuracy: 0.01, "mean gap 1/rate")
        // An exponential distribution's standard deviation equals its mean.
        let variance = gaps.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(gaps.count)
        XCTAssertEqual(variance.squareRoot(), 0.25, accuracy: 0.015)
    }

    func testInfiniteRateSendsEverythingAtOnceAndRatesParseAsASweep() throws {
        XCTAssertEqual(RequestRate.infinite.arrivalOffsets(count: 3, seed: 1), [0, 0, 0])
        XCTAssertEqual(try RequestRate.list(parsing: "1,2.5,inf"), [.perSecond(1), .perSecond(2.5), .infinite])
        XCTAssertEqual(try RequestRate.list(parsing: "1,2.5,inf").map(\.description), ["1", "2.5", "inf"])
        XCTAssertThrowsError(try RequestRate(parsing: "0"))
        XCTAssertThrowsError(try RequestRate(parsing: "fast")) { error in
            XCTAssertTrue("\(error)".contains("'fast'"), "the error names the bad value: \(error)")
        }
    }

    func testPercentilesInterpolateAsNumPyDoes() {
        // numpy.percentile([1, 2, 3, 4], [50, 90, 99]) == [2.5, 3.7, 3.97]
        let stats = LatencyStats([4, 1, 3, 2])
        XCTAssertEqual(stats.mean, 2.5)
        XCTAssertEqual(stats.p50, 2.5, accuracy: 1e-12)
        XCTAssertEqual(stats.p90, 3.7, accuracy: 1e-12)
        XCTAssertEqual(stats.p99, 3.97, accuracy: 1e-12)
        XCTAssertEqual(LatencyStats([]).p99, 0)
        XCTAssertEqual(LatencyStats([5]).p90, 5)
    }

    func testObjectivesParseAndJudgeRequests() throws {
        let slo = try ServiceLevelObjectives(parsing: ["ttft:500", "tpot:50"])
        XCTAssertEqual(slo, ServiceLevelObjectives(ttft: 500, tpot: 50))
        XCTAssertEqual(try ServiceLevelObjectives(parsing: ["ttft:500 e2el:2000"]).e2el, 2000, "one quoted string of several")
        XCTAssertTrue(slo.isMet(ttft: 400, tpot: 50, e2el: 9_999))
        XCTAssertFalse(slo.isMet(ttft: 501, tpot: 10, e2el: 600))
        XCTAssertFalse(slo.isMet(ttft: 100, tpot: 51, e2el: 600))
        XCTAssertTrue(slo.isMet(ttft: 100, tpot: nil, e2el: 600), "a one-token answer has no TPOT to miss")
        XCTAssertThrowsError(try ServiceLevelObjectives(parsing: ["latency:5"]))
        XCTAssertThrowsError(try ServiceLevelObjectives(parsing: ["ttft:-1"]))
    }

    func testLengthsParseAndDrawWithinTheirRange() throws {
        XCTAssertEqual(try LengthDistribution(parsing: "128"), .fixed(128))
        XCTAssertEqual(try LengthDistribution(parsing: "64-256"), .uniform(64...256))
        XCTAssertThrowsError(try LengthDistribution(parsing: "256-64"))
        XCTAssertThrowsError(try LengthDistribution(parsing: "0"))
        let govreport = try BenchWorkload(parsing: "govreport")
        XCTAssertEqual(govreport.promptLengths(scale: 0.1), .uniform(653...1088), "8.7K x 0.1 +- 25%")
        XCTAssertEqual(govreport.outputLengths(scale: 0.1), .fixed(102))
    }

    func testRangeRatioSpreadsAFixedLengthAsVLLMDoes() {
        XCTAssertEqual(LengthDistribution.fixed(128).spread(by: 0.25), .uniform(96...160))
        XCTAssertEqual(LengthDistribution.fixed(3).spread(by: 0.9), .uniform(1...6), "never below one token")
        XCTAssertEqual(LengthDistribution.fixed(128).spread(by: 0), .fixed(128))
        XCTAssertEqual(LengthDistribution.uniform(64...256).spread(by: 0.5), .uniform(64...256), "a range is kept as given")
    }

    func testEndpointsAreNamedOrGivenAsVLLMsPaths() {
        XCTAssertEqual(ServeEndpoint(naming: "completions"), .completions)
        XCTAssertEqual(ServeEndpoint(naming: "/v1/completions"), .completions)
        XCTAssertEqual(ServeEndpoint(naming: "chat"), .chat)
        XCTAssertEqual(ServeEndpoint(naming: "/v1/chat/completions"), .chat)
        XCTAssertNil(ServeEndpoint(naming: "/v1/embeddings"))
    }

    func testSummaryCountsThroughputGoodputAndErrors() {
        func answered(_ session: Int, ttft: Double, latency: Double, tokens: Int) -> RequestOutcome {
            RequestOutcome(
                session: session, turn: 0, sentAt: Double(session), promptTokens: 100, cachedPromptTokens: session == 0 ? 0 : 64,
                outputTokens: tokens, ttft: ttft, latency: latency,
                interTokenLatencies: Array(repeating: (latency - ttft) / Double(tokens - 1), count: tokens - 1), retries: 0, failure: nil)
        }
        let outcomes = [
            answered(0, ttft: 0.1, latency: 1.0, tokens: 10),  // TPOT 100 ms
            answered(1, ttft: 0.2, latency: 0.65, tokens: 10),  // TPOT 50 ms
            answered(2, ttft: 0.9, latency: 1.35, tokens: 10),  // TPOT 50 ms, TTFT too long
            .failed(session: 3, turn: 0, sentAt: 3, promptTokens: 100, latency: 0.01, retries: 2, RequestFailure(kind: "http 429", message: "busy")),
        ]
        let run = ServeBenchRunner.Run(rate: .perSecond(1), outcomes: outcomes, duration: 5)
        let summary = ServeRunSummary(run, maxConcurrency: nil, objectives: ServiceLevelObjectives(ttft: 500, tpot: 60))
        XCTAssertEqual(summary.completed, 3)
        XCTAssertEqual(summary.failed, 1)
        XCTAssertEqual(summary.errors, ["http 429": 1])
        XCTAssertEqual(summary.retries, 2)
        XCTAssertEqual(summary.request_throughput, 0.6, accuracy: 1e-9)
        XCTAssertEqual(summary.output_token_throughput, 6, accuracy: 1e-9)
        XCTAssertEqual(summary.total_token_throughput, 66, accuracy: 1e-9)
        XCTAssertEqual(summary.tpot_ms.mean, 200.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(summary.ttft_ms.p50, 200, accuracy: 1e-9)
        XCTAssertEqual(summary.itl_ms.count, 27)
        XCTAssertEqual(summary.cached_prompt_fraction ?? 0, 128.0 / 300, accuracy: 1e-9)
        XCTAssertEqual(summary.goodput ?? 0, 0.2, accuracy: 1e-9, "only request 1 meets both objectives")
        XCTAssertEqual(summary.goodput_fraction ?? 0, 0.25, accuracy: 1e-9)
        let header = ServeRunSummary.csvHeader.split(separator: ",")
        XCTAssertEqual(summary.csvRow.split(separator: ",", omittingEmptySubsequences: false).count, header.count)
        XCTAssertTrue(summary.csvRow.hasSuffix("http 429=1"))
    }
}
