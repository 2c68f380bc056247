import Foundation

/// A chosen token's log probability and the most likely tokens' at that position, from the raw
/// logits: the model's own distribution, before temperature, penalties and bias (what vLLM
/// reports by default, and what evaluation harnesses score).
public struct TokenLogprobs: Sendable, Hashable {
    /// One token and its log probability.
    public struct Entry: Sendable, Hashable {
        public var token: Int
        public var logprob: Float

        public init(token: Int, logprob: Float) {
            self.token = token
            self.logprob = logprob
        }
    }

    /// The chosen token.
    public var chosen: Entry
    /// The `top` most likely tokens, most likely first (ties: the lower id first).
    public var top: [Entry]

    /// The log-softmax of `logits` at `chosen` and at its `top` most likely tokens, summed in
    /// float64 (a 128K vocabulary in float32 loses the small terms).
    public init(logits: [Float], chosen: Int, top: Int) {
        let maximum = logits.max() ?? 0
        var sum = 0.0
        for value in logits { sum += exp(Double(value - maximum)) }
        let logTotal = Double(maximum) + log(sum)
        func logprob(_ token: Int) -> Float { Float(Double(logits[token]) - logTotal) }
        self.chosen = Entry(token: chosen, logprob: logprob(chosen))
        self.top = Self.largest(top, of: logits).map { Entry(token: $0, logprob: logprob($0)) }
    }

    /// The indices of the `k` largest values, largest first: one pass that keeps a sorted list
    /// of at most `k` (k is at most 20, the vocabulary up to 256K).
    static func largest(_ k: Int, of values: [Float]) -> [Int] {
        guard k > 0 else { return [] }
        var best: [Int] = []
        best.reserveCapacity(k + 1)
        for (i, value) in values.enumerated() {
            if best.count == k, value <= values[best[k - 1]] { continue }
            let at = best.firstIndex { value > values[$0] } ?? best.count
            best.insert(i, at: at)
            if best.count > k { best.removeLast() }
        }
        return best
    }
}
