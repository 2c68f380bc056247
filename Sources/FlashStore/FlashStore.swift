import Foundation
import HiFCCore
import Logging

/// The flash KV cache store: blocks of KV cache kept in a fixed, preallocated region per flash
/// path, written log-structured with large sequential O_DIRECT writes, each slot checksummed,
/// the mapping rebuilt by a scan after any restart.
///
/// Usage:
/// ```swift
/// let store = try FlashStore(configuration: .init(paths: ["/mnt/nvme0/hifc"], capacityPerPath: .gib(200)))
/// try await store.put([FlashPutItem(key: key, bytes: payload)])
/// let results = await store.get([key], into: [FlashReadTarget(buffer)])
/// ```
/// Threading: every method may be called from any task at once. A batch's I/O runs on the
/// store's pool of I/O threads; callers await it without blocking.
///
/// Guarantees: a `put` that returns has its bytes on the device (O_DIRECT) and mapped; a `put`
/// that throws leaves the previous mapping of its keys untouched. A `get` never returns bytes whose
/// header or CRC32C do not match what was put. Deletes are not journaled: after a restart, a
/// deleted content-addressed block may be found again (with its correct bytes); blocks of swapped
/// sequences are all reclaimed at restart.
///
/// The type is split by concern over `FlashStore+*.swift`: PutGet (batched put, get, delete),
/// GPUDirect (reserve, commit, locate for callers that move payloads themselves), Planning (slot
/// allocation and publishing), SlotIO (the I/O jobs and their checks), Compaction, Recovery (the
/// start-up scan), Sharing (other instances' regions in a shared directory, namespace tags),
/// Superblocks and Stats.
public final class FlashStore: @unchecked Sendable {
    /// The configuration the store was opened with.
    public let configuration: FlashStoreConfiguration
    /// The geometry of every region.
    public let geometry: FlashRegionGeometry
    let regions: [FlashRegionFile]
    let pool: IOThreadPool
    let faultInjector: (any IOFaultInjector)?
    let placement: FlashPlacement
    let logger: Logger
    let lock = NSLock()
    let superblockLock = NSLock()
    /// Extra-copy writes in flight (swarm placement), which `close` waits for.
    let copyWrites = DispatchGroup()
    /// Read and written only inside `locked` (internal, not private, for the extensions' files).
    var state: State
    /// Other instances' regions in a shared directory (empty unless `sharedDirectory`).
    let shared = SharedRegions()

    /// Everything the lock protects.
    struct State {
        var map = FlashSlotMap()
        var allocators: [FlashSegmentAllocator]
        var superblocks: [RegionSuperblock] = []
        var pattern = FlashWritePattern()
        var nextGeneration: UInt64 = 1
        var rotation = 0
        var bytesRead: Int64 = 0
        var reads: Int64 = 0
        var failedReads: Int64 = 0
        var compactedSlots: Int64 = 0
        var compacting = false
        var reservations: [UInt64: [PlannedSlot]] = [:]
        var nextReservation: UInt64 = 1
        var lastPersist: Double = 0
        var closed = false
        var recovery = FlashRecoveryReport()
        /// Swarm placement's state; nil under the other policies.
        var swarm: SwarmPlacement?
        /// Extra copies of blocks (swarm placement), besides the one in `map`; lost at restart.
        var copies: [BlockKey: [FlashSlotLocation]] = [:]
        /// Bytes of I/O issued and not yet done, per path.
        var queuedBytes: [Int64] = []
        /// Bytes read per path.
        var pathBytesRead: [Int64] = []
        /// Bytes of extra copies written since the store opened.
        var copyBytesWritten: Int64 = 0
        /// Written into the headers of content slots (`setContentNamespace`).
        var contentNamespaceTag: UInt64 = 0
    }

    /// A slot chosen for one block of a batch.
    struct PlannedSlot: Sendable {
        var key: BlockKey
        var path: Int
        var placement: FlashSegmentAllocator.Placement
        var length: Int
        var generation: UInt64
        var footprint: Int { FlashLayout.slotFootprint(payloadLength: length) }

        func location(checksum: UInt32) -> FlashSlotLocation {
            FlashSlotLocation(
                path: path, segment: placement.segment, offset: placement.offset,
                length: length, generation: generation, checksum: checksum)
        }
    }

    /// Opens (creating and preallocating where needed) the region on every path and rebuilds the
    /// slot map from them. Throws `FlashStoreError` naming the path and cause when a path is
    /// missing, unwritable, refuses O_DIRECT, lacks space or holds a region of other geometry.
    /// A region whose two superblock copies are both damaged is started afresh and logged to
    /// `logger` as an error (and counted in `stats.recovery.regionsRebuilt`); a region another
    /// process holds open is refused with `regionInUse` naming that process.
    public init(
        configuration: FlashStoreConfiguration, faultInjector: (any IOFaultInjector)? = nil, logger: Logger = Logger(label: "hifc.flash")
    ) throws {
        guard !configuration.paths.isEmpty else { throw FlashStoreError.noPaths }
        let geometry: FlashRegionGeometry
        do {
            geometry = try FlashRegionGeometry(
                capacity: configuration.capacityPerPath.bytes,
                segmentSize: Int(configuration.segmentSize.bytes))
        } catch {
            throw FlashStoreError.badGeometry(error.description)
        }
        var regions: [FlashRegionFile] = []
        do {
            for path in configuration.paths {
                regions.append(
                    try FlashRegionFile.open(
                        path: path, capacity: geometry.capacity, shared: configuration.sharedDirectory, fileName: configuration.regionName))
            }
        } catch {
            regions.forEach { $0.close() }
            throw error
        }
        self.configuration = configuration
        self.geometry = geometry
        self.regions = regions
        self.faultInjector = faultInjector
        self.logger = logger
        self.placement = FlashPlacement(policy: configuration.placement, pathCount: regions.count, gpuIndex: configuration.gpuIndex)
        self.pool = IOThreadPool(width: configuration.queueDepth)
        self.state = State(allocators: [])
        state.queuedBytes = Array(repeating: 0, count: regions.count)
        state.pathBytesRead = Array(repeating: 0, count: regions.count)
        if configuration.placement == .swarm {
            let budget = configuration.replicationBudget?.bytes ?? geometry.capacity * Int64(regions.count) / 10
            state.swarm = SwarmPlacement(pathCount: regions.count, settings: .init(replicationBudgetBytes: budget))
        }
        do {
            try recover()
        } catch {
            pool.shutdown()
            regions.forEach { $0.close() }
            throw error
        }
        persistSuperblocks(force: true)
    }

    deinit {
        if !state.closed {
            pool.shutdown()
            regions.forEach { $0.close() }
        }
    }

    // MARK: Locking

    func locked<T>(_ body: (inout State) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&state)
    }

    // MARK: Close

    /// Persists the wear ledgers and closes the regions; later puts throw `closed`, later gets miss.
    /// Call it after the last put and get have returned.
    public func close() {
        let wasOpen = locked { state -> Bool in
            defer { state.closed = true }
            return !state.closed
        }
        guard wasOpen else { return }
        copyWrites.wait()
        persistSuperblocks(force: true)
        shared.close()
        pool.shutdown()
        regions.forEach { $0.close() }
    }
}
