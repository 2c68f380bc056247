import Foundation
import HiFCCore

/// Other instances' regions in a shared flash directory, read without their locks: what each
/// holds (from incremental scans of its slot headers) and which of their content blocks this
/// instance may read.
///
/// The owner of a region keeps writing, compacting and reusing its segments; nothing here stops
/// it. A slot read from another region is therefore checked like any other (header, generation,
/// CRC32C), and a mismatch is a miss: the slot was reused, or its write was torn. Slots that
/// failed are remembered and not offered again.
final class SharedRegions: @unchecked Sendable {
    /// One other instance's region file.
    final class Region {
        let file: FlashRegionFile
        let geometry: FlashRegionGeometry
        /// The last scan, continued by the next one.
        var segments: [RegionScanner.SegmentScan] = []

        init(file: FlashRegionFile, geometry: FlashRegionGeometry) {
            self.file = file
            self.geometry = geometry
        }
    }

    /// What a refresh learned: content keys now readable that were not, and keys gone.
    struct Change: Sendable, Equatable {
        var found: [BlockKey] = []
        var gone: [BlockKey] = []
    }

    private let lock = NSLock()
    /// Serializes refreshes, which do their I/O outside `lock`.
    private let refreshLock = NSLock()
    private var regions: [Region] = []
    /// Readable content blocks; a location's `path` is an index into `regions`.
    private var map: [BlockKey: FlashSlotLocation] = [:]
    /// Slots that failed a read: (region, offset, generation).
    private var rejected: Set<RejectedSlot> = []
    private var closed = false
    /// Reads of other regions' blocks, and those that failed their checks.
    private(set) var reads: Int64 = 0
    private(set) var failedReads: Int64 = 0

    private struct RejectedSlot: Hashable {
        var region: Int
        var offset: Int64
        var generation: UInt64
    }

    /// Finds region files in `directories` that are not `own`, opens new ones read-only, scans
    /// each (continuing the last scan) and returns what changed.
    func refresh(directories: [String], own: Set<String>, pool: IOThreadPool) -> (change: Change, errors: [String]) {
        refreshLock.lock()
        defer { refreshLock.unlock() }
        var errors: [String] = []
        guard var regions = lock.withLock({ closed ? nil : self.regions }) else { return (Change(), []) }
        let known = Set(regions.map(\.file.regionFile))
        for directory in directories {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for name in names.sorted() where FlashStoreConfiguration.isRegionFileName(name) {
                let file = (directory as NSString).appendingPathComponent(name)
                guard !own.contains(file), !known.contains(file) else { continue }
                do {
                    let region = try FlashRegionFile(readingOnly: file)
                    // A region whose owner has not written its superblock yet is left for later.
                    guard case .valid(let superblock) = try region.readSuperblock(),
                        let geometry = try? FlashRegionGeometry(capacity: superblock.capacity, segmentSize: superblock.segmentSize)
                    else {
                        region.close()
                        continue
                    }
                    regions.append(Region(file: region, geometry: geometry))
                } catch {
                    errors.append("\(file): \(error)")
                }
            }
        }
        var found: [BlockKey: FlashSlotLocation] = [:]
        let rejected = lock.withLock { self.rejected }
        for (index, region) in regions.enumerated() {
            do {
                let previous = region.segments.isEmpty ? nil : region.segments
                region.segments = try RegionScanner(region: region.file, geometry: region.geometry).scan(on: pool, previous: previous)
            } catch {
                errors.append("\(region.file.regionFile): \(error)")
            }
            for (segment, scan) in region.segments.enumerated() {
                for header in scan.slots where header.key.kind == .content {
                    guard !rejected.contains(RejectedSlot(region: index, offset: header.slotOffset, generation: header.generation))
                    else { continue }
                    found[header.key] = FlashSlotLocation(
                        path: index, segment: segment, offset: header.slotOffset, length: header.payloadLength,
                        generation: header.generation, checksum: header.payloadChecksum)
                }
            }
        }
        // `close` waits for `refreshLock`, so the store is still open here.
        return lock.withLock {
            let change = Change(found: found.keys.filter { map[$0] == nil }, gone: map.keys.filter { found[$0] == nil })
            self.regions = regions
            map = found
            return (change, errors)
        }
    }

    /// Where another instance holds `key`, and that region's file.
    func locate(_ key: BlockKey) -> (location: FlashSlotLocation, region: FlashRegionFile)? {
        lock.withLock {
            guard !closed, let location = map[key] else { return nil }
            return (location, regions[location.path].file)
        }
    }

    /// Every content key readable from other regions now.
    var keys: [BlockKey] { lock.withLock { Array(map.keys) } }

    /// Counts a read of another region's slot; a failed one is forgotten and not offered again.
    func recordRead(of key: BlockKey, at location: FlashSlotLocation, succeeded: Bool) {
        lock.withLock {
            reads += 1
            guard !succeeded else { return }
            failedReads += 1
            rejected.insert(RejectedSlot(region: location.path, offset: location.offset, generation: location.generation))
            if map[key] == location { map[key] = nil }
        }
    }

    /// Regions open for reading.
    var regionCount: Int { lock.withLock { regions.count } }

    /// Closes the other regions' files; later lookups find nothing.
    func close() {
        refreshLock.lock()
        defer { refreshLock.unlock() }
        let open = lock.withLock { () -> [Region] in
            closed = true
            map = [:]
            return regions
        }
        open.forEach { $0.file.close() }
    }
}
