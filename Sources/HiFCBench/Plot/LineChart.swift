/// Lines over categories evenly spaced on the x axis (request rates of a sweep, say), each point
/// marked; a missing value breaks its line.
public struct LineChart: Chart {
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
        for (index, entry) in series.enumerated() {
            let color = ChartAxes.color(index)
            var run: [(x: Double, y: Double)] = []
            func flush() {
                if run.count > 1 { svg.polyline(run, stroke: color, width: 2, dashed: entry.dashed) }
                run.removeAll()
            }
            for (position, value) in entry.values.prefix(categories.count).enumerated() {
                guard let value, value.isFinite else {
                    flush()
                    continue
                }
                let point = (x: plot.x + slot * (Double(position) + 0.5), y: plot.y + plot.height * (1 - scale.fraction(value)))
                run.append(point)
                svg.circle(x: point.x, y: point.y, radius: 3, fill: color)
            }
            flush()
        }
    }
}
