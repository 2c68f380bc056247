/// A chart that draws itself into a rectangle of an SVG document: a line chart or a grouped bar
/// chart over categories on the x axis (request rates, workloads).
public protocol Chart: Sendable {
    /// Draws the chart, its axes, labels and legend inside `frame`.
    func draw(in frame: ChartFrame, on svg: inout SVGDocument)
}

/// A rectangle of the document, in pixels.
public struct ChartFrame: Sendable, Hashable {
    public var x: Double
    public var y: Double
    public var width: Double
    public var height: Double

    public init(x: Double, y: Double, width: Double, height: Double) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }
}

/// One named series: a value per category (nil where it has none).
public struct ChartSeries: Sendable, Hashable {
    public var name: String
    public var values: [Double?]
    /// Drawn dashed (a line chart's percentiles beside its mean, say).
    public var dashed: Bool

    public init(name: String, values: [Double?], dashed: Bool = false) {
        self.name = name
        self.values = values
        self.dashed = dashed
    }
}

/// The axes, title and legend that both chart kinds share; `plot` is where the data goes.
struct ChartAxes {
    var title: String
    var xLabel: String
    var yLabel: String
    var categories: [String]
    var series: [ChartSeries]

    /// Colours told apart also by most colour-blind readers (Okabe and Ito's palette).
    static let palette = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

    static func color(_ index: Int) -> String { palette[index % palette.count] }

    /// Draws the frame's title, axes, ticks, labels and legend; returns the plot area and the y scale.
    func draw(in frame: ChartFrame, on svg: inout SVGDocument) -> (plot: ChartFrame, scale: AxisScale) {
        let scale = AxisScale(covering: series.flatMap { $0.values.compactMap { $0 } })
        let legendWidth = 34 + 6.5 * Double(series.map(\.name.count).max() ?? 0)
        let tickWidth = 8 + 6.5 * Double(scale.ticks.map { scale.label($0).count }.max() ?? 1)
        let plot = ChartFrame(
            x: frame.x + 22 + tickWidth, y: frame.y + 30, width: max(40, frame.width - 22 - tickWidth - legendWidth - 10),
            height: max(40, frame.height - 30 - 42))
        svg.text(title, x: frame.x + frame.width / 2, y: frame.y + 18, size: 13, anchor: .middle, bold: true)
        for tick in scale.ticks {
            let y = plot.y + plot.height * (1 - scale.fraction(tick))
            svg.line(x1: plot.x, y1: y, x2: plot.x + plot.width, y2: y, stroke: tick == 0 ? "#888" : "#e3e3e3")
            svg.text(scale.label(tick), x: plot.x - 5, y: y + 4, size: 10, anchor: .end)
        }
        svg.line(x1: plot.x, y1: plot.y, x2: plot.x, y2: plot.y + plot.height, stroke: "#888")
        svg.text(yLabel, x: frame.x + 12, y: plot.y + plot.height / 2, size: 11, anchor: .middle, rotated: true)
        let slot = plot.width / Double(max(categories.count, 1))
        for (index, category) in categories.enumerated() {
            let x = plot.x + slot * (Double(index) + 0.5)
            svg.line(x1: x, y1: plot.y + plot.height, x2: x, y2: plot.y + plot.height + 4, stroke: "#888")
            svg.text(category, x: x, y: plot.y + plot.height + 16, size: 10, anchor: .middle)
        }
        svg.text(xLabel, x: plot.x + plot.width / 2, y: plot.y + plot.height + 34, size: 11, anchor: .middle)
        for (index, entry) in series.enumerated() {
            let x = plot.x + plot.width + 12
            let y = plot.y + 8 + Double(index) * 16
            svg.line(x1: x, y1: y - 4, x2: x + 16, y2: y - 4, stroke: Self.color(index), width: 3, dashed: entry.dashed)
            svg.text(entry.name, x: x + 21, y: y, size: 10)
        }
        return (plot, scale)
    }
}
