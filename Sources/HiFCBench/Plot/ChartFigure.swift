import Foundation

/// Charts laid out in a grid in one image, written as SVG, or as PNG through `rsvg-convert`
/// (Debian's librsvg2-bin) when the file name ends in `.png`.
public struct ChartFigure: Sendable {
    public var charts: [any Chart]
    /// A heading above the charts (nil: none).
    public var title: String?
    /// Charts per row.
    public var columns: Int
    /// Size of each chart, in pixels.
    public var panelWidth: Double
    public var panelHeight: Double

    public init(charts: [any Chart], title: String? = nil, columns: Int = 2, panelWidth: Double = 520, panelHeight: Double = 300) {
        self.charts = charts
        self.title = title
        self.columns = max(1, columns)
        self.panelWidth = panelWidth
        self.panelHeight = panelHeight
    }

    /// The figure as SVG text.
    public var svg: String {
        let columns = min(self.columns, max(charts.count, 1))
        let rows = (charts.count + columns - 1) / columns
        let heading: Double = title == nil ? 0 : 28
        var document = SVGDocument(width: panelWidth * Double(columns), height: heading + panelHeight * Double(max(rows, 1)))
        if let title { document.text(title, x: document.width / 2, y: 20, size: 14, anchor: .middle, bold: true) }
        for (index, chart) in charts.enumerated() {
            let frame = ChartFrame(
                x: panelWidth * Double(index % columns), y: heading + panelHeight * Double(index / columns), width: panelWidth, height: panelHeight)
            chart.draw(in: frame, on: &document)
        }
        return document.rendered
    }

    /// Why a figure could not be written.
    public struct WriteError: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "cannot write the plot \(path): \(reason)" }
    }

    /// Writes the figure to `path`: PNG if it ends in `.png`, else SVG.
    public func write(to path: String) throws(WriteError) {
        guard path.lowercased().hasSuffix(".png") else {
            do { try svg.write(toFile: path, atomically: true, encoding: .utf8) } catch { throw WriteError(path: path, reason: "\(error)") }
            return
        }
        guard let converter = Self.executable(named: "rsvg-convert") else {
            throw WriteError(path: path, reason: "PNG needs rsvg-convert (Debian: apt-get install librsvg2-bin); or name an .svg file")
        }
        let source = NSTemporaryDirectory() + "hifc-plot-\(getpid())-\(UUID().uuidString).svg"
        defer { try? FileManager.default.removeItem(atPath: source) }
        do {
            try svg.write(toFile: source, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: converter)
            process.arguments = ["--format", "png", "--output", path, source]
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw WriteError(path: path, reason: "rsvg-convert exited with status \(process.terminationStatus)")
            }
        } catch let error as WriteError {
            throw error
        } catch {
            throw WriteError(path: path, reason: "\(error)")
        }
    }

    /// The path of a program on PATH.
    private static func executable(named name: String) -> String? {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return paths.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
