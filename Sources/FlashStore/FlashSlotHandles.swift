import HiFCCore

/// Slots reserved for a batch whose payloads the caller writes itself (the cuFile path, which
/// writes from GPU memory). Write each payload at its `payloadOffset` through its
/// `fileDescriptor`, then `commit` with the payloads' CRC32C values, or `abort`.
public struct FlashReservation: Sendable, Hashable {
    /// Identifies the reservation to `commit` and `abort`.
    public let id: UInt64
    /// One per block, in the order reserved.
    public let slots: [FlashReservedSlot]
}

/// Where the caller must write one reserved payload.
public struct FlashReservedSlot: Sendable, Hashable {
    /// The block.
    public let key: BlockKey
    /// The region's descriptor, opened O_RDWR | O_DIRECT; owned by the store, do not close it.
    public let fileDescriptor: Int32
    /// Byte offset of the payload; a multiple of 4 KiB.
    public let payloadOffset: Int64
    /// Payload bytes.
    public let length: Int
    /// The region file or device, for the writer's messages.
    public let regionFile: String
    /// `length` rounded up to 4 KiB: the caller may write this many bytes (padding included).
    public var paddedLength: Int { FlashLayout.padded(length) }
}

/// Where a stored payload lies, for a caller that reads it itself: read `length` bytes (or
/// `paddedLength`, for direct I/O) at `payloadOffset` of `fileDescriptor`, then compare
/// `CRC32C.checksum(of:)` with `checksum`. The slot is not held against reuse: a mismatch means
/// the block was deleted or moved meanwhile, and is a miss.
public struct FlashSlotLocator: Sendable, Hashable {
    /// The block.
    public let key: BlockKey
    /// The region's descriptor, opened O_RDWR | O_DIRECT; owned by the store, do not close it.
    public let fileDescriptor: Int32
    /// Byte offset of the payload; a multiple of 4 KiB.
    public let payloadOffset: Int64
    /// Payload bytes.
    public let length: Int
    /// The payload's CRC32C.
    public let checksum: UInt32
    /// The slot's write generation.
    public let generation: UInt64
    /// The region file or device.
    public let regionFile: String
    /// `length` rounded up to 4 KiB.
    public var paddedLength: Int { FlashLayout.padded(length) }
}
