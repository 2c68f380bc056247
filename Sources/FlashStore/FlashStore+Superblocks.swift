import Foundation
import HiFCCore

extension FlashStore {
    /// Writes each region's superblock (wear ledger) when a second has passed since the last
    /// write, or at once with `force`. A failed superblock write loses only wear counts since the
    /// last one; the data path reports its own errors.
    func persistSuperblocks(force: Bool) {
        superblockLock.lock()
        defer { superblockLock.unlock() }
        let now = Date().timeIntervalSince1970
        let copies: [RegionSuperblock]? = locked { state in
            guard force || now - state.lastPersist >= 1 else { return nil }
            state.lastPersist = now
            for path in state.superblocks.indices {
                state.superblocks[path].updateCount += 1
                record(write: FlashLayout.pageSize, at: state.superblocks[path].nextCopyOffset, path: path, in: &state)
            }
            return state.superblocks
        }
        guard let copies else { return }
        for (region, superblock) in zip(regions, copies) { _ = region.writeSuperblock(superblock) }
    }
}
