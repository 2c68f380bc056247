import FlashStore
import Foundation
import HiFCCore

/// The store's half of `hifc bench flash`: a scratch region sized for the run, written with
/// batches of `queueDepth` blocks from two tasks at once (so the I/O pool never idles between
/// batches), then read back and verified the same way.
public struct FlashStoreBenchmark: Sendable {
    /// The directory measured; a scratch region is made in `hifc-bench-store` inside it.
    public var directory: String
    /// Payload bytes written, then read.
    public var totalBytes: Int64
    /// Bytes per block (per request).
    public var blockSize: Int
    /// Blocks per batch and I/O threads.
    public var queueDepth: Int

    /// A benchmark of `totalBytes` in blocks of `blockSize` in `directory`.
    public init(directory: String, totalBytes: Int64, blockSize: Int, queueDepth: Int) {
        self.directory = directory
        self.totalBytes = totalBytes
        self.blockSize = blockSize
        self.queueDepth = queueDepth
    }

    /// Bandwidths in decimal GB/s and the store's write pattern.
    public struct Result: Hashable, Sendable {
        /// Payload bytes per second through `put`.
        public var writeGBps: Double
        /// Payload bytes per second through `get` (checksums verified).
        public var readGBps: Double
        /// Fraction of device bytes in sequential extents of 1 MiB or more.
        public var sequentialFraction: Double
        /// Device bytes over payload bytes.
        public var writeAmplification: Double
        /// Write requests issued.
        public var writes: Int64
        /// Device bytes written.
        public var bytesWritten: Int64
    }

    static let tasks = 2

    static func key(_ index: Int) -> BlockKey { .sequence(1, block: index) }

    /// Blocks the benchmark wrote did not all read back intact.
    public struct ReadBackFailed: Error, CustomStringConvertible {
        var misses: Int
        var blocks: Int
        var directory: String
        public var description: String { "\(misses) of \(blocks) blocks written to \(directory) did not read back intact" }
    }

    /// Writes, then reads back and verifies, every block; removes the scratch region.
    public func run() async throws -> Result {
        let scratch = (directory as NSString).appendingPathComponent("hifc-bench-store")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let blocks = Int(totalBytes / Int64(blockSize))
        let segmentSize = max(256 << 20, FlashLayout.padded(4 * FlashLayout.slotFootprint(payloadLength: blockSize)))
        let perSegment = segmentSize / FlashLayout.slotFootprint(payloadLength: blockSize)
        let segments = (blocks + perSegment - 1) / perSegment + 3
        let capacity = Int64(FlashLayout.superblockAreaSize) + Int64(segments) * Int64(segmentSize)
        let store = try FlashStore(
            configuration: FlashStoreConfiguration(
                paths: [scratch], capacityPerPath: ByteSize(capacity), segmentSize: ByteSize(Int64(segmentSize)),
                placement: .affinity, queueDepth: queueDepth))
        defer { store.close() }

        let sources = (0..<4).map { _ in DirectIOBenchmark.randomBuffer(blockSize) }
        let batches = stride(from: 0, to: blocks, by: queueDepth).map { Array($0..<min($0 + queueDepth, blocks)) }

        let writeStart = DispatchTime.now().uptimeNanoseconds
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<Self.tasks {
                group.addTask {
                    for batch in batches.indices where batch % Self.tasks == task {
                        try await store.put(
                            batches[batch].map {
                                FlashPutItem(key: Self.key($0), bytes: UnsafeRawBufferPointer(sources[$0 % sources.count].bytes))
                            })
                    }
                }
            }
            try await group.waitForAll()
        }
        let writeSeconds = Double(DispatchTime.now().uptimeNanoseconds - writeStart) / 1e9
        let stats = store.stats

        let readStart = DispatchTime.now().uptimeNanoseconds
        let misses = try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<Self.tasks {
                group.addTask {
                    let sinks = (0..<queueDepth).map { _ in AlignedBuffer(count: blockSize, zeroed: false) }
                    var misses = 0
                    for batch in batches.indices where batch % Self.tasks == task {
                        let keys = batches[batch].map(Self.key)
                        let results = await store.get(keys, into: keys.indices.map { FlashReadTarget(sinks[$0].bytes) })
                        misses += results.filter { !$0.isHit }.count
                    }
                    return misses
                }
            }
            return try await group.reduce(0, +)
        }
        let readSeconds = Double(DispatchTime.now().uptimeNanoseconds - readStart) / 1e9
        if misses > 0 { throw ReadBackFailed(misses: misses, blocks: blocks, directory: directory) }
        let bytes = Double(blocks) * Double(blockSize)
        return Result(
            writeGBps: bytes / writeSeconds / 1e9, readGBps: bytes / readSeconds / 1e9,
            sequentialFraction: stats.sequentialFraction, writeAmplification: stats.writeAmplification ?? 0,
            writes: stats.writeCount, bytesWritten: stats.bytesWritten)
    }
}
