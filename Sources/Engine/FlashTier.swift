import FlashStore
import Foundation
import HiFCCore

/// The flash tier (HiFC): blocks go to the `FlashStore` as one batch, written log-structured
/// with large sequential O_DIRECT writes, straight from the KV pool when its blocks are host
/// memory. It holds both swapped sequences' blocks and the prefix cache's second level.
public final class FlashTier: KVTierStore {
    public var tier: SwapTier { .flash }
    /// The store.
    public let store: FlashStore

    /// A tier over `store`.
    public init(store: FlashStore) { self.store = store }

    public func write(_ blocks: [KVBlockSource]) async throws(KVTierError) {
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

    public func read(_ blocks: [KVBlockDestination]) async -> (intact: Int, failure: KVTierError?) {
        let results = await store.get(blocks.map(\.key), into: blocks.map { FlashReadTarget($0.bytes) })
        for (index, result) in results.enumerated() {
            let block = blocks[index]
            switch result {
            case .hit(let length) where length == block.bytes.count: continue
            case .hit(let length):
                return (index, .corrupt(block.key, detail: "\(length) bytes stored for a \(block.bytes.count)-byte block"))
            case .miss(.absent): return (index, .missing(block.key))
            case .miss(let reason):
                switch reason {
                case .checksumMismatch, .headerMismatch: return (index, .corrupt(block.key, detail: reason.description))
                default: return (index, .io("flash read of \(block.key): \(reason)"))
                }
            }
        }
        return (blocks.count, nil)
    }

    public func remove(_ keys: [BlockKey]) { store.delete(keys) }

    public var capacityBytes: Int64? { store.totalCapacity }
    public var bytesWrittenToday: Int64? { store.bytesWrittenToday }
    public var storedContentKeys: [BlockKey] { store.contentKeys }
    public var regionCount: Int { store.configuration.paths.count }
    public var isShared: Bool { store.configuration.sharedDirectory }
    /// The first path when it is a directory (a raw block device has no room for a file).
    public var stateDirectory: String? {
        var isDirectory: ObjCBool = false
        guard let path = store.configuration.paths.first, FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory),
            isDirectory.boolValue
        else { return nil }
        return path
    }

    public func refreshSharedBlocks() -> (found: [BlockKey], gone: [BlockKey]) {
        let change = store.refreshSharedRegions()
        return (change.found, change.gone)
    }

    public func measureReadBandwidth() -> Double? { store.measureReadBandwidth(maxBytes: 128 << 20) }

    public func adoptNamespace(_ namespace: PrefixNamespace) {
        store.setContentNamespace(tag: namespace.tag, summary: namespace.summary)
    }
}
