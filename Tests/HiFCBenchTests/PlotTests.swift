import Foundation
import XCTest

@testable import HiFCBench

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The SVG charts: round axis ticks, well-formed XML, every label and series drawn.
final class PlotTests: XCTestCase {
    func testAxisTicksAreRoundAndCoverTheData() {
        let scale = AxisScale(covering: [3, 87.5])
        XCTAssertEqual(scale.ticks, [0, 20, 40, 60, 80, 100])
        XCTAssertEqual(AxisScale(covering: [0.013, 0.042]).ticks.last ?? 0, 0.05, accuracy: 1e-12)
        XCTAssertEqual(AxisScale(covering: [0.013, 0.042]).label(0.02), "0.02")
        XCTAssertEqual(AxisScale(covering: [12_345]).label(10_000), "10k")
        XCTAssertEqual(AxisScale(covering: []).ticks.count, 6, "no data: a unit axis in fifths")
        XCTAssertEqual(AxisScale(covering: []).upper, 1)
    }

    func testLineChartIsWellFormedSVGWithItsLabels() throws {
        let chart = LineChart(
            title: "TTFT <ms> & more", xLabel: "request rate", yLabel: "ms", categories: ["1", "2", "4", "inf"],
            series: [
                ChartSeries(name: "p50", values: [10, 12, nil, 40]),
                ChartSeries(name: "p99", values: [20, 30, 55, 90], dashed: true),
            ])
        let svg = ChartFigure(charts: [chart], title: "a sweep", columns: 1).svg
        let elements = try Self.elements(of: svg)
        XCTAssertEqual(elements["svg"], 1)
        XCTAssertEqual(elements["circle"], 7, "one marker per value present")
        XCTAssertEqual(elements["polyline"], 2, "p50 breaks at its gap into a line of two points and a lone marker; p99 is one line")
        for label in ["TTFT &lt;ms&gt; &amp; more", ">inf<", ">p99<", ">request rate<", ">a sweep<"] {
            XCTAssertTrue(svg.contains(label), "missing \(label)")
        }
    }

    func testGroupedBarsDrawOneBarPerSeriesAndCategory() throws {
        let chart = GroupedBarChart(
            title: "output tokens/s", xLabel: "workload", yLabel: "tokens/s", categories: ["qasper", "govreport"],
            series: [
                ChartSeries(name: "swap-flash", values: [132.5, 120]),
                ChartSeries(name: "swap-dram", values: [108.2, 118]),
                ChartSeries(name: "recompute", values: [37.3, nil]),
            ])
        let svg = ChartFigure(charts: [chart], columns: 1).svg
        let elements = try Self.elements(of: svg)
        XCTAssertEqual(elements["rect"], 1 + 5, "the background and five bars")
        XCTAssertTrue(svg.contains(">132<") || svg.contains(">133<") || svg.contains(">132.5<"), "bar values are written")
        XCTAssertTrue(svg.contains(">govreport<"))
    }

    /// Element counts of `svg`, which must parse as XML.
    private static func elements(of svg: String) throws -> [String: Int] {
        final class Counter: NSObject, XMLParserDelegate {
            var counts: [String: Int] = [:]
            func parser(
                _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]
            ) {
                counts[name, default: 0] += 1
            }
        }
        let parser = XMLParser(data: Data(svg.utf8))
        let counter = Counter()
        parser.delegate = counter
        XCTAssertTrue(parser.parse(), "not well-formed: \(parser.parserError.map { "\($0)" } ?? "")")
        return counter.counts
    }
}
