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

    public func write(_ blocks: [FlashPutItem]) async throws(KVTierError) {
        do {
            try await store.put(blocks)
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

    public func read(_ keys: [BlockKey], into targets: [FlashReadTarget]) async throws(KVTierError) {
        let results = await store.get(keys, into: targets)
        for (n, result) in results.enumerated() {
            switch result {
            case .hit(let length) where length == targets[n].bytes.count: continue
            case .hit(let length): throw .corrupt(keys[n], detail: "\(length) bytes stored for a \(targets[n].bytes.count)-byte block")
            case .miss(.absent): throw .missing(keys[n])
            case .miss(let reason):
                switch reason {
                case .checksumMismatch, .headerMismatch: throw .corrupt(keys[n], detail: reason.description)
                default: throw .io("flash read of \(keys[n]): \(reason)")
                }
            }
        }
    }

    public func remove(_ keys: [BlockKey]) { store.delete(keys) }
}
