import Foundation
import Models

/// How fast requests arrive: a Poisson process of a mean rate, or all at once (`inf`).
public enum RequestRate: Sendable, Hashable, CustomStringConvertible {
    /// Every request is sent at the start (the concurrency limit, if any, then paces them).
    case infinite
    /// Requests per second, with exponentially distributed gaps (a Poisson process).
    case perSecond(Double)

    /// Why a rate was not understood.
    public struct ParseError: Error, CustomStringConvertible {
        public var text: String
        public var description: String { "cannot read the request rate '\(text)'; use a positive number of requests per second or inf" }
    }

    /// `inf` or a positive number of requests per second.
    public init(parsing text: String) throws(ParseError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed == "inf" || trimmed == "infinity" {
            self = .infinite
            return
        }
        guard let rate = Double(trimmed), rate.isFinite, rate > 0 else { throw ParseError(text: text) }
        self = .perSecond(rate)
    }

    /// A comma-separated list of rates (a sweep).
    public static func list(parsing text: String) throws(ParseError) -> [RequestRate] {
        var rates: [RequestRate] = []
        for part in text.split(separator: ",") { rates.append(try RequestRate(parsing: String(part))) }
        guard !rates.isEmpty else { throw ParseError(text: text) }
        return rates
    }

    /// Seconds from the start at which each of `count` arrivals happens: the first at 0, the next
    /// after gaps drawn from an exponential distribution of mean 1/rate, from `seed`.
    public func arrivalOffsets(count: Int, seed: UInt64) -> [Double] {
        guard case .perSecond(let rate) = self else { return Array(repeating: 0, count: count) }
        var random = SeededGenerator(seed: seed)
        var time = 0.0
        return (0..<count).map { index in
            if index > 0 {
                // Inverse transform: -ln(U) / rate with U in (0, 1] is exponential of mean 1/rate.
                let uniform = 1 - Double.random(in: 0..<1, using: &random)
                time += -log(uniform) / rate
            }
            return time
        }
    }

    /// The rate as a number for tables and plots (`inf` is infinity).
    public var requestsPerSecond: Double {
        if case .perSecond(let rate) = self { return rate }
        return .infinity
    }

    public var description: String {
        switch self {
        case .infinite: return "inf"
        case .perSecond(let rate): return rate == rate.rounded() ? String(Int(rate)) : String(rate)
        }
    }
}
