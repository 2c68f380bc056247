/// Latency limits a request must meet to count towards goodput (`--goodput ttft:500 tpot:50`),
/// in milliseconds; a limit left out is not checked.
public struct ServiceLevelObjectives: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Time to first token.
    public var ttft: Double?
    /// Time per output token after the first.
    public var tpot: Double?
    /// End-to-end latency.
    public var e2el: Double?

    /// Why an objective was not understood.
    public struct ParseError: Error, CustomStringConvertible {
        public var text: String
        public var description: String {
            "cannot read the SLO '\(text)'; use METRIC:MS with METRIC ttft, tpot or e2el and MS a positive number of milliseconds"
        }
    }

    public init(ttft: Double? = nil, tpot: Double? = nil, e2el: Double? = nil) {
        self.ttft = ttft
        self.tpot = tpot
        self.e2el = e2el
    }

    /// `ttft:500`, `tpot:50`, `e2el:2000`: each item one limit (items may also be space-separated
    /// inside one string).
    public init(parsing items: [String]) throws(ParseError) {
        self.init()
        for item in items.flatMap({ $0.split(separator: " ") }) {
            let parts = item.split(separator: ":")
            guard parts.count == 2, let limit = Double(parts[1]), limit.isFinite, limit > 0 else { throw ParseError(text: String(item)) }
            switch parts[0].lowercased() {
            case "ttft": ttft = limit
            case "tpot": tpot = limit
            case "e2el": e2el = limit
            default: throw ParseError(text: String(item))
            }
        }
    }

    /// Whether no limit is set.
    public var isEmpty: Bool { ttft == nil && tpot == nil && e2el == nil }

    /// Whether a request with these latencies (milliseconds) meets every limit. A request of one
    /// output token has no time per output token and meets any such limit.
    public func isMet(ttft: Double, tpot: Double?, e2el: Double) -> Bool {
        if let limit = self.ttft, ttft > limit { return false }
        if let limit = self.tpot, let tpot, tpot > limit { return false }
        if let limit = self.e2el, e2el > limit { return false }
        return true
    }

    public var description: String {
        [ttft.map { "ttft:\(Self.format($0))" }, tpot.map { "tpot:\(Self.format($0))" }, e2el.map { "e2el:\(Self.format($0))" }]
            .compactMap { $0 }.joined(separator: " ")
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
