/// Mean and percentiles of one latency measure over a run, in milliseconds.
public struct LatencyStats: Codable, Sendable, Hashable {
    public var mean: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    /// How many values they summarize (0: every field is 0).
    public var count: Int

    /// The figures of `milliseconds` (in any order).
    public init(_ milliseconds: [Double]) {
        let sorted = milliseconds.sorted()
        count = sorted.count
        mean = sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)
        p50 = Self.percentile(sorted, 50)
        p90 = Self.percentile(sorted, 90)
        p99 = Self.percentile(sorted, 99)
    }

    /// The `percent` percentile of `sorted` (ascending), interpolating linearly between the two
    /// nearest ranks, as NumPy's default (and so vLLM's benchmark) does; 0 for no values.
    public static func percentile(_ sorted: [Double], _ percent: Double) -> Double {
        guard let first = sorted.first else { return 0 }
        guard sorted.count > 1 else { return first }
        let rank = percent / 100 * Double(sorted.count - 1)
        let below = Int(rank.rounded(.down))
        let above = min(below + 1, sorted.count - 1)
        let fraction = rank - Double(below)
        return sorted[below] + (sorted[above] - sorted[below]) * fraction
    }
}
