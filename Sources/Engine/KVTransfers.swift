import Backend
import Foundation
import HiFCCore
import Logging

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
}

/// What the transfers tell the engine, from their tasks.
public enum TransferEvent: Sendable {
    /// A write's blocks were copied off their device blocks into host staging: the device blocks
    /// may be reused while the write goes on from the copy.
    case staged(TransferID)
    /// A transfer ended.
    case finished(TransferOutcome)
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
/// the copy. (Writes through a backend's swappers and to host memory, itself a copy, are not.)
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

    /// Starts reading a plan's blocks from their tier.
    public func start(_ read: StepPlan.Read) {
        let report = onEvent
        Task.detached { [weak self] in
            guard
                let outcome = await self?.run(
                    id: read.id, .read, tier: read.tier, forPrefixCache: read.purpose == .loadPrefix, blocks: read.blocks, keys: read.keys)
            else { return }
            report(.finished(outcome))
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
        id: TransferID, _ direction: TransferDirection, tier: SwapTier, forPrefixCache: Bool, blocks: [Int], keys: [BlockKey]
    ) async -> TransferOutcome {
        let started = ContinuousClock.now
        var intact = 0
        var failure: KVTierError?
        do {
            if tier == .flash, let device = deviceSwapper {
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
                let report = onEvent
                var staged: (@Sendable () -> Void)?
                if direction == .write, tier == .flash, stagesFlashWrites { staged = { report(.staged(id)) } }
                intact = try await withBlockBuffers(blocks, direction, staged: staged) { buffers throws(KVTierError) in
                    switch direction {
                    case .write:
                        try await store.write(zip(keys, buffers).map { KVBlockSource(key: $0, bytes: UnsafeRawBufferPointer($1)) })
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
        if let failure {
            let what = forPrefixCache ? (direction == .write ? "prefix save" : "prefix load") : (direction == .write ? "swap-out" : "swap-in")
            logger.warning("\(what) of \(blocks.count) blocks (\(tier)) failed after \(intact), the rest is recomputed: \(failure)")
        }
        let elapsed = ContinuousClock.now - started
        return TransferOutcome(
            id: id, direction: direction, tier: tier, forPrefixCache: forPrefixCache, blocks: blocks.count, intactBlocks: intact,
            bytes: intact * pool.blockStride, seconds: elapsed.inSeconds, failure: failure)
    }

    /// Calls `body` with one host buffer of `blockStride` bytes (a 4 KiB multiple, so flash I/O
    /// can be O_DIRECT) per block: the blocks themselves when the pool lives in host memory and
    /// the write is not `staged`, staging copies otherwise (filled before a write, after which
    /// `staged` is called, and copied back after a read for the blocks that arrived intact).
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
        let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: stride * blocks.count, alignment: 4096)
        defer { staging.deallocate() }
        let buffers = blocks.indices.map { UnsafeMutableRawBufferPointer(rebasing: staging[$0 * stride..<($0 + 1) * stride]) }
        if direction == .write {
            for (block, buffer) in zip(blocks, buffers) {
                try pool.copyBlock(block, to: UnsafeMutableRawBufferPointer(rebasing: buffer[..<bytes]))
            }
            staged?()
        }
        let intact = try await body(buffers)
        if direction == .read {
            for (block, buffer) in zip(blocks.prefix(intact), buffers) {
                try pool.copyBlock(block, from: UnsafeRawBufferPointer(rebasing: buffer[..<bytes]))
            }
        }
        return intact
    }
}
