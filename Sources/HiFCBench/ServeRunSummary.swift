import Foundation

/// The figures of one `bench serve` run at one request rate, as printed, written to JSON and
/// CSV, and plotted. Latencies are in milliseconds, throughputs per second of the run's duration
/// (first arrival to last end). Field names are the JSON keys.
public struct ServeRunSummary: Codable, Sendable {
    /// The rate asked for (`inf` or requests per second).
    public var request_rate: String
    public var max_concurrency: Int?
    public var requests: Int
    public var completed: Int
    public var failed: Int
    /// Failures by kind (`http 429`, `timeout`, ...).
    public var errors: [String: Int]
    /// 429 answers that were sent again.
    public var retries: Int
    public var duration_s: Double
    /// Completed requests per second.
    public var request_throughput: Double
    /// Output tokens of completed requests per second.
    public var output_token_throughput: Double
    /// Prompt and output tokens of completed requests per second.
    public var total_token_throughput: Double
    public var mean_input_tokens: Double
    public var mean_output_tokens: Double
    /// Share of completed requests' prompt tokens that the server's prefix cache supplied, from
    /// `usage.prompt_tokens_details.cached_tokens` (nil when the server does not report it).
    public var cached_prompt_fraction: Double?
    /// Time to first token.
    public var ttft_ms: LatencyStats
    /// Time per output token after the first, per request.
    public var tpot_ms: LatencyStats
    /// Inter-token latency: every gap between chunks of text, of every request.
    public var itl_ms: LatencyStats
    /// End-to-end latency.
    public var e2el_ms: LatencyStats
    /// The objectives goodput counts against (empty: none given).
    public var slo: String
    /// Completed requests per second that met every objective (nil without objectives).
    public var goodput: Double?
    /// Share of all requests that met every objective.
    public var goodput_fraction: Double?

    /// The figures of `run`, goodput against `objectives`.
    public init(_ run: ServeBenchRunner.Run, maxConcurrency: Int?, objectives: ServiceLevelObjectives) {
        let done = run.outcomes.filter { $0.failure == nil }
        let failures = run.outcomes.compactMap(\.failure)
        let duration = max(run.duration, 1e-9)
        let outputTokens = done.reduce(0) { $0 + $1.outputTokens }
        let inputTokens = done.reduce(0) { $0 + $1.promptTokens }
        request_rate = run.rate.description
        max_concurrency = maxConcurrency
        requests = run.outcomes.count
        completed = done.count
        failed = failures.count
        errors = Dictionary(grouping: failures, by: \.kind).mapValues(\.count)
        retries = run.outcomes.reduce(0) { $0 + $1.retries }
        duration_s = run.duration
        request_throughput = Double(done.count) / duration
        output_token_throughput = Double(outputTokens) / duration
        total_token_throughput = Double(outputTokens + inputTokens) / duration
        mean_input_tokens = done.isEmpty ? 0 : Double(inputTokens) / Double(done.count)
        mean_output_tokens = done.isEmpty ? 0 : Double(outputTokens) / Double(done.count)
        let cached = done.compactMap(\.cachedPromptTokens)
        cached_prompt_fraction = cached.isEmpty || inputTokens == 0 ? nil : Double(cached.reduce(0, +)) / Double(inputTokens)
        ttft_ms = LatencyStats(done.map { $0.ttft * 1000 })
        tpot_ms = LatencyStats(done.compactMap { $0.tpot.map { $0 * 1000 } })
        itl_ms = LatencyStats(done.flatMap { $0.interTokenLatencies.map { $0 * 1000 } })
        e2el_ms = LatencyStats(done.map { $0.latency * 1000 })
        slo = objectives.description
        if objectives.isEmpty {
            goodput = nil
            goodput_fraction = nil
        } else {
            let good = done.filter { objectives.isMet(ttft: $0.ttft * 1000, tpot: $0.tpot.map { $0 * 1000 }, e2el: $0.latency * 1000) }.count
            goodput = Double(good) / duration
            goodput_fraction = run.outcomes.isEmpty ? 0 : Double(good) / Double(run.outcomes.count)
        }
    }

    /// CSV header matching `csvRow`.
    public static let csvHeader =
        "request_rate,max_concurrency,requests,completed,failed,retries,duration_s,request_throughput,output_token_throughput,total_token_throughput,mean_input_tokens,mean_output_tokens,cached_prompt_fraction,"
        + ["ttft", "tpot", "itl", "e2el"].map { m in ["mean", "p50", "p90", "p99"].map { "\(m)_\($0)_ms" }.joined(separator: ",") }.joined(
            separator: ",")
        + ",slo,goodput,goodput_fraction,errors"

    /// One CSV line of these figures (errors as `kind=count` pairs separated by `;`).
    public var csvRow: String {
        let latencies = [ttft_ms, tpot_ms, itl_ms, e2el_ms].flatMap { [$0.mean, $0.p50, $0.p90, $0.p99] }.map { "\($0)" }
        let errorText = errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";")
        let fields =
            [
                request_rate, max_concurrency.map { "\($0)" } ?? "", "\(requests)", "\(completed)", "\(failed)", "\(retries)", "\(duration_s)",
                "\(request_throughput)", "\(output_token_throughput)", "\(total_token_throughput)", "\(mean_input_tokens)",
                "\(mean_output_tokens)", cached_prompt_fraction.map { "\($0)" } ?? "",
            ] + latencies + [slo, goodput.map { "\($0)" } ?? "", goodput_fraction.map { "\($0)" } ?? "", errorText]
        return fields.map { $0.contains(",") || $0.contains("\"") ? "\"\($0.replacingOccurrences(of: "\"", with: "\"\""))\"" : $0 }
            .joined(separator: ",")
    }
}
