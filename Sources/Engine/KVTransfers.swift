import Backend
import Foundation
import HiFCCore
import Logging
import Synchronization

/// A planned transfer that finished.
public struct TransferOutcome: Sendable {
    /// Which transfer.
    public var id: TransferID
    /// Device to tier, or back.
    public var direction: TransferDirection
    /// The tier.
    public var tier: SwapTier
    /// Whether it served a swap (of a preempted sequence) or the prefix cache.
    public var forPrefixCache: Bool
    /// Blocks planned.
    public var blocks: Int
    /// Leading blocks moved intact (a write is all or nothing).
    public var intactBlocks: Int
    /// Bytes moved intact.
    public var bytes: Int
    /// Seconds from the start of the I/O to its end.
    public var seconds: Double
    /// Why not every block moved; nil when all did.
    public var failure: KVTierError?
    /// Of a read's intact blocks, those copied from a swap prefetch's host copies rather than
    /// read from the tier (their bytes were counted by the prefetch).
    public var prefetchedBlocks = 0
}

/// A swap prefetch whose read ended.
public struct PrefetchOutcome: Sendable {
    /// Which prefetch.
    public var id: TransferID
    /// The tier read.
    public var tier: SwapTier
    /// Leading blocks read intact into host memory.
    public var intactBlocks: Int
    /// Bytes read intact.
    public var bytes: Int
    /// Seconds from the start of the read to its end.
    public var seconds: Double
    /// Why not every block arrived; nil when all did (the swap-in reads the rest from the tier).
    public var failure: KVTierError?
}

/// What the transfers tell the engine, from their tasks.
public enum TransferEvent: Sendable {
    /// A write's blocks were copied off their device blocks into host staging: the device blocks
    /// may be reused while the write goes on from the copy.
    case staged(TransferID)
    /// A transfer ended.
    case finished(TransferOutcome)
    /// A swap prefetch's read into host memory ended.
    case prefetched(PrefetchOutcome)
}

/// The blocks a swap prefetch read into host memory, by key, until the swap-in that resumes
/// their sequence copies them to the device (or the prefetch is dropped).
final class PrefetchedBlocks: @unchecked Sendable {
    // Written by the prefetch's task before it returns, read only after (through the task's value).
    private let staging: HostStagingBuffers
    private let index: [BlockKey: Int]

