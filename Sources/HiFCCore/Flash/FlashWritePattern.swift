/// What the flash tier's writes look like to the SSD: how many bytes and requests, how much of it
/// in sequential extents of at least 1 MiB (the target is 99% or more), and the write
/// amplification (device bytes over payload bytes).
///
/// Writes are recorded in the order they are issued. Consecutive writes to the same path where
/// each starts at the previous one's end form one extent; an extent counts as sequential when it
/// reaches `FlashLayout.sequentialExtentSize`.
public struct FlashWritePattern: Hashable, Sendable {
    /// Bytes written to the devices (headers, padding, superblocks, compaction moves included).
    public private(set) var deviceBytes: Int64 = 0
    /// Write requests issued.
    public private(set) var writes: Int64 = 0
    /// Bytes the callers asked to store.
    public private(set) var payloadBytes: Int64 = 0
    private var closedSequentialBytes: Int64 = 0
    private var extentEnd: [Int: Int64] = [:]
    private var extentLength: [Int: Int64] = [:]

    /// An empty record.
    public init() {}

    /// Records one write request of `length` bytes at `offset` of path `path`.
    public mutating func recordWrite(path: Int, offset: Int64, length: Int) {
        deviceBytes += Int64(length)
        writes += 1
        if extentEnd[path] == offset {
            extentLength[path, default: 0] += Int64(length)
        } else {
            closeExtent(path)
            extentLength[path] = Int64(length)
        }
        extentEnd[path] = offset + Int64(length)
    }

    /// Records `bytes` of payload stored.
    public mutating func recordPayload(_ bytes: Int) { payloadBytes += Int64(bytes) }

    private mutating func closeExtent(_ path: Int) {
        if let length = extentLength[path], length >= Int64(FlashLayout.sequentialExtentSize) {
            closedSequentialBytes += length
        }
        extentLength[path] = 0
    }

    /// Bytes written in sequential extents, the extents still growing included.
    public var sequentialBytes: Int64 {
        closedSequentialBytes + extentLength.values.filter { $0 >= Int64(FlashLayout.sequentialExtentSize) }.reduce(0, +)
    }

    /// Fraction of device bytes written in sequential extents (1 before any write).
    public var sequentialFraction: Double {
        deviceBytes == 0 ? 1 : Double(sequentialBytes) / Double(deviceBytes)
    }

    /// Device bytes per payload byte (nil before any payload).
    public var writeAmplification: Double? {
        payloadBytes == 0 ? nil : Double(deviceBytes) / Double(payloadBytes)
    }
}
