/// The write history of one flash region and the lifetime it predicts, with the HiFC paper's
/// formula: lifetime (years) = TBW / (bytes written per day x 365).
///
/// Times are seconds since 1970 so the ledger persists as plain numbers in the region superblock.
public struct WearLedger: Hashable, Sendable {
    /// When the region was created.
    public var createdAt: Double
    /// Bytes written to the region's device since it was created (headers and padding included).
    public var bytesWritten: Int64
    /// Start of the current budget day (a 24-hour window that starts with its first write).
    public var dayStartedAt: Double
    /// Bytes written since `dayStartedAt`.
    public var bytesWrittenToday: Int64
    /// Rates are measured over at least this long, so the first seconds do not extrapolate wildly.
    public static let minimumObservation: Double = 60

    /// A ledger for a region created at `now`.
    public init(createdAt now: Double) {
        self.createdAt = now
        self.bytesWritten = 0
        self.dayStartedAt = now
        self.bytesWrittenToday = 0
    }

    /// A ledger restored from its persisted fields.
    public init(createdAt: Double, bytesWritten: Int64, dayStartedAt: Double, bytesWrittenToday: Int64) {
        self.createdAt = createdAt
        self.bytesWritten = bytesWritten
        self.dayStartedAt = dayStartedAt
        self.bytesWrittenToday = bytesWrittenToday
    }

    /// Counts `bytes` written at `now`.
    public mutating func record(bytes: Int64, at now: Double) {
        if now - dayStartedAt >= 86_400 {
            dayStartedAt = now
            bytesWrittenToday = 0
        }
        bytesWritten += bytes
        bytesWrittenToday += bytes
    }

    /// The observed write rate in bytes per day.
    public func bytesPerDay(at now: Double) -> Double {
        let seconds = max(now - createdAt, Self.minimumObservation)
        return Double(bytesWritten) / seconds * 86_400
    }

    /// Predicted years until `endurance` bytes (the TBW rating) are written at the observed rate;
    /// nil before anything is written (an infinite lifetime) or without a rating.
    public func lifetimeYears(endurance: Int64?, at now: Double) -> Double? {
        guard let endurance, endurance > 0 else { return nil }
        let perDay = bytesPerDay(at: now)
        guard perDay > 0 else { return nil }
        return Double(endurance) / (perDay * 365)
    }

    /// Fraction of the endurance rating already used.
    public func enduranceUsed(endurance: Int64?) -> Double? {
        guard let endurance, endurance > 0 else { return nil }
        return Double(bytesWritten) / Double(endurance)
    }

    /// Whether today's writes exceed `budget` bytes per day (never, without a budget).
    public func isOverBudget(_ budget: Int64?, at now: Double) -> Bool {
        guard let budget, budget > 0, now - dayStartedAt < 86_400 else { return false }
        return bytesWrittenToday > budget
    }
}
