import Foundation
import HiFCCore

/// Everything the flash store is told at start. The command line (`--flash-path`,
/// `--flash-capacity`, `--flash-tbw`, ...), the environment (`HIFC_FLASH_PATHS`) and the YAML
/// config (`flash.paths`, ...) all map onto this value.
public struct FlashStoreConfiguration: Hashable, Sendable {
    /// Directories (a region file `regionName` is made in each) or raw block devices.
    public var paths: [String]
    /// Bytes of the region on each path: the size of the SSD's pSLC area.
    public var capacityPerPath: ByteSize
    /// Bytes of one log segment.
    public var segmentSize: ByteSize
    /// How a batch's blocks are spread over the paths.
    public var placement: FlashPlacementPolicy
    /// Bytes the extra copies of swarm placement may take on all paths together; nil: a tenth of
    /// the regions' capacity.
    public var replicationBudget: ByteSize?
    /// The GPU this store serves (affinity placement picks path `gpuIndex % paths.count`).
    public var gpuIndex: Int
    /// Endurance rating of each region (`--flash-tbw`, e.g. 6000TB for 200 GiB of pSLC).
    public var enduranceTBW: ByteSize?
    /// Optional daily write budget per path; `stats` reports when a path exceeds it.
    public var dailyWriteBudget: ByteSize?
    /// Requests in flight at once (threads of the I/O pool).
    public var queueDepth: Int
    /// A closed segment whose live fraction is below this is compacted when space runs short.
    public var compactionThreshold: Double
    /// Compaction starts when fewer segments than this are free on a path.
    public var minimumFreeSegments: Int
    /// The file made inside each directory path to hold this store's region: `regionFileName`,
    /// or one name per store where several share a directory (the replicas of a data-parallel
    /// server, each with its own region).
    public var regionName: String

    /// Whether several instances (server processes on one host, or hosts sharing a file system)
    /// use the directories at once: each writes its own region file there and reads the others'
    /// content (prefix) blocks read-only. Off: a second instance on a directory is refused.
    public var sharedDirectory: Bool = false

    /// The file made inside a directory path to hold its region, unless `regionName` says otherwise.
    public static let regionFileName = "hifc-flash.region"

    /// Most instances sharing one directory.
    public static let maxSharedInstances = 64

    /// The region file of the `instance`-th instance in a shared directory (1: `hifc-flash.region`,
    /// 2: `hifc-flash-2.region`, ...).
    public static func regionFileName(instance: Int) -> String {
        instance == 1 ? regionFileName : "hifc-flash-\(instance).region"
    }

    /// Whether `name` is a region file of some instance in a shared directory.
    public static func isRegionFileName(_ name: String) -> Bool {
        if name == regionFileName { return true }
        guard name.hasPrefix("hifc-flash-"), name.hasSuffix(".region") else { return false }
        return Int(name.dropFirst("hifc-flash-".count).dropLast(".region".count)).map { $0 >= 2 } ?? false
    }

    /// Slots a segment raised by `segmentSizeHolding(blockBytes:)` holds.
    public static let slotsPerRaisedSegment = 4

    /// A segment size for KV blocks of `blockBytes`: nil where one block and its slot header
    /// fit `segmentSize`; else the smallest whole MiB holding `slotsPerRaisedSegment` of them. A
    /// segment smaller than a block would refuse every write of it (an 8B model's 64-token bf16
    /// block is 8 MiB, and a slot adds a 4 KiB header to it).
    public func segmentSizeHolding(blockBytes: Int) -> ByteSize? {
        let slot = Int64(FlashLayout.slotFootprint(payloadLength: blockBytes))
        guard slot > segmentSize.bytes else { return nil }
        let mib: Int64 = 1 << 20
        return .mib((slot * Int64(Self.slotsPerRaisedSegment) + mib - 1) / mib)
    }

    /// A configuration with the defaults: 256 MiB segments, stripe placement, queue depth 16.
    public init(
        paths: [String], capacityPerPath: ByteSize, segmentSize: ByteSize = .mib(256),
        placement: FlashPlacementPolicy = .stripe, gpuIndex: Int = 0, enduranceTBW: ByteSize? = nil,
        dailyWriteBudget: ByteSize? = nil, queueDepth: Int = 16, compactionThreshold: Double = 0.25,
        minimumFreeSegments: Int = 2, regionName: String = FlashStoreConfiguration.regionFileName, replicationBudget: ByteSize? = nil
    ) {
        self.paths = paths
        self.capacityPerPath = capacityPerPath
        self.segmentSize = segmentSize
        self.placement = placement
        self.gpuIndex = gpuIndex
        self.enduranceTBW = enduranceTBW
        self.dailyWriteBudget = dailyWriteBudget
        self.queueDepth = queueDepth
        self.compactionThreshold = compactionThreshold
        self.minimumFreeSegments = minimumFreeSegments
        self.regionName = regionName
        self.replicationBudget = replicationBudget
    }

    /// Paths from a comma-separated list (`--flash-path /a,/b`, `HIFC_FLASH_PATHS`), blanks dropped.
    public static func parsePaths(_ list: String) -> [String] {
        list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
