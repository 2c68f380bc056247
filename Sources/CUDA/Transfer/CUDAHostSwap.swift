import Backend
import Foundation
import HiFCCore
import Synchronization

/// The DRAM tier on the GPU (`swap-dram`), as vLLM's swap space was: a pool of page-locked host
/// blocks (`cuMemHostAlloc`, `--dram-swap` bytes, allocated once) that KV blocks are copied to and
/// from with `cuMemcpyAsync` at the link's speed.
///
/// Copies run on two streams of the swapper's own, one per direction, so swap-ins do not queue
/// behind swap-outs and the link carries both ways at once. A swap-out's copies wait (an event)
/// for the compute stream's work queued before the call, so they read what the model wrote; the
/// caller is resumed by the driver when its copies have finished (a stream callback), with no
/// thread blocked and no synchronisation per block. A swap-in returns once its blocks are on the
/// device, so the compute work queued afterwards reads them.
public final class CUDAHostSwap: DeviceHostSwapper, @unchecked Sendable {
    // The slot map is guarded by `slots`; the pinned memory of a slot is touched only by the one
    // transfer that holds it (a write before it is published, reads while they are counted).
    // `enqueueing` keeps one transfer's stream operations together.
    /// Host blocks in the pool.
    public let capacityBlocks: Int
    let pool: DeviceBlockPool
    let compute: CUDAStream
    private let pinned: PinnedBuffer?
    private let outbound: CUDAStream
    private let inbound: CUDAStream
    private let enqueueing = NSLock()
    private let slots: Mutex<SlotMap>

    /// Which host slot holds which key, which are free, and which are being read.
    private struct SlotMap {
        var free: [Int]
        var byKey: [BlockKey: Int] = [:]
        /// Swap-ins in flight reading each slot.
        var readers: [Int: Int] = [:]
        /// Slots removed while being read: freed when their last reader ends.
        var freedAfterRead: Set<Int> = []

        mutating func release(_ slot: Int) {
            if readers[slot, default: 0] > 0 { freedAfterRead.insert(slot) } else { free.append(slot) }
        }

        mutating func endRead(_ slot: Int) {
            let left = readers[slot, default: 1] - 1
            readers[slot] = left > 0 ? left : nil
            if left <= 0, freedAfterRead.remove(slot) != nil { free.append(slot) }
        }
    }

    /// A swapper between `pool` and `capacityBlocks` pinned host blocks; `compute` is the stream
    /// the model's work runs on.
    public init(pool: DeviceBlockPool, compute: CUDAStream, capacityBlocks: Int) throws {
        guard capacityBlocks >= 0 else { throw CUDAError.invalidArgument("a host swap pool of \(capacityBlocks) blocks") }
        let device = pool.buffer.device
        self.pool = pool
        self.compute = compute
        self.capacityBlocks = capacityBlocks
        // Slots as far apart as the device's blocks (a 4 KiB multiple): page-aligned copies.
        pinned = capacityBlocks > 0 ? try device.allocatePinned(capacityBlocks * pool.blockStride) : nil
        outbound = try device.makeStream()
        inbound = try device.makeStream()
        slots = Mutex(SlotMap(free: Array((0..<capacityBlocks).reversed())))
    }

    public var storedBlocks: Int { slots.withLock { $0.byKey.count } }

    private func host(_ slot: Int) -> UnsafeMutableRawPointer { pinned!.pointer + slot * pool.blockStride }

    public func swapOut(blocks: [Int], keys: [BlockKey]) async throws {
        guard blocks.count == keys.count else { throw CUDAError.invalidArgument("\(blocks.count) blocks for \(keys.count) keys") }
        let taken = try slots.withLock { map in
            for key in keys {
                if let old = map.byKey.removeValue(forKey: key) { map.release(old) }
            }
            guard map.free.count >= keys.count else {
                throw HostSwapError.full(needed: keys.count, free: map.free.count, capacity: capacityBlocks)
            }
            return (0..<keys.count).map { _ in map.free.removeLast() }
        }
        do {
            // Even after a failed enqueue, the copies queued before it end before their slots are free.
            try await outbound.enqueueThenWait {
                let ready = try pool.buffer.device.makeEvent()
                try ready.record(on: compute)
                try enqueueing.withLock {
                    try outbound.wait(for: ready)
                    for (block, slot) in zip(blocks, taken) {
                        try outbound.copy(from: try pool.address(of: block), to: host(slot), bytes: pool.layout.blockBytes)
                    }
                }
            }
        } catch {
            slots.withLock { map in taken.forEach { map.free.append($0) } }
            throw error
        }
        slots.withLock { map in
            for (key, slot) in zip(keys, taken) {
                if let old = map.byKey.updateValue(slot, forKey: key) { map.release(old) }
            }
        }
    }

    public func swapIn(keys: [BlockKey], into blocks: [Int]) async throws {
        guard blocks.count == keys.count else { throw CUDAError.invalidArgument("\(blocks.count) blocks for \(keys.count) keys") }
        let taken = try slots.withLock { map in
            let found = try keys.map { key in
                guard let slot = map.byKey[key] else { throw HostSwapError.missing(key) }
                return slot
            }
            for slot in found { map.readers[slot, default: 0] += 1 }
            return found
        }
        defer { slots.withLock { map in taken.forEach { map.endRead($0) } } }
        try await inbound.enqueueThenWait {
            try enqueueing.withLock {
                for (slot, block) in zip(taken, blocks) {
                    try inbound.copy(from: UnsafeRawPointer(host(slot)), to: try pool.address(of: block), bytes: pool.layout.blockBytes)
                }
            }
        }
    }

    public func remove(_ keys: [BlockKey]) {
        slots.withLock { map in
            for key in keys {
                if let slot = map.byKey.removeValue(forKey: key) { map.release(slot) }
            }
        }
    }
}
