import Foundation
import HiFCCore

extension FlashStore {
    /// The write pattern, reads, and per-path wear and lifetime.
    public var stats: FlashStoreStats {
        let now = Date().timeIntervalSince1970
        return locked { state in
            var liveSlots = [Int](repeating: 0, count: regions.count)
            for (_, location) in state.map.entries { liveSlots[location.path] += 1 }
            let tbw = configuration.enduranceTBW?.bytes
            let budget = configuration.dailyWriteBudget?.bytes
            let paths = regions.indices.map { path in
                let allocator = state.allocators[path]
                let wear = state.superblocks[path].wear
                return FlashPathStats(
                    path: regions[path].path, regionFile: regions[path].regionFile, capacity: geometry.capacity,
                    segmentSize: geometry.segmentSize, segments: geometry.segmentCount, freeSegments: allocator.freeSegmentCount,
                    closedSegments: allocator.segments.filter { $0.state == .closed }.count, liveSlots: liveSlots[path],
                    liveBytes: Int64(allocator.liveBytes), bytesWrittenSinceCreation: wear.bytesWritten, createdAt: wear.createdAt,
                    bytesPerDay: wear.bytesPerDay(at: now), enduranceTBW: tbw, lifetimeYears: wear.lifetimeYears(endurance: tbw, at: now),
                    dailyWriteBudget: budget, bytesWrittenToday: wear.bytesWrittenToday, overDailyBudget: wear.isOverBudget(budget, at: now))
            }
            return FlashStoreStats(
                writePattern: state.pattern, bytesRead: state.bytesRead, reads: state.reads,
                corruptOrFailedReads: state.failedReads, compactedSlots: state.compactedSlots,
                liveSlots: state.map.count, paths: paths, recovery: state.recovery)
        }
    }

    /// Bytes written to the regions in the current budget day, summed over paths (the wear
    /// ledgers' count, headers and padding included): the one daily counter that write budgets
    /// are kept against.
    public var bytesWrittenToday: Int64 {
        let now = Date().timeIntervalSince1970
        return locked { state in
            state.superblocks.reduce(0) { $0 + (now - $1.wear.dayStartedAt < 86_400 ? $1.wear.bytesWrittenToday : 0) }
        }
    }

    /// Bytes of all regions together.
    public var totalCapacity: Int64 { geometry.capacity * Int64(regions.count) }

    /// Per path, each segment's accounting (for `hifc inspect`).
    public var segments: [[FlashSegmentAllocator.Segment]] {
        locked { $0.allocators.map(\.segments) }
    }
}
