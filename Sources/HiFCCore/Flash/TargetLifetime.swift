import Foundation

/// How long the flash regions must last (`--flash-target-lifetime`), parsed from "5y", "18mo",
/// "400d" or a plain number of years.
public struct TargetLifetime: Hashable, Sendable, CustomStringConvertible {
    /// The lifetime in years of 365 days.
    public var years: Double

    /// A lifetime of `years` years.
    public init(years: Double) { self.years = years }

    /// Why a lifetime could not be read.
    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case notALifetime(String)
        case notPositive(String)

        public var description: String {
            switch self {
            case .notALifetime(let s): return "'\(s)' is not a lifetime; write for example 5y, 18mo or 400d"
            case .notPositive(let s): return "'\(s)' is not a positive lifetime"
            }
        }
    }

    private static let units: [String: Double] = [
        "": 1, "y": 1, "yr": 1, "yrs": 1, "year": 1, "years": 1,
        "mo": 1.0 / 12, "month": 1.0 / 12, "months": 1.0 / 12,
        "d": 1.0 / 365, "day": 1.0 / 365, "days": 1.0 / 365,
    ]

    /// Parses "5y", "2.5 years", "18mo", "400d" or "5".
    public init(parsing text: String) throws(ParseError) {
        let s = text.trimmingCharacters(in: .whitespaces)
        var numberEnd = s.startIndex
        while numberEnd < s.endIndex, s[numberEnd].isNumber || s[numberEnd] == "." || s[numberEnd] == "-" {
            numberEnd = s.index(after: numberEnd)
        }
        guard let value = Double(s[..<numberEnd]), let scale = Self.units[s[numberEnd...].trimmingCharacters(in: .whitespaces).lowercased()]
        else { throw .notALifetime(text) }
        guard value > 0, value.isFinite else { throw .notPositive(text) }
        years = value * scale
    }

    public var description: String {
        let rounded = (years * 100).rounded() / 100
        return rounded == rounded.rounded() ? "\(Int(rounded))y" : "\(rounded)y"
    }
}
