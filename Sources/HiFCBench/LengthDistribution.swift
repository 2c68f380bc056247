import Foundation
import Models

/// How many tokens a prompt or an output has: one count, or drawn uniformly from a range.
public enum LengthDistribution: Sendable, Hashable, CustomStringConvertible {
    /// Every request the same.
    case fixed(Int)
    /// Uniform over the range, both ends included.
    case uniform(ClosedRange<Int>)

    /// Why a length was not understood.
    public struct ParseError: Error, CustomStringConvertible {
        public var text: String
        public var description: String {
            "cannot read the length '\(text)'; use a token count (128) or a range (64-256) of positive whole numbers"
        }
    }

    /// `128` (fixed) or `64-256` (uniform).
    public init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        switch parts.count {
        case 1:
            guard let count = Int(parts[0]), count > 0 else { throw ParseError(text: text) }
            self = .fixed(count)
        case 2:
            guard let low = Int(parts[0]), let high = Int(parts[1]), low > 0, high >= low else { throw ParseError(text: text) }
            self = low == high ? .fixed(low) : .uniform(low...high)
        default:
            throw ParseError(text: text)
        }
    }

    /// A fixed length N spread uniformly over N·(1 - ratio) to N·(1 + ratio), rounded (at least
    /// 1), as `vllm bench serve --random-range-ratio` spreads its random lengths; a range is kept.
    public func spread(by ratio: Double) -> LengthDistribution {
        guard case .fixed(let count) = self, ratio > 0 else { return self }
        let low = max(1, Int((Double(count) * (1 - ratio)).rounded()))
        let high = max(low, Int((Double(count) * (1 + ratio)).rounded()))
        return low == high ? .fixed(low) : .uniform(low...high)
    }

    /// The mean length.
    public var mean: Double {
        switch self {
        case .fixed(let count): return Double(count)
        case .uniform(let range): return Double(range.lowerBound + range.upperBound) / 2
        }
    }

    /// The longest length it draws.
    public var maximum: Int {
        switch self {
        case .fixed(let count): return count
        case .uniform(let range): return range.upperBound
        }
    }

    /// One length.
    public func sample(using random: inout SeededGenerator) -> Int {
        switch self {
        case .fixed(let count): return count
        case .uniform(let range): return Int.random(in: range, using: &random)
        }
    }

    public var description: String {
        switch self {
        case .fixed(let count): return "\(count)"
        case .uniform(let range): return "\(range.lowerBound)-\(range.upperBound)"
        }
    }
}
