import Foundation

/// Bars grouped by category (workloads, say), one bar per series (modes) in each group, with the
/// value written above each bar.
public struct GroupedBarChart: Chart {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var categories: [String]
    public var series: [ChartSeries]

    public init(title: String, xLabel: String, yLabel: String, categories: [String], series: [ChartSeries]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.categories = categories
        self.series = series
    }

    public func draw(in frame: ChartFrame, on svg: inout SVGDocument) {
        let axes = ChartAxes(title: title, xLabel: xLabel, yLabel: yLabel, categories: categories, series: series)
        let (plot, scale) = axes.draw(in: frame, on: &svg)
        let slot = plot.width / Double(max(categories.count, 1))
        let barWidth = slot * 0.8 / Double(max(series.count, 1))
        for (index, entry) in series.enumerated() {
            for (position, value) in entry.values.prefix(categories.count).enumerated() {
                guard let value, value.isFinite else { continue }
                let x = plot.x + slot * Double(position) + slot * 0.1 + barWidth * Double(index)
                let top = plot.y + plot.height * (1 - scale.fraction(max(value, 0)))
                let bottom = plot.y + plot.height * (1 - scale.fraction(0))
                svg.rect(x: x, y: top, width: barWidth * 0.92, height: max(bottom - top, 0), fill: ChartAxes.color(index))
                if barWidth >= 22 {
                    svg.text(Self.valueLabel(value), x: x + barWidth * 0.46, y: top - 3, size: 9, anchor: .middle)
                }
            }
        }
    }

    /// A bar's value with three significant digits.
    static func valueLabel(_ value: Double) -> String {
        let magnitude = abs(value)
        let decimals = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : 2
        return String(format: "%.\(decimals)f", value)
    }
}
