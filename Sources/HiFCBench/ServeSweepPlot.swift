/// The plot of a `bench serve` rate sweep: latency percentiles and throughput against the request
/// rate, one panel each for TTFT, TPOT and ITL, end-to-end latency, and throughput.
public enum ServeSweepPlot {
    /// The figure for `runs` (in sweep order), headed by `label` (the server, model and workload, say).
    public static func figure(_ runs: [ServeRunSummary], label: String) -> ChartFigure {
        let rates = runs.map(\.request_rate)
        let xLabel = "request rate (requests/s)"
        func percentiles(_ stats: (ServeRunSummary) -> LatencyStats, scale: Double = 1) -> [ChartSeries] {
            [
                ChartSeries(name: "mean", values: runs.map { stats($0).count > 0 ? stats($0).mean * scale : nil }),
                ChartSeries(name: "p50", values: runs.map { stats($0).count > 0 ? stats($0).p50 * scale : nil }, dashed: true),
                ChartSeries(name: "p90", values: runs.map { stats($0).count > 0 ? stats($0).p90 * scale : nil }, dashed: true),
                ChartSeries(name: "p99", values: runs.map { stats($0).count > 0 ? stats($0).p99 * scale : nil }, dashed: true),
            ]
        }
        let tokenLatencies = [
            ChartSeries(name: "TPOT mean", values: runs.map { $0.tpot_ms.count > 0 ? $0.tpot_ms.mean : nil }),
            ChartSeries(name: "TPOT p99", values: runs.map { $0.tpot_ms.count > 0 ? $0.tpot_ms.p99 : nil }, dashed: true),
            ChartSeries(name: "ITL p50", values: runs.map { $0.itl_ms.count > 0 ? $0.itl_ms.p50 : nil }),
            ChartSeries(name: "ITL p99", values: runs.map { $0.itl_ms.count > 0 ? $0.itl_ms.p99 : nil }, dashed: true),
        ]
        var throughput = [ChartSeries(name: "output tok/s", values: runs.map(\.output_token_throughput))]
        if runs.contains(where: { $0.goodput != nil }) {
            // Goodput is in requests/s: scaled by the mean output length it shares the token axis.
            throughput.append(
                ChartSeries(name: "goodput (as tok/s)", values: runs.map { run in run.goodput.map { $0 * run.mean_output_tokens } }, dashed: true))
        }
        return ChartFigure(
            charts: [
                LineChart(title: "Time to first token", xLabel: xLabel, yLabel: "ms", categories: rates, series: percentiles(\.ttft_ms)),
                LineChart(
                    title: "Time per output token, inter-token latency", xLabel: xLabel, yLabel: "ms", categories: rates, series: tokenLatencies),
                LineChart(
                    title: "End-to-end latency", xLabel: xLabel, yLabel: "s", categories: rates, series: percentiles(\.e2el_ms, scale: 0.001)),
                LineChart(title: "Output throughput", xLabel: xLabel, yLabel: "tokens/s", categories: rates, series: throughput),
            ], title: label, columns: 2)
    }
}