    /// `staging` (a buffer per key, given back when this goes), the first `intact` of them
    /// filled by `fill`.
    init(keys: [BlockKey], staging: HostStagingBuffers, fill: ([UnsafeMutableRawBufferPointer]) async -> Int) async {
        self.staging = staging
        let intact = await fill(staging.buffers)
        index = Dictionary(keys.prefix(intact).enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The host copy of the block stored under `key`, if the prefetch read it intact.
    func bytes(of key: BlockKey) -> UnsafeRawBufferPointer? {
        index[key].map { UnsafeRawBufferPointer(staging.buffers[$0]) }
    }
}

/// Carries out a plan's transfers between the device's KV pool and the tiers, each in a task of
/// its own, so the I/O overlaps the engine's compute (which runs on the step thread).
///
/// Where the pool's blocks are host memory (the CPU backend) a tier reads and writes them in
/// place. A pool that lives on a GPU moves its blocks through the backend's swappers: flash
/// transfers through its `DeviceKVSwapper` (GPUDirect Storage), DRAM transfers through its
/// `DeviceHostSwapper` (a pinned host pool, asynchronous copies); anything else is staged through
/// host buffers with the pool's copies. Outcomes go to `onEvent`, from the transfer's task.
///
/// A write to the flash store is staged: its blocks are first copied into a host buffer (a
/// memory copy, fast beside the disk), the engine is told (`TransferEvent.staged`) so the
/// device blocks can be reused at once, and the write to flash goes on in the background from
/// the copy, overlapping the following steps. On a GPU this takes the place of the backend's
/// direct flash swapper for writes (which holds the device blocks until the disk write ends);
/// its reads still go straight to the device. (Writes to host memory, itself a copy, are not
/// staged.)
///
/// A swap prefetch (`StepPlan.Prefetch`) reads a swapped sequence's flash blocks into host
/// memory before its device blocks are free; the swap-in that resumes it copies them to the
/// device and reads from the tier only what the prefetch did not bring.
///
/// A transfer's task holds the transfers (and through them the pool and the swappers) only
/// while it moves bytes, not while it reports: once every outcome has been reported, the owner's
/// reference is the last, so the GPU memory and the stores' handles go when the owner lets go,
/// on the owner's thread (see `LLMEngine.shutdown`).
public final class KVTransfers: Sendable {
    private let pool: any KVCachePool
    private let tiers: [SwapTier: any KVTierStore]
    private let deviceSwapper: (any DeviceKVSwapper)?
    private let hostSwapper: (any DeviceHostSwapper)?
    private let onEvent: @Sendable (TransferEvent) -> Void
    private let stagesFlashWrites: Bool
    private let logger = Logger(label: "hifc.transfers")
    /// Swap prefetches in flight or done, until a swap-in takes one or it is dropped.
    private let prefetches = Mutex<[TransferID: Task<PrefetchedBlocks?, Never>]>([:])

    /// Transfers between `pool` and `tiers`; `deviceSwapper`, when given (a GPU backend's),
    /// moves flash transfers straight between device memory and flash, and `hostSwapper` DRAM
    /// transfers between device memory and its pinned host pool (it is then the DRAM tier).
    /// `stagesFlashWrites` false writes to the flash store from the device blocks in place.
    public init(
        pool: any KVCachePool, tiers: [any KVTierStore], deviceSwapper: (any DeviceKVSwapper)? = nil,
        hostSwapper: (any DeviceHostSwapper)? = nil, stagesFlashWrites: Bool = true,
        onEvent: @escaping @Sendable (TransferEvent) -> Void
    ) {
        self.pool = pool
        self.stagesFlashWrites = stagesFlashWrites
        self.deviceSwapper = deviceSwapper
        self.hostSwapper = hostSwapper
        self.tiers = Dictionary(tiers.map { ($0.tier, $0) }, uniquingKeysWith: { first, _ in first })
        self.onEvent = onEvent
    }

    /// Starts writing a plan's blocks to their tier.
    public func start(_ write: StepPlan.Write) {
        let report = onEvent
        Task.detached { [weak self] in
            // `self` is held for the transfer only; the report comes after it is let go.
            guard
                let outcome = await self?.run(
                    id: write.id, .write, tier: write.tier, forPrefixCache: write.purpose == .savePrefix, blocks: write.blocks,
                    keys: write.keys)
            else { return }
            report(.finished(outcome))
        }
    }

    /// Starts reading a plan's blocks from their tier (copying those a prefetch brought from
    /// host memory).
    public func start(_ read: StepPlan.Read) {
        let report = onEvent
        let prefetched = read.prefetch.flatMap { id in prefetches.withLock { $0.removeValue(forKey: id) } }
        Task.detached { [weak self] in
            guard
                let outcome = await self?.run(
                    id: read.id, .read, tier: read.tier, forPrefixCache: read.purpose == .loadPrefix, blocks: read.blocks, keys: read.keys,
                    prefetched: prefetched)
            else { return }
            report(.finished(outcome))
        }
    }

    /// Starts reading a swapped sequence's blocks from their tier into host memory, where the
    /// swap-in that resumes it finds them (`StepPlan.Read.prefetch`).
    public func start(_ prefetch: StepPlan.Prefetch) {
        let report = onEvent
        let task = Task.detached { [weak self] () -> PrefetchedBlocks? in
            // `self` is held for the read only; the report comes after it is let go.
            guard let read = await self?.readAhead(prefetch) else { return nil }
            report(.prefetched(read.outcome))
            return read.blocks
        }
        prefetches.withLock { $0[prefetch.id] = task }
    }

    /// Frees a prefetch's host copies (once its read ends, when it is in flight).
    public func drop(prefetch id: TransferID) {
        _ = prefetches.withLock { $0.removeValue(forKey: id) }
    }

    /// Bytes of one block as the flash tier stores it: a backend's device swapper stores the
    /// layout's bytes, the engine's own writes whole (padded) block buffers.
    private var storedBlockBytes: Int { deviceSwapper != nil ? pool.layout.blockBytes : pool.blockStride }

    private func readAhead(_ prefetch: StepPlan.Prefetch) async -> (blocks: PrefetchedBlocks, outcome: PrefetchOutcome) {
        let started = ContinuousClock.now
        var failure: KVTierError?
        let stored = storedBlockBytes
        let blocks = await PrefetchedBlocks(keys: prefetch.keys, staging: pool.stagingBuffers(count: prefetch.keys.count)) { buffers in
            guard let store = tiers[prefetch.tier] else {
                failure = .io("no \(prefetch.tier) tier is configured")
                return 0
            }
            let result = await store.read(
                zip(prefetch.keys, buffers).map { KVBlockDestination(key: $0, bytes: UnsafeMutableRawBufferPointer(rebasing: $1[..<stored])) })
            failure = result.failure
            return result.intact
        }
        let intact = prefetch.keys.count { blocks.bytes(of: $0) != nil }
        return (
            blocks,
            PrefetchOutcome(
                id: prefetch.id, tier: prefetch.tier, intactBlocks: intact, bytes: intact * pool.blockStride,
                seconds: (ContinuousClock.now - started).inSeconds, failure: failure)
        )
    }

    /// Copies the blocks of `keys` that `prefetched` holds into the pool blocks at the same
    /// index of `blocks`; returns the indices it copied. (The device's prefix cache may have
    /// lost leading blocks the prefetch skipped because the device had them then: those, and any
    /// the prefetch did not bring, are the tier's to read.)
    private func copyPrefetched(_ prefetched: Task<PrefetchedBlocks?, Never>, keys: [BlockKey], into blocks: [Int]) async -> Set<Int> {
        guard let held = await prefetched.value else { return [] }
        let bytes = pool.layout.blockBytes
        let found = zip(keys, blocks).enumerated().compactMap { index, pair in
            held.bytes(of: pair.0).map { (index: index, block: pair.1, source: UnsafeRawBufferPointer(rebasing: $0[..<bytes])) }
        }
        do {
            try await pool.copyBlocks(found.map(\.block), from: found.map(\.source))
            return Set(found.map(\.index))
        } catch {
            logger.warning("copying \(found.count) prefetched blocks to the device failed, reading them from the tier: \(error)")
            return []
        }
    }

    /// Removes blocks from their tier.
    public func delete(_ delete: StepPlan.Delete) {
        remove(delete.keys, from: delete.tier)
    }

    private func remove(_ keys: [BlockKey], from tier: SwapTier) {
        if tier == .dram, let hostSwapper {
            hostSwapper.remove(keys)
        } else {
            tiers[tier]?.remove(keys)
        }
    }

    private func run(
        id: TransferID, _ direction: TransferDirection, tier: SwapTier, forPrefixCache: Bool, blocks planned: [Int], keys plannedKeys: [BlockKey],
        prefetched: Task<PrefetchedBlocks?, Never>? = nil
    ) async -> TransferOutcome {
        let started = ContinuousClock.now
        var intact = 0
        var failure: KVTierError?
        // The blocks a prefetch brought are copied from host memory; the tier is read for the rest.
        var copied = Set<Int>()
        if let prefetched { copied = await copyPrefetched(prefetched, keys: plannedKeys, into: planned) }
        let rest = planned.indices.filter { !copied.contains($0) }
        let blocks = rest.map { planned[$0] }
        let keys = rest.map { plannedKeys[$0] }
        do {
            if blocks.isEmpty {
                // Everything came from the prefetch.
            } else if tier == .flash, let device = deviceSwapper, direction == .read || !stagesFlashWrites {
                switch direction {
                case .write: try await device.swapOutToFlash(blocks: blocks, keys: keys)
                case .read: try await device.swapInFromFlash(keys: keys, into: blocks)
                }
                intact = blocks.count
            } else if tier == .dram, let host = hostSwapper {
                switch direction {
                case .write: try await host.swapOut(blocks: blocks, keys: keys)
                case .read: try await host.swapIn(keys: keys, into: blocks)
                }
                intact = blocks.count
            } else {
                guard let store = tiers[tier] else { throw KVTierError.io("no \(tier) tier is configured") }
                let stored = tier == .flash ? storedBlockBytes : pool.blockStride
                let report = onEvent
                var staged: (@Sendable () -> Void)?
                if direction == .write, tier == .flash, stagesFlashWrites { staged = { report(.staged(id)) } }
                intact = try await withBlockBuffers(blocks, direction, staged: staged) { buffers throws(KVTierError) in
                    switch direction {
                    case .write:
                        try await store.write(
                            zip(keys, buffers).map { KVBlockSource(key: $0, bytes: UnsafeRawBufferPointer(rebasing: $1[..<stored])) })
                        return blocks.count
                    case .read:
                        let result = await store.read(zip(keys, buffers).map { KVBlockDestination(key: $0, bytes: $1) })
                        failure = result.failure
                        return result.intact
                    }
                }
            }
        } catch let error as KVTierError {
            failure = error
        } catch HostSwapError.full(let needed, let free, let capacity) {
            failure = .full(tier: .dram, detail: "\(free) of \(capacity) host blocks free, \(needed) needed")
        } catch HostSwapError.missing(let key) {
            failure = .missing(key)
        } catch {
            failure = .io("\(error)")
        }
        if direction == .write, failure != nil {
            intact = 0
            remove(keys, from: tier)
        }
        // Intact: the leading blocks that arrived, from the prefetch or among the tier's intact ones.
        var fromPrefetch = 0
        if !copied.isEmpty {
            let arrived = copied.union(rest.prefix(intact))
            intact = planned.indices.first { !arrived.contains($0) } ?? planned.count
            fromPrefetch = copied.count { $0 < intact }
        }
        if let failure {
            let what = forPrefixCache ? (direction == .write ? "prefix save" : "prefix load") : (direction == .write ? "swap-out" : "swap-in")
            logger.warning("\(what) of \(planned.count) blocks (\(tier)) failed after \(intact), the rest is recomputed: \(failure)")
        }
        let elapsed = ContinuousClock.now - started
        return TransferOutcome(
            id: id, direction: direction, tier: tier, forPrefixCache: forPrefixCache, blocks: planned.count, intactBlocks: intact,
            bytes: intact * pool.blockStride, seconds: elapsed.inSeconds, failure: failure, prefetchedBlocks: fromPrefetch)
    }

    /// Calls `body` with one host buffer of `blockStride` bytes (a 4 KiB multiple, so flash I/O
    /// can be O_DIRECT) per block: the blocks themselves when the pool lives in host memory and
    /// the write is not `staged`, otherwise the pool's staging buffers (pinned on a GPU), filled
    /// before a write, after which `staged` is called, and copied back after a read for the
    /// blocks that arrived intact.
    /// Returns what `body` returns: the blocks moved intact.
    private func withBlockBuffers(
        _ blocks: [Int], _ direction: TransferDirection, staged: (@Sendable () -> Void)? = nil,
        _ body: ([UnsafeMutableRawBufferPointer]) async throws(KVTierError) -> Int
    ) async throws -> Int {
        let stride = pool.blockStride
        var inPlace: [UnsafeMutableRawBufferPointer] = []
        for block in blocks where staged == nil {
            guard case .host(let pointer) = try pool.address(ofBlock: block) else { break }
            inPlace.append(UnsafeMutableRawBufferPointer(start: pointer, count: stride))
        }
        if staged == nil, inPlace.count == blocks.count { return try await body(inPlace) }

        let bytes = pool.layout.blockBytes
        let staging = pool.stagingBuffers(count: blocks.count)
        defer { staging.release() }
        let buffers = staging.buffers
        if direction == .write {
            try await pool.copyBlocks(blocks, to: buffers.map { UnsafeMutableRawBufferPointer(rebasing: $0[..<bytes]) })
            staged?()
        }
        let intact = try await body(buffers)
        if direction == .read {
            try await pool.copyBlocks(
                Array(blocks.prefix(intact)), from: buffers.prefix(intact).map { UnsafeRawBufferPointer(rebasing: $0[..<bytes]) })
        }
        return intact
    }
}
