import FlashStore
import Foundation
import HiFCCore

/// The flash swap tier (`--preemption swap-flash`, HiFC): a sequence's blocks go to the
/// `FlashStore` as one batch, written log-structured with large sequential O_DIRECT writes,
/// straight from the KV pool when its blocks are host memory.
public final class FlashTier: KVTierStore {
    public var tier: SwapTier { .flash }
    /// The store.
    public let store: FlashStore

    /// A tier over `store`.
    public init(store: FlashStore) { self.store = store }

    public func write(_ blocks: [KVTierWrite]) async throws(KVTierError) {
        do {
            try await store.put(blocks.map { FlashPutItem(key: $0.key, bytes: $0.bytes) })
        } catch let error as FlashStoreError {
            switch error {
            case .regionFull: throw .full(tier: .flash, detail: error.description)
            case .ioFailed(_, _, _, let code, _) where code == ENOSPC: throw .full(tier: .flash, detail: error.description)
            default: throw .io(error.description)
            }
        } catch {
            throw .io("\(error)")
        }
    }

    public func read(_ blocks: [KVTierRead]) async throws(KVTierError) {
        let results = await store.get(blocks.map(\.key), into: blocks.map { FlashReadTarget($0.into) })
        for (block, result) in zip(blocks, results) {
            switch result {
            case .hit(let length) where length == block.into.count: continue
            case .hit(let length): throw .corrupt(block.key, detail: "\(length) bytes stored for a \(block.into.count)-byte block")
            case .miss(.absent): throw .missing(block.key)
            case .miss(let reason):
                switch reason {
                case .checksumMismatch, .headerMismatch: throw .corrupt(block.key, detail: reason.description)
                default: throw .io("flash read of \(block.key): \(reason)")
                }
            }
        }
    }

    public func remove(_ keys: [BlockKey]) { store.delete(keys) }
}
