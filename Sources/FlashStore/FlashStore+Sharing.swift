import Foundation
import HiFCCore

#if canImport(Glibc)
    import Glibc
#endif

/// What a refresh of the other instances' regions found.
public struct FlashSharedChange: Sendable, Equatable {
    /// Content keys readable from other regions that were not before.
    public var found: [BlockKey]
    /// Content keys no longer in any other region (their slots were reused).
    public var gone: [BlockKey]
}

/// Content blocks of one namespace in one region (`hifc inspect`).
public struct FlashNamespaceCount: Sendable, Hashable {
    /// The namespace's tag in the slot headers (`PrefixNamespace.tag`); 0: written before tags.
    public var tag: UInt64
    /// What the region's writer recorded of the namespace (model digest, layout, dtype, backend).
    public var summary: String?
    /// Content slots of this namespace, and their payload bytes.
    public var blocks: Int
    public var bytes: Int64
}

/// The content blocks of one region file, by namespace.
public struct FlashRegionCensus: Sendable, Hashable {
    /// The region file or device.
    public var regionFile: String
    /// Content slots per namespace, most blocks first. Superseded copies of a key are counted once.
    public var namespaces: [FlashNamespaceCount]
}

extension FlashStore {
    // MARK: Sharing a directory

    /// Looks for other instances' region files in the shared directories and for the blocks
    /// they wrote since the last refresh (reading only their slot headers past the last scan).
    /// Blocking I/O on the store's pool; call it off latency-critical paths, at most every few
    /// seconds or on a miss. Nothing when the directory is not shared.
    public func refreshSharedRegions() -> FlashSharedChange {
        guard configuration.sharedDirectory else { return FlashSharedChange(found: [], gone: []) }
        let directories = regions.filter { $0.holderFile != nil }.map(\.path)
        let (change, errors) = shared.refresh(directories: directories, own: Set(regions.map(\.regionFile)), pool: pool)
        for error in errors { logger.warning("shared flash directory: \(error) (its blocks are not read)") }
        return FlashSharedChange(found: change.found, gone: change.gone)
    }

    /// Content keys readable from other instances' regions (as of the last refresh).
    public var sharedContentKeys: [BlockKey] { shared.keys }

    /// Other instances' regions open for reading, and reads of their blocks (all and failed).
    public var sharedStats: (regions: Int, reads: Int64, failedReads: Int64) {
        (shared.regionCount, shared.reads, shared.failedReads)
    }

    /// Reads blocks that other instances hold; a miss for keys none holds.
    func getShared(_ keys: [BlockKey], into targets: [FlashReadTarget]) async -> [FlashReadResult] {
        var results = [FlashReadResult](repeating: .miss(.absent), count: keys.count)
        var reads: [(index: Int, location: FlashSlotLocation, region: FlashRegionFile)] = []
        for (index, key) in keys.enumerated() {
            guard let (location, region) = shared.locate(key) else { continue }
            guard targets[index].bytes.count >= location.length else {
                results[index] = .miss(.bufferTooSmall(needed: location.length, given: targets[index].bytes.count))
                continue
            }
            reads.append((index, location, region))
        }
        guard !reads.isEmpty else { return results }
        let outcomes = ReadResultBox(count: reads.count)
        let jobs = reads.enumerated().map { n, read in
            readJob(
                key: keys[read.index], location: read.location, target: targets[read.index], results: outcomes, index: n,
                region: read.region)
        }
        _ = await pool.run(jobs)
        for (n, read) in reads.enumerated() {
            let result = outcomes.values[n]
            shared.recordRead(of: keys[read.index], at: read.location, succeeded: result.isHit)
            results[read.index] = result
        }
        return results
    }

    // MARK: Namespaces

    /// Sets the namespace tag written into the headers of the content slots this store writes
    /// from now on, and records `summary` for it beside each region file
    /// (`<region file>.namespaces`), where `hifc inspect` finds it.
    public func setContentNamespace(tag: UInt64, summary: String) {
        locked { $0.contentNamespaceTag = tag }
        for region in regions where region.holderFile != nil {
            let file = region.regionFile + ".namespaces"
            var known = Self.namespaceSummaries(file)
            guard known[tag] != summary else { continue }
            known[tag] = summary
            let text = known.sorted { $0.key < $1.key }.map { Self.hexTag($0.key) + " " + $0.value + "\n" }.joined()
            // Best effort: only `hifc inspect`'s descriptions depend on it.
            try? text.write(toFile: file, atomically: true, encoding: .utf8)
        }
    }

    /// Counts the content blocks of every region file in `directory` (every instance's) per
    /// namespace, reading only slot headers and without the regions' locks, so it works while
    /// servers run.
    public static func prefixCensus(directory: String) throws -> [FlashRegionCensus] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        let pool = IOThreadPool(width: 4)
        defer { pool.shutdown() }
        var census: [FlashRegionCensus] = []
        for name in names.sorted() where FlashStoreConfiguration.isRegionFileName(name) {
            let file = (directory as NSString).appendingPathComponent(name)
            let region = try FlashRegionFile(readingOnly: file)
            defer { region.close() }
            guard case .valid(let superblock) = try region.readSuperblock() else { continue }
            let geometry = try FlashRegionGeometry(capacity: superblock.capacity, segmentSize: superblock.segmentSize)
            var newest: [BlockKey: SlotHeader] = [:]
            for scan in try RegionScanner(region: region, geometry: geometry).scan(on: pool) {
                for header in scan.slots where header.key.kind == .content {
                    if (newest[header.key]?.generation ?? 0) <= header.generation { newest[header.key] = header }
                }
            }
            let summaries = namespaceSummaries(file + ".namespaces")
            var counts: [UInt64: FlashNamespaceCount] = [:]
            for header in newest.values {
                counts[
                    header.namespaceTag,
                    default: FlashNamespaceCount(tag: header.namespaceTag, summary: summaries[header.namespaceTag], blocks: 0, bytes: 0)
                ]
                .blocks += 1
                counts[header.namespaceTag]!.bytes += Int64(header.payloadLength)
            }
            census.append(FlashRegionCensus(regionFile: file, namespaces: counts.values.sorted { ($0.blocks, $0.tag) > ($1.blocks, $1.tag) }))
        }
        return census
    }

    /// A tag as inspect and the summaries file write it: 16 hexadecimal digits.
    public static func hexTag(_ tag: UInt64) -> String {
        let digits = String(tag, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The summaries file's lines: `<16 hex digits> <summary>`.
    private static func namespaceSummaries(_ file: String) -> [UInt64: String] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return [:] }
        var summaries: [UInt64: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2, let tag = UInt64(parts[0], radix: 16) { summaries[tag] = String(parts[1]) }
        }
        return summaries
    }
}
