/// The fixed geometry of the flash tier's on-disk format, shared by the pure allocator and the
/// I/O store.
///
/// A region (one per flash path) starts with a 1 MiB superblock area, then is cut into
/// equal segments. A segment holds slots back to back; a slot is a 4 KiB header followed by the
/// payload padded to 4 KiB, so every offset and length the store issues suits O_DIRECT.
public enum FlashLayout {
    /// The alignment of every offset, length and buffer address in the direct-I/O data path.
    public static let pageSize = 4096
    /// Bytes of a slot header (one page; only its first bytes are used).
    public static let slotHeaderSize = 4096
    /// Bytes reserved at the start of a region for its superblock copies.
    public static let superblockAreaSize = 1 << 20
    /// Writes of at least this many contiguous bytes count as sequential in the write pattern.
    public static let sequentialExtentSize = 1 << 20

    /// `length` rounded up to a whole number of pages.
    public static func padded(_ length: Int) -> Int {
        (length + pageSize - 1) / pageSize * pageSize
    }

    /// Bytes a slot of `payloadLength` occupies in a segment: header plus padded payload.
    public static func slotFootprint(payloadLength: Int) -> Int {
        slotHeaderSize + padded(payloadLength)
    }
}

/// The size of one region and how it is cut into segments.
public struct FlashRegionGeometry: Hashable, Sendable {
    /// Bytes of the region, superblock area included.
    public let capacity: Int64
    /// Bytes of one segment.
    public let segmentSize: Int

    /// Why a capacity and segment size do not make a usable region.
    public enum GeometryError: Error, CustomStringConvertible, Equatable {
        case segmentSizeNotAligned(Int)
        case segmentSizeTooSmall(Int)
        case capacityTooSmall(capacity: Int64, segmentSize: Int)

        public var description: String {
            switch self {
            case .segmentSizeNotAligned(let s):
                return "flash segment size \(s) bytes is not a multiple of \(FlashLayout.pageSize)"
            case .segmentSizeTooSmall(let s):
                return "flash segment size \(ByteSize(Int64(s))) is below the 1 MiB minimum"
            case .capacityTooSmall(let c, let s):
                let smallest = ByteSize(Int64(FlashLayout.superblockAreaSize + s))
                return
                    "flash capacity \(ByteSize(c)) holds no segment of \(ByteSize(Int64(s))) after the 1 MiB superblock area; the smallest capacity that works with this segment size is \(smallest): raise --flash-capacity or lower --flash-segment-size"
            }
        }
    }

    /// The smallest segment.
    public static let minimumSegmentSize = 1 << 20

    /// A geometry; the segment size must be a page multiple of at least 1 MiB and the capacity
    /// must hold the superblock area and at least one segment.
    public init(capacity: Int64, segmentSize: Int) throws(GeometryError) {
        guard segmentSize % FlashLayout.pageSize == 0 else { throw .segmentSizeNotAligned(segmentSize) }
        guard segmentSize >= Self.minimumSegmentSize else { throw .segmentSizeTooSmall(segmentSize) }
        guard capacity >= Int64(FlashLayout.superblockAreaSize + segmentSize) else {
            throw .capacityTooSmall(capacity: capacity, segmentSize: segmentSize)
        }
        self.capacity = capacity
        self.segmentSize = segmentSize
    }

    /// Whole segments that fit after the superblock area.
    public var segmentCount: Int {
        Int((capacity - Int64(FlashLayout.superblockAreaSize)) / Int64(segmentSize))
    }

    /// Byte offset in the region where segment `index` starts.
    public func segmentStart(_ index: Int) -> Int64 {
        Int64(FlashLayout.superblockAreaSize) + Int64(index) * Int64(segmentSize)
    }

    /// The segment that holds region byte `offset` (which must lie in a segment).
    public func segment(containing offset: Int64) -> Int {
        Int((offset - Int64(FlashLayout.superblockAreaSize)) / Int64(segmentSize))
    }
}

/// Where one block's slot lives: the answer of the slot map.
public struct FlashSlotLocation: Hashable, Sendable {
    /// Index of the flash path (region) in the configuration's path list.
    public var path: Int
    /// Segment within that region.
    public var segment: Int
    /// Byte offset of the slot header in the region; the payload follows one header later.
    public var offset: Int64
    /// Payload bytes (before padding).
    public var length: Int
    /// Write generation: a later put of the same key has a higher one.
    public var generation: UInt64
    /// CRC32C of the payload, as recorded in the slot header.
    public var checksum: UInt32

    /// A location from its parts.
    public init(path: Int, segment: Int, offset: Int64, length: Int, generation: UInt64, checksum: UInt32) {
        self.path = path
        self.segment = segment
        self.offset = offset
        self.length = length
        self.generation = generation
        self.checksum = checksum
    }

    /// Byte offset of the payload in the region.
    public var payloadOffset: Int64 { offset + Int64(FlashLayout.slotHeaderSize) }
    /// Bytes the slot occupies in its segment.
    public var footprint: Int { FlashLayout.slotFootprint(payloadLength: length) }
}
