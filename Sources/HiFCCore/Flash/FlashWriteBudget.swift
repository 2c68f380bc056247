/// How many bytes the flash tier may take per day, so that its regions last: a budget given per
/// region (`--flash-daily-write-budget`), and the regions' endurance (`--flash-tbw`) spread over a
/// target lifetime (`--flash-target-lifetime`), by the paper's formula read backwards: lifetime
/// (years) = TBW / (bytes per day x 365), so bytes per day = TBW / (years x 365). Where both are
/// given, the smaller holds.
public struct FlashWriteBudget: Hashable, Sendable {
    /// Bytes each region may take per day, as configured; nil: no such limit.
    public var dailyBytesPerRegion: Int64?
    /// Bytes each region endures (its TBW rating); nil: unknown.
    public var enduranceBytesPerRegion: Int64?
    /// Years the regions must last at least; nil: no target.
    public var targetLifetimeYears: Double?
    /// Regions the tier writes to.
    public var regions: Int

    /// A budget from the per-region figures of `regions` regions.
    public init(dailyBytesPerRegion: Int64? = nil, enduranceBytesPerRegion: Int64? = nil, targetLifetimeYears: Double? = nil, regions: Int = 1) {
        self.dailyBytesPerRegion = dailyBytesPerRegion
        self.enduranceBytesPerRegion = enduranceBytesPerRegion
        self.targetLifetimeYears = targetLifetimeYears
        self.regions = max(regions, 1)
    }

    /// Bytes per day that keep the regions for the target lifetime; nil without a target or an
    /// endurance rating.
    public var lifetimeDailyBytes: Double? {
        guard let years = targetLifetimeYears, years > 0, let endurance = enduranceBytesPerRegion, endurance > 0 else { return nil }
        return Double(endurance) * Double(regions) / (years * 365)
    }

    /// Bytes the whole tier may take per day: the smaller of the configured budget and the
    /// lifetime's; nil when neither is given.
    public var dailyBytes: Double? {
        let configured = dailyBytesPerRegion.map { Double($0) * Double(regions) }
        switch (configured, lifetimeDailyBytes) {
        case (let a?, let b?): return min(a, b)
        case (let a?, nil): return a
        case (nil, let b?): return b
        case (nil, nil): return nil
        }
    }

    /// Bytes left today after `written` bytes (never negative); nil without a budget.
    public func bytesLeft(afterWriting written: Int64) -> Double? {
        dailyBytes.map { max($0 - Double(written), 0) }
    }
}
