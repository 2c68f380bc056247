import Backend
import CPUKernels
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

    /// The log-softmax of `logits` at `chosen` and at its `top` most likely tokens.
    public init(logits: [Float], chosen: Int, top: Int) {
        let logTotal = Self.logSumExp(logits)
        func logprob(_ token: Int) -> Float { Float(Double(logits[token]) - logTotal) }
        self.chosen = Entry(token: chosen, logprob: logprob(chosen))
        self.top = LargestFirst.positions(top, of: logits).map { Entry(token: $0, logprob: logprob($0)) }
    }

    /// `log Σ exp(logits)` from the largest logit: what a logit less is its log probability. The
    /// terms are the vector exp's (within 2 ulp of `expf`), summed in float32 a few hundred at a
    /// time and those sums in float64: a 128K vocabulary summed in float32 alone loses the small
    /// terms, and `exp` in float64 took 1 ms a token at 128K.
    public static func logSumExp(_ logits: [Float]) -> Double {
        var top = -Float.infinity
        for logit in logits where logit > top { top = logit }
        guard top.isFinite else { return Double(top) }
        let total = logits.withUnsafeBufferPointer { hifc_exp_scaled($0.baseAddress, nil, $0.count, top, 1) }
        return Double(top) + log(total)
    }
}
