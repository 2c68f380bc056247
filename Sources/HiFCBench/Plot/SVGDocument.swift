import Foundation

/// An SVG image built element by element: lines, rectangles, polylines, circles and text, in
/// pixels from the top left.
public struct SVGDocument: Sendable {
    public var width: Double
    public var height: Double
    private var elements: [String] = []

    public init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    /// How text is anchored at its point.
    public enum Anchor: String, Sendable { case start, middle, end }

    public mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String, width: Double = 1, dashed: Bool = false) {
        let dash = dashed ? #" stroke-dasharray="4 3""# : ""
        elements.append(
            #"<line x1="\#(Self.number(x1))" y1="\#(Self.number(y1))" x2="\#(Self.number(x2))" y2="\#(Self.number(y2))" stroke="\#(stroke)" stroke-width="\#(Self.number(width))"\#(dash)/>"#
        )
    }

    public mutating func rect(x: Double, y: Double, width: Double, height: Double, fill: String, stroke: String? = nil) {
        let outline = stroke.map { #" stroke="\#($0)""# } ?? ""
        elements.append(
            #"<rect x="\#(Self.number(x))" y="\#(Self.number(y))" width="\#(Self.number(width))" height="\#(Self.number(height))" fill="\#(fill)"\#(outline)/>"#
        )
    }

    public mutating func polyline(_ points: [(x: Double, y: Double)], stroke: String, width: Double = 2, dashed: Bool = false) {
        let list = points.map { "\(Self.number($0.x)),\(Self.number($0.y))" }.joined(separator: " ")
        let dash = dashed ? #" stroke-dasharray="6 3""# : ""
        elements.append(
            #"<polyline points="\#(list)" fill="none" stroke="\#(stroke)" stroke-width="\#(Self.number(width))" stroke-linejoin="round"\#(dash)/>"#)
    }

    public mutating func circle(x: Double, y: Double, radius: Double, fill: String) {
        elements.append(#"<circle cx="\#(Self.number(x))" cy="\#(Self.number(y))" r="\#(Self.number(radius))" fill="\#(fill)"/>"#)
    }

    /// Text at a point; `rotated` turns it a quarter anticlockwise (a y-axis label).
    public mutating func text(
        _ text: String, x: Double, y: Double, size: Double = 11, anchor: Anchor = .start, bold: Bool = false, rotated: Bool = false,
        fill: String = "#222"
    ) {
        let weight = bold ? #" font-weight="bold""# : ""
        let rotation = rotated ? #" transform="rotate(-90 \#(Self.number(x)) \#(Self.number(y)))""# : ""
        elements.append(
            #"<text x="\#(Self.number(x))" y="\#(Self.number(y))" font-size="\#(Self.number(size))" text-anchor="\#(anchor.rawValue)" fill="\#(fill)"\#(weight)\#(rotation)>\#(Self.escape(text))</text>"#
        )
    }

    /// The whole document.
    public var rendered: String {
        var lines = [
            #"<svg xmlns="http://www.w3.org/2000/svg" width="\#(Self.number(width))" height="\#(Self.number(height))" viewBox="0 0 \#(Self.number(width)) \#(Self.number(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#,
            #"<rect width="100%" height="100%" fill="white"/>"#,
        ]
        lines += elements
        lines.append("</svg>")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Text made safe for XML.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A coordinate with at most one decimal (keeps the file small).
    static func number(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(format: "%.1f", rounded)
    }
}
