import Foundation
import XCTest

@testable import Server

/// `hifc serve`'s ArgumentParser options are declarations generated from `ConfigurationSchema`
/// (ArgumentParser cannot declare options at run time); this rebuilds the generated block from
/// the table and compares it with Sources/hifc/ServeSettingsOptions.swift.
final class ServeOptionsSourceTests: XCTestCase {
    func testServeOptionsAreGeneratedFromTheSchema() throws {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/hifc/ServeSettingsOptions.swift")
        let text = try String(contentsOf: source, encoding: .utf8)
        let begin = try XCTUnwrap(text.range(of: "// BEGIN GENERATED from ConfigurationSchema.settings\n"))
        let end = try XCTUnwrap(text.range(of: "    // END GENERATED"))
        let block = String(text[begin.upperBound..<end.lowerBound])
        XCTAssertTrue(
            normalized(block) == normalized(generatedBlock),
            "Sources/hifc/ServeSettingsOptions.swift's generated block must be, from the schema:\n\(generatedBlock)")
    }

    /// One option per setting (a list setting collects repeated flags), and the values given by key.
    private var generatedBlock: String {
        var lines: [String] = []
        for setting in ConfigurationSchema.settings {
            lines.append("    @Option(name: .customLong(\"\(setting.flag.dropFirst(2))\"), help: ServeSettingsOptions.help(\"\(setting.key)\"))")
            lines.append("    var \(propertyName(setting.key)): " + (setting.isList ? "[String] = []" : "String?"))
            lines.append("")
        }
        lines.append("    /// The values given on the command line, by schema key.")
        lines.append("    var given: [(key: String, values: [String])] {")
        lines.append("        [")
        for setting in ConfigurationSchema.settings {
            let name = propertyName(setting.key)
            lines.append("            (\"\(setting.key)\", " + (setting.isList ? name : "\(name).map { [$0] } ?? []") + "),")
        }
        lines.append("        ]")
        lines.append("    }")
        return lines.joined(separator: "\n") + "\n"
    }

    /// `flash.daily-write-budget` -> `flashDailyWriteBudget`.
    private func propertyName(_ key: String) -> String {
        let words = key.split(whereSeparator: { $0 == "." || $0 == "-" }).map(String.init)
        return words[0] + words.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    /// The text without whitespace, so `swift format` may wrap it.
    private func normalized(_ text: String) -> String {
        String(text.filter { !$0.isWhitespace })
    }
}
