/// Watches streamed text for stop strings: text that might be the start of a stop string is held
/// back until it is known not to be, and generation ends at the first stop string, which is
/// never emitted.
public struct StopStringFilter: Sendable {
    private let stops: [String]
    private var held = ""
    /// Whether a stop string was seen.
    public private(set) var stopped = false

    /// A filter for `stops` (empty strings are ignored).
    public init(_ stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

    /// Feeds a delta; returns the text that is safe to emit.
    public mutating func feed(_ delta: String) -> String {
        guard !stopped else { return "" }
        guard !stops.isEmpty else { return delta }
        held += delta
        if let cut = stops.compactMap({ held.range(of: $0)?.lowerBound }).min() {
            stopped = true
            let out = String(held[..<cut])
            held = ""
            return out
        }
        // Keep the longest suffix of `held` that is a proper prefix of some stop string.
        var keep = 0
        for stop in stops {
            for length in stride(from: min(stop.count - 1, held.count), to: 0, by: -1)
            where held.hasSuffix(stop.prefix(length)) {
                keep = max(keep, length)
                break
            }
        }
        let out = String(held.dropLast(keep))
        held = String(held.suffix(keep))
        return out
    }

    /// Text still held back when generation ends for another reason.
    public mutating func finish() -> String {
        defer { held = "" }
        return stopped ? "" : held
    }
}
