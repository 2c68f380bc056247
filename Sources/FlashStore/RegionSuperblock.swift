import HiFCCore

/// The persistent identity and wear record of one region, kept in two 4 KiB copies at the start
/// of the region (offsets 0 and 4096) and written alternately, so a torn superblock write leaves
/// the other copy intact. The valid copy with the higher `updateCount` wins.
///
/// Layout (little-endian): magic "HIFCFLSH" u64, version u32, reserved u32, capacity i64,
/// segment size i64, created-at f64, bytes written i64, day-started-at f64, bytes written today
/// i64, update count u64, then a CRC32C u32 over the 76 bytes before it.
struct RegionSuperblock: Hashable, Sendable {
    /// What a region's two superblock pages hold.
    enum Found {
        /// A valid copy (the newer, when both are).
        case valid(RegionSuperblock)
        /// Both pages all zeros: never written (a region whose first start was cut short).
        case blank
        /// Neither page is a valid copy, and not both are blank: both copies are damaged.
        case corrupt
    }

    static let magic: UInt64 = 0x4853_4C46_4346_4948  // "HIFCFLSH"
    static let version: UInt32 = 1
    static let copyOffsets: [Int64] = [0, Int64(FlashLayout.pageSize)]

    var capacity: Int64
    var segmentSize: Int
    var wear: WearLedger
    var updateCount: UInt64

    func encode(into page: UnsafeMutableRawBufferPointer) {
        page.storeBytes(of: Self.magic.littleEndian, toByteOffset: 0, as: UInt64.self)
        page.storeBytes(of: Self.version.littleEndian, toByteOffset: 8, as: UInt32.self)
        page.storeBytes(of: 0, toByteOffset: 12, as: UInt32.self)
        page.storeBytes(of: capacity.littleEndian, toByteOffset: 16, as: Int64.self)
        page.storeBytes(of: Int64(segmentSize).littleEndian, toByteOffset: 24, as: Int64.self)
        page.storeBytes(of: wear.createdAt.bitPattern.littleEndian, toByteOffset: 32, as: UInt64.self)
        page.storeBytes(of: wear.bytesWritten.littleEndian, toByteOffset: 40, as: Int64.self)
        page.storeBytes(of: wear.dayStartedAt.bitPattern.littleEndian, toByteOffset: 48, as: UInt64.self)
        page.storeBytes(of: wear.bytesWrittenToday.littleEndian, toByteOffset: 56, as: Int64.self)
        page.storeBytes(of: updateCount.littleEndian, toByteOffset: 64, as: UInt64.self)
        page.storeBytes(of: 0, toByteOffset: 72, as: UInt32.self)
        let crc = CRC32C.checksum(of: UnsafeRawBufferPointer(rebasing: page[0..<76]))
        page.storeBytes(of: crc.littleEndian, toByteOffset: 76, as: UInt32.self)
    }

    /// The superblock in `page`, or nil when the page holds none (a new region, or a torn copy).
    init?(decoding page: UnsafeRawBufferPointer) {
        func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(littleEndian: page.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        guard page.count >= 80, load(0, UInt64.self) == Self.magic, load(8, UInt32.self) == Self.version,
            CRC32C.checksum(of: UnsafeRawBufferPointer(rebasing: page[0..<76])) == load(76, UInt32.self)
        else { return nil }
        capacity = load(16, Int64.self)
        segmentSize = Int(load(24, Int64.self))
        wear = WearLedger(
            createdAt: Double(bitPattern: load(32, UInt64.self)), bytesWritten: load(40, Int64.self),
            dayStartedAt: Double(bitPattern: load(48, UInt64.self)), bytesWrittenToday: load(56, Int64.self))
        updateCount = load(64, UInt64.self)
    }

    init(capacity: Int64, segmentSize: Int, wear: WearLedger, updateCount: UInt64) {
        self.capacity = capacity
        self.segmentSize = segmentSize
        self.wear = wear
        self.updateCount = updateCount
    }

    /// Where the next write of this superblock goes: the copy it does not overwrite.
    var nextCopyOffset: Int64 { Self.copyOffsets[Int(updateCount % 2)] }
}
