import HiFCCore

/// The state and wear of one flash path, as `stats` reports it.
public struct FlashPathStats: Hashable, Sendable {
    /// The configured path.
    public var path: String
    /// The region file or device the store opened there.
    public var regionFile: String
    /// Bytes of the region.
    public var capacity: Int64
    /// Bytes of one segment.
    public var segmentSize: Int
    /// Segments in the region.
    public var segments: Int
    /// Segments holding no live slot.
    public var freeSegments: Int
    /// Segments closed with live slots in them.
    public var closedSegments: Int
    /// Slots mapped on this path.
    public var liveSlots: Int
    /// Footprint bytes (headers and padding included) of those slots.
    public var liveBytes: Int64
    /// Bytes written to this region since it was created (persisted across restarts).
    public var bytesWrittenSinceCreation: Int64
    /// When the region was created (seconds since 1970).
    public var createdAt: Double
    /// The observed write rate.
    public var bytesPerDay: Double
    /// The configured endurance rating.
    public var enduranceTBW: Int64?
    /// Predicted lifetime in years at the observed rate: TBW / (bytes per day x 365).
    public var lifetimeYears: Double?
    /// The configured daily write budget.
    public var dailyWriteBudget: Int64?
    /// Bytes written in the current budget day.
    public var bytesWrittenToday: Int64
    /// Whether today's writes exceed the budget.
    public var overDailyBudget: Bool
}

/// What the store has done since it opened, and the state of each path.
public struct FlashStoreStats: Hashable, Sendable {
    /// The write pattern since open: device bytes, write requests, sequential fraction and
    /// write amplification.
    public var writePattern: FlashWritePattern
    /// Bytes read from the devices since open (headers included).
    public var bytesRead: Int64
    /// Read requests since open.
    public var reads: Int64
    /// Gets that missed for a reason other than absence (checksum, header, I/O).
    public var corruptOrFailedReads: Int64
    /// Slots moved by compaction since open.
    public var compactedSlots: Int64
    /// Blocks mapped, all paths.
    public var liveSlots: Int
    /// Per path.
    public var paths: [FlashPathStats]
    /// What the start-up scan found.
    public var recovery: FlashRecoveryReport

    /// Device bytes written since open.
    public var bytesWritten: Int64 { writePattern.deviceBytes }
    /// Write requests since open.
    public var writeCount: Int64 { writePattern.writes }
    /// Fraction of written bytes in sequential extents of 1 MiB or more.
    public var sequentialFraction: Double { writePattern.sequentialFraction }
    /// Device bytes per payload byte.
    public var writeAmplification: Double? { writePattern.writeAmplification }
}

/// What the start-up scan of the regions found.
public struct FlashRecoveryReport: Hashable, Sendable {
    /// Content-addressed slots found valid and mapped again.
    public var contentSlotsRecovered: Int = 0
    /// Slots of swapped sequences found and reclaimed (their sequences died with the process).
    public var sequenceSlotsReclaimed: Int = 0
    /// Older copies of a key superseded by a newer generation.
    public var supersededCopies: Int = 0
    /// Segments in which the scan met a torn or foreign header and searched past it.
    public var segmentsResynchronized: Int = 0
    /// Regions created afresh (no region file, or one whose superblocks were never written).
    public var regionsCreated: Int = 0
    /// Regions found with both superblock copies damaged and started afresh (logged as errors).
    public var regionsRebuilt: Int = 0

    /// An empty report.
    public init() {}
}
