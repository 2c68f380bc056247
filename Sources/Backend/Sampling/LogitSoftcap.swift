import Foundation

extension Array where Element == Float {
    /// Logits soft-capped as Gemma's final logits are, `cap · tanh(x / cap)` each: bounded by
    /// `cap`, in the same order.
    public func softcapped(by cap: Float) -> [Float] { map { cap * tanh($0 / cap) } }
}
