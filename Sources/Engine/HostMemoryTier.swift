import Foundation
import HiFCCore
import Synchronization

/// The host-memory tier (`--preemption swap-dram`): a fixed pool of page-aligned block slots,
/// the baseline vLLM swaps to. A block costs one copy each way.
public final class HostMemoryTier: KVTierStore {
    public var tier: SwapTier { .dram }
    /// Bytes of one block.
    public let blockBytes: Int
    /// Slots in the pool.
    public let capacityBlocks: Int
    private let slotStride: Int
    // Each slot is written or read only by the one caller that holds it under `slots`' lock,
    // so the raw pool memory is shared between I/O threads safely.
    nonisolated(unsafe) private let memory: UnsafeMutableRawPointer
    private let slots: Mutex<SlotMap>

    private struct SlotMap {
        var free: [Int]
        var byKey: [BlockKey: Int] = [:]
    }

    /// A pool of `capacityBlocks` slots of `blockBytes` each.
    public init(blockBytes: Int, capacityBlocks: Int) {
        precondition(blockBytes > 0 && capacityBlocks >= 0)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        self.blockBytes = blockBytes
        self.capacityBlocks = capacityBlocks
        self.slotStride = (blockBytes + page - 1) / page * page
        self.memory = UnsafeMutableRawPointer.allocate(byteCount: max(slotStride * capacityBlocks, 1), alignment: page)
        self.slots = Mutex(SlotMap(free: Array((0..<capacityBlocks).reversed())))
    }

    deinit { memory.deallocate() }

    /// Blocks stored now.
    public var storedBlocks: Int { slots.withLock { $0.byKey.count } }

    public func write(_ blocks: [KVBlockSource]) async throws(KVTierError) {
        for block in blocks {
            guard block.bytes.count == blockBytes else {
                throw .io("a \(block.bytes.count)-byte block for a host tier of \(blockBytes)-byte slots")
            }
            let slot = slots.withLock { map -> Int? in
                if let old = map.byKey.removeValue(forKey: block.key) { map.free.append(old) }
                return map.free.popLast()
            }
            guard let slot else { throw .full(tier: .dram, detail: "all \(capacityBlocks) host blocks hold swapped KV") }
            (memory + slot * slotStride).copyMemory(from: block.bytes.baseAddress!, byteCount: blockBytes)
            slots.withLock { $0.byKey[block.key] = slot }
        }
    }

    public func read(_ blocks: [KVBlockDestination]) async -> (intact: Int, failure: KVTierError?) {
        for (index, block) in blocks.enumerated() {
            guard let slot = slots.withLock({ $0.byKey[block.key] }) else { return (index, .missing(block.key)) }
            guard block.bytes.count >= blockBytes else {
                return (index, .io("a \(block.bytes.count)-byte buffer for a \(blockBytes)-byte block"))
            }
            block.bytes.baseAddress!.copyMemory(from: memory + slot * slotStride, byteCount: blockBytes)
        }
        return (blocks.count, nil)
    }

    public func remove(_ keys: [BlockKey]) {
        slots.withLock { map in
            for key in keys {
                if let slot = map.byKey.removeValue(forKey: key) { map.free.append(slot) }
            }
        }
    }
}
