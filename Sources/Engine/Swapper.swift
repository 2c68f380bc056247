import Backend
import FlashStore
import Foundation
import HiFCCore
import Logging

/// Which way a swap moved a sequence's blocks.
public enum SwapDirection: String, Sendable, Hashable {
    case out, `in`
}

/// A swap of one sequence that finished: all its blocks moved, or one failed.
public struct SwapCompletion: Sendable {
    /// The sequence.
    public var sequence: SequenceID
    /// Out (device to tier) or in (tier to device).
    public var direction: SwapDirection
    /// The tier.
    public var tier: SwapTier
    /// Bytes moved.
    public var bytes: Int
    /// Seconds from the start of the I/O to its end.
    public var seconds: Double
    /// Why it failed; nil when every block moved intact.
    public var failure: KVTierError?
}

/// Moves sequences' KV blocks between the device's KV pool and the swap tiers in tasks of its
/// own, so the I/O overlaps the engine's compute (which runs on the step thread).
///
/// A swap is one sequence's blocks, handed to the tier as one batch (on flash: one long
/// sequential write). Where the pool's blocks are host memory (the CPU backend) the tier reads
/// and writes them in place; otherwise they are staged through host buffers with the pool's
/// copies. A swap-out that fails removes whatever part of it reached the tier. Completions go to
/// `onCompletion`, from the swap's task.
public final class Swapper: Sendable {
    private let pool: any KVCachePool
    private let tiers: [SwapTier: any KVTierStore]
    private let deviceSwapper: (any DeviceKVSwapper)?
    private let onCompletion: @Sendable (SwapCompletion) -> Void
    private let logger = Logger(label: "hifc.swapper")

    /// A swapper between `pool` and `tiers`. `deviceSwapper`, when given (a GPU backend's), moves
    /// flash swaps straight between device memory and flash instead of staging them here.
    public init(
        pool: any KVCachePool, tiers: [any KVTierStore], deviceSwapper: (any DeviceKVSwapper)? = nil,
        onCompletion: @escaping @Sendable (SwapCompletion) -> Void
    ) {
        self.pool = pool
        self.deviceSwapper = deviceSwapper
        self.tiers = Dictionary(tiers.map { ($0.tier, $0) }, uniquingKeysWith: { first, _ in first })
        self.onCompletion = onCompletion
    }

    /// Starts writing `swap.blocks` to its tier.
    public func swapOut(_ swap: StepPlan.Swap) { Task.detached { [self] in await run(swap, .out) } }
    /// Starts reading a swapped sequence's blocks into `swap.blocks`.
    public func swapIn(_ swap: StepPlan.Swap) { Task.detached { [self] in await run(swap, .in) } }

    /// Forgets the tier copies of a sequence's first `blocks` blocks.
    public func free(sequence: SequenceID, blocks: Int, in tier: SwapTier) {
        tiers[tier]?.remove((0..<blocks).map { BlockKey.sequence(sequence, block: $0) })
    }

    private func run(_ swap: StepPlan.Swap, _ direction: SwapDirection) async {
        let started = ContinuousClock.now
        let keys = swap.blocks.indices.map { BlockKey.sequence(swap.sequence, block: $0) }
        var failure: KVTierError?
        do {
            guard let store = tiers[swap.tier] else { throw KVTierError.io("no \(swap.tier) tier is configured") }
            if swap.tier == .flash, let device = deviceSwapper {
                switch direction {
                case .out: try await device.swapOutToFlash(blocks: swap.blocks, keys: keys)
                case .in: try await device.swapInFromFlash(keys: keys, into: swap.blocks)
                }
            } else {
                try await withBlockBuffers(swap.blocks, direction) { buffers throws(KVTierError) in
                    switch direction {
                    case .out: try await store.write(zip(keys, buffers).map { FlashPutItem(key: $0, bytes: UnsafeRawBufferPointer($1)) })
                    case .in: try await store.read(keys, into: buffers.map { FlashReadTarget($0) })
                    }
                }
            }
        } catch let error as KVTierError {
            failure = error
        } catch {
            failure = .io("\(error)")
        }
        if let failure {
            if direction == .out { tiers[swap.tier]?.remove(keys) }
            logger.warning("swap-\(direction.rawValue) of sequence \(swap.sequence) (\(swap.tier)) failed, it will be recomputed: \(failure)")
        }
        let elapsed = (ContinuousClock.now - started).components
        onCompletion(
            SwapCompletion(
                sequence: swap.sequence, direction: direction, tier: swap.tier,
                bytes: swap.blocks.count * pool.blockStride,
                seconds: Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18, failure: failure))
    }

    /// Calls `body` with one host buffer of `blockStride` bytes (a 4 KiB multiple, so flash I/O
    /// can be O_DIRECT) per block: the blocks themselves when the pool lives in host memory,
    /// staging copies otherwise (filled before a swap-out, copied back after a swap-in).
    private func withBlockBuffers(
        _ blocks: [Int], _ direction: SwapDirection,
        _ body: ([UnsafeMutableRawBufferPointer]) async throws(KVTierError) -> Void
    ) async throws {
        let stride = pool.blockStride
        var inPlace: [UnsafeMutableRawBufferPointer] = []
        for block in blocks {
            guard case .host(let pointer) = try pool.address(ofBlock: block) else { break }
            inPlace.append(UnsafeMutableRawBufferPointer(start: pointer, count: stride))
        }
        if inPlace.count == blocks.count { return try await body(inPlace) }

        let bytes = pool.layout.blockBytes
        let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: stride * blocks.count, alignment: 4096)
        defer { staging.deallocate() }
        let buffers = blocks.indices.map { UnsafeMutableRawBufferPointer(rebasing: staging[$0 * stride..<($0 + 1) * stride]) }
        if direction == .out {
            for (block, buffer) in zip(blocks, buffers) {
                try pool.copyBlock(block, to: UnsafeMutableRawBufferPointer(rebasing: buffer[..<bytes]))
            }
        }
        try await body(buffers)
        if direction == .in {
            for (block, buffer) in zip(blocks, buffers) {
                try pool.copyBlock(block, from: UnsafeRawBufferPointer(rebasing: buffer[..<bytes]))
            }
        }
    }
}
