import Foundation
import HiFCCore
import Logging

extension FlashStore {
    /// Reads each region's superblock, scans its segments and maps the content-addressed slots
    /// found; slots of swapped sequences are left dead (reclaimed).
    func recover() throws {
        let now = Date().timeIntervalSince1970
        var report = FlashRecoveryReport()
        var scans: [[RegionScanner.SegmentScan]] = []
        var map = FlashSlotMap()
        var nextGeneration: UInt64 = 1
        for region in regions {
            let found = try region.readSuperblock()
            if case .valid(let superblock) = found {
                guard superblock.capacity == geometry.capacity, superblock.segmentSize == geometry.segmentSize else {
                    throw FlashStoreError.regionMismatch(
                        path: region.regionFile,
                        found: "capacity \(ByteSize(superblock.capacity)), segments of \(ByteSize(Int64(superblock.segmentSize)))",
                        configured: "capacity \(ByteSize(geometry.capacity)), segments of \(ByteSize(Int64(geometry.segmentSize)))")
                }
                state.superblocks.append(superblock)
                scans.append(try RegionScanner(region: region, geometry: geometry).scan(on: pool))
            } else {
                state.superblocks.append(
                    RegionSuperblock(
                        capacity: geometry.capacity, segmentSize: geometry.segmentSize,
                        wear: WearLedger(createdAt: now), updateCount: 0))
                scans.append([])
                if case .corrupt = found {
                    // Both copies damaged: the slots' geometry and the wear record are unknown.
                    // The region is a cache, so it starts afresh rather than keeping the server
                    // down; loudly, and counted, never silently.
                    report.regionsRebuilt += 1
                    logger.error(
                        "flash region \(region.regionFile): both superblock copies are damaged; the region starts afresh (its cached blocks are dropped and its wear record restarts now)"
                    )
                } else {
                    report.regionsCreated += 1
                }
            }
        }
        for (path, segments) in scans.enumerated() {
            for (segment, scan) in segments.enumerated() {
                if scan.resynchronized { report.segmentsResynchronized += 1 }
                for header in scan.slots {
                    nextGeneration = max(nextGeneration, header.generation + 1)
                    guard header.key.kind == .content else {
                        report.sequenceSlotsReclaimed += 1
                        continue
                    }
                    let location = FlashSlotLocation(
                        path: path, segment: segment, offset: header.slotOffset, length: header.payloadLength,
                        generation: header.generation, checksum: header.payloadChecksum)
                    if map.insert(header.key, at: location) != nil { report.supersededCopies += 1 }
                }
            }
        }
        report.contentSlotsRecovered = map.count
        var live: [[(slots: Int, bytes: Int)]] = scans.map { Array(repeating: (0, 0), count: $0.count) }
        for (_, location) in map.entries {
            live[location.path][location.segment].slots += 1
            live[location.path][location.segment].bytes += location.footprint
        }
        let firstSequence = UInt64(now * 1_000_000)
        state.allocators = scans.enumerated().map { path, segments in
            var allocator = FlashSegmentAllocator(geometry: geometry, firstSequence: segments.isEmpty ? firstSequence : 1)
            for (segment, scan) in segments.enumerated() where scan.sequence != 0 {
                allocator.restore(
                    segment: segment, sequence: scan.sequence, frontier: scan.frontier,
                    liveSlots: live[path][segment].slots, liveBytes: live[path][segment].bytes)
            }
            return allocator
        }
        state.map = map
        state.nextGeneration = nextGeneration
        state.recovery = report
    }
}
