import ArgumentParser
import FlashStore
import Foundation
import HiFCCore

/// `hifc inspect`: what the flash regions hold: segments, live slots, bytes written and the
/// predicted lifetime. It opens the regions with the settings recorded in them and runs the
/// start-up scan, so it takes each region's writer lock: on a region a server holds it fails,
/// naming the server's process (its /metrics has the live figures). First, without any lock,
/// it counts the prefix blocks of every region file in each directory (every instance's, in a
/// shared directory) per namespace: the model, KV layout and backend they were written for.
struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show the flash regions: segments, live slots, bytes written, predicted lifetime."
    )

    @Option(name: .customLong("flash-path"), help: "Flash paths, comma-separated (default: $HIFC_FLASH_PATHS).")
    var flashPath: String?

    @Option(name: .customLong("flash-tbw"), help: "Endurance rating per path for the lifetime estimate, e.g. 6000TB.")
    var flashTBW: String?

    @Flag(help: "List every segment that holds slots.")
    var segments = false

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() async throws {
        let paths = FlashStoreConfiguration.parsePaths(flashPath ?? ProcessInfo.processInfo.environment["HIFC_FLASH_PATHS"] ?? "")
        guard !paths.isEmpty else { throw ValidationError("pass --flash-path DIR (or set HIFC_FLASH_PATHS)") }
        let census = try paths.filter(Self.isDirectory).flatMap { try FlashStore.prefixCensus(directory: $0) }
        if !json { printCensus(census) }
        let tbw: ByteSize?
        do { tbw = try flashTBW.map { try ByteSize(parsing: $0) } } catch { throw ValidationError("--flash-tbw: \(error)") }
        var geometry: FlashRegionGeometry?
        for path in paths {
            guard let found = try FlashStore.existingGeometry(at: path) else {
                let file = (path as NSString).appendingPathComponent(FlashStoreConfiguration.regionFileName)
                if FileManager.default.fileExists(atPath: file) {
                    throw ValidationError(
                        "\(file) exists but its superblocks were never written (a first start cut short); `hifc serve` initializes it")
                }
                throw ValidationError("no flash region at \(path) (expected \(FlashStoreConfiguration.regionFileName) or a block device holding one)")
            }
            if let geometry, geometry != found {
                throw ValidationError("the regions differ in capacity or segment size; inspect them one at a time")
            }
            geometry = found
        }
        let store = try FlashStore(
            configuration: FlashStoreConfiguration(
                paths: paths, capacityPerPath: ByteSize(geometry!.capacity), segmentSize: ByteSize(Int64(geometry!.segmentSize)),
                enduranceTBW: tbw, queueDepth: 4))
        defer { store.close() }
        let stats = store.stats
        let layout = store.segments
        if json {
            try printJSON(stats, layout, census)
            return
        }
        for (index, path) in stats.paths.enumerated() {
            print("region \(path.regionFile)")
            print("  capacity \(ByteSize(path.capacity)) in \(path.segments) segments of \(ByteSize(Int64(path.segmentSize)))")
            print("  segments: \(path.freeSegments) free, \(path.closedSegments) closed with live slots")
            print("  live slots \(path.liveSlots), \(ByteSize(path.liveBytes)) live")
            let created = Date(timeIntervalSince1970: path.createdAt)
            print("  written since creation (\(created)): \(ByteSize(path.bytesWrittenSinceCreation)), \(ByteSize(Int64(path.bytesPerDay)))/day")
            if let years = path.lifetimeYears, let tbw = path.enduranceTBW {
                print("  predicted lifetime \(String(format: "%.1f", years)) years at \(String(format: "%.0f", Double(tbw) / 1e12)) TBW")
            } else {
                print("  predicted lifetime: pass --flash-tbw to estimate")
            }
            if segments {
                for (number, segment) in layout[index].enumerated() where segment.state != .free {
                    let live = Double(segment.liveBytes) / Double(path.segmentSize) * 100
                    print("    segment \(number): \(segment.state.rawValue), \(segment.liveSlots) slots, \(String(format: "%.1f", live))% live")
                }
            }
        }
        let r = stats.recovery
        print(
            "scan: \(r.contentSlotsRecovered) content blocks, \(r.sequenceSlotsReclaimed) swapped-sequence blocks reclaimed, \(r.supersededCopies) superseded copies, \(r.segmentsResynchronized) segments searched past a torn write"
        )
    }

    private static func isDirectory(_ path: String) -> Bool {
        var directory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &directory) && directory.boolValue
    }

    private func printCensus(_ census: [FlashRegionCensus]) {
        for region in census {
            let total = region.namespaces.reduce(0) { $0 + $1.blocks }
            print("prefix blocks in \(region.regionFile): \(total)")
            for namespace in region.namespaces {
                let what = namespace.tag == 0 ? "written before namespace tags" : namespace.summary ?? "no description recorded"
                print("  namespace \(FlashStore.hexTag(namespace.tag)): \(namespace.blocks) blocks, \(ByteSize(namespace.bytes)) (\(what))")
            }
        }
    }

    private func printJSON(_ stats: FlashStoreStats, _ layout: [[FlashSegmentAllocator.Segment]], _ census: [FlashRegionCensus]) throws {
        struct Segment: Encodable {
            var index: Int
            var state: String
            var live_slots: Int
            var live_bytes: Int
        }
        struct Path: Encodable {
            var path: String, region_file: String, capacity: Int64, segment_size: Int, segments: Int, free_segments: Int
            var live_slots: Int, live_bytes: Int64, bytes_written_since_creation: Int64, created_at: Double
            var bytes_per_day: Double, tbw: Int64?, lifetime_years: Double?, used_segments: [Segment]
        }
        struct Namespace: Encodable {
            var tag: String, summary: String?, blocks: Int, bytes: Int64
        }
        struct Region: Encodable {
            var region_file: String, namespaces: [Namespace]
        }
        struct Report: Encodable {
            var paths: [Path]
            var content_slots_recovered: Int, sequence_slots_reclaimed: Int, superseded_copies: Int
            var prefix_blocks: [Region]
        }
        let paths = stats.paths.enumerated().map { i, p in
            Path(
                path: p.path, region_file: p.regionFile, capacity: p.capacity, segment_size: p.segmentSize, segments: p.segments,
                free_segments: p.freeSegments, live_slots: p.liveSlots, live_bytes: p.liveBytes,
                bytes_written_since_creation: p.bytesWrittenSinceCreation, created_at: p.createdAt, bytes_per_day: p.bytesPerDay,
                tbw: p.enduranceTBW, lifetime_years: p.lifetimeYears,
                used_segments: layout[i].enumerated().filter { $0.element.state != .free }.map {
                    Segment(index: $0.offset, state: $0.element.state.rawValue, live_slots: $0.element.liveSlots, live_bytes: $0.element.liveBytes)
                })
        }
        let r = stats.recovery
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(
            String(
                decoding: try encoder.encode(
                    Report(
                        paths: paths, content_slots_recovered: r.contentSlotsRecovered,
                        sequence_slots_reclaimed: r.sequenceSlotsReclaimed,
                        superseded_copies: r.supersededCopies,
                        prefix_blocks: census.map { region in
                            Region(
                                region_file: region.regionFile,
                                namespaces: region.namespaces.map {
                                    Namespace(tag: FlashStore.hexTag($0.tag), summary: $0.summary, blocks: $0.blocks, bytes: $0.bytes)
                                })
                        })), as: UTF8.self))
    }
}
