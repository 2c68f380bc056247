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
        let logTotal = Self.logSumExp(logits)
        func logprob(_ token: Int) -> Float { Float(Double(logits[token]) - logTotal) }
        self.chosen = Entry(token: chosen, logprob: logprob(chosen))
        self.top = LargestFirst.positions(top, of: logits).map { Entry(token: $0, logprob: logprob($0)) }
    }

    /// `log Σ exp(logits)`, in float64 from the largest logit: what a logit less is its log
    /// probability.
    public static func logSumExp(_ logits: [Float]) -> Double {
        let top = Double(logits.max() ?? 0)
        return top + log(logits.reduce(0.0) { $0 + exp(Double($1) - top) })
    }
}
