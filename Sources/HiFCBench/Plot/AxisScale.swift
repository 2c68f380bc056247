import Foundation

/// A value axis from 0 (or the data's minimum, if negative) to a round number above the data,
/// with ticks at round steps (1, 2 or 5 times a power of ten).
public struct AxisScale: Sendable, Hashable {
    public var lower: Double
    public var upper: Double
    public var step: Double

    /// A scale holding `values` and 0, with about `ticks` ticks.
    public init(covering values: [Double], ticks: Int = 5) {
        let finite = values.filter(\.isFinite)
        let low = min(0, finite.min() ?? 0)
        var high = max(0, finite.max() ?? 0)
        if high == low { high = low + 1 }
        let raw = (high - low) / Double(max(ticks, 1))
        let power = pow(10, (log10(raw)).rounded(.down))
        let fraction = raw / power
        step = (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power
        lower = (low / step).rounded(.down) * step
        upper = (high / step).rounded(.up) * step
    }

    /// The tick values, lower to upper.
    public var ticks: [Double] {
        let count = Int(((upper - lower) / step).rounded())
        return (0...count).map { lower + Double($0) * step }
    }

    /// Where `value` falls, 0 at `lower` to 1 at `upper`.
    public func fraction(_ value: Double) -> Double { (value - lower) / (upper - lower) }

    /// A tick's label: as many decimals as the step needs; on an axis reaching 10,000 or more,
    /// thousands as `k`.
    public func label(_ value: Double) -> String {
        if max(abs(upper), abs(lower)) >= 10_000, step >= 1_000, value != 0 {
            let thousands = value / 1_000
            return thousands == thousands.rounded() ? "\(Int(thousands))k" : String(format: "%.1fk", thousands)
        }
        let decimals = step >= 1 ? 0 : Int((-log10(step) - 1e-9).rounded(.up))
        return String(format: "%.\(decimals)f", value)
    }
}
