/// The plot of a `bench serve` rate sweep: against the request rate, the mean and percentiles of
/// TTFT, TPOT, ITL and end-to-end latency, output tokens/s, and requests/s with goodput.
public enum ServeSweepPlot {
    /// The figure for `runs` (in sweep order), headed by `label` (the server, model and workload, say).
    public static func figure(_ runs: [ServeRunSummary], label: String) -> ChartFigure {
        let rates = runs.map(\.request_rate)
        let xLabel = "request rate (requests/s)"
        func percentiles(_ title: String, unit: String, scale: Double = 1, _ stats: (ServeRunSummary) -> LatencyStats) -> LineChart {
            func series(_ name: String, dashed: Bool, _ value: (LatencyStats) -> Double) -> ChartSeries {
                ChartSeries(name: name, values: runs.map { stats($0).count > 0 ? value(stats($0)) * scale : nil }, dashed: dashed)
            }
            return LineChart(
                title: title, xLabel: xLabel, yLabel: unit, categories: rates,
                series: [
                    series("mean", dashed: false, \.mean), series("p50", dashed: true, \.p50), series("p90", dashed: true, \.p90),
                    series("p99", dashed: true, \.p99),
                ])
        }
        var requests = [ChartSeries(name: "completed", values: runs.map(\.request_throughput))]
        if runs.contains(where: { $0.goodput != nil }) {
            requests.append(ChartSeries(name: "goodput", values: runs.map(\.goodput), dashed: true))
        }
        return ChartFigure(
            charts: [
                percentiles("Time to first token", unit: "ms", \.ttft_ms),
                percentiles("Time per output token", unit: "ms", \.tpot_ms),
                percentiles("Inter-token latency", unit: "ms", \.itl_ms),
                percentiles("End-to-end latency", unit: "s", scale: 0.001, \.e2el_ms),
                LineChart(
                    title: "Output throughput", xLabel: xLabel, yLabel: "tokens/s", categories: rates,
                    series: [ChartSeries(name: "output tok/s", values: runs.map(\.output_token_throughput))]),
                LineChart(title: "Request throughput", xLabel: xLabel, yLabel: "requests/s", categories: rates, series: requests),
            ], title: label, columns: 3, panelWidth: 430, panelHeight: 290)
    }
}
