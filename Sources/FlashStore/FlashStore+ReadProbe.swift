import Foundation
import HiFCCore

extension FlashStore {
    /// Measures the store's read bandwidth on the blocks it holds: reads up to `maxBytes` of its
    /// content slots, in 8-slot batches as loads issue them, through the same O_DIRECT jobs and
    /// checks as `get`, and returns bytes per second; nil when it holds less than `minimumBytes`
    /// (too little to judge) or a read failed.
    ///
    /// The engine's cost model decides whether a cached prefix is loaded or recomputed from the
    /// measured read bandwidth; until a first load it has only a guess, and a guess that is too
    /// high loads where recomputing is faster. Blocking; it runs once, at engine start. The
    /// engine's first real read replaces the figure: a load also moves the blocks to the device.
    public func measureReadBandwidth(maxBytes: Int = 256 << 20, minimumBytes: Int = 16 << 20) -> Double? {
        let chosen: [(key: BlockKey, location: FlashSlotLocation)] = locked { state in
            var total = 0
            var picked: [(key: BlockKey, location: FlashSlotLocation)] = []
            // Blocks drawn at random, not the same ones at every start: a drive (or a cloud
            // volume) that kept the last probe's blocks in its cache would report its cache's speed.
            for entry in state.map.entries.filter({ $0.key.kind == .content }).shuffled() {
                guard total < maxBytes else { break }
                picked.append(entry)
                total += entry.location.length
                state.allocators[entry.location.path].pin(segment: entry.location.segment)
            }
            return picked
        }
        defer {
            locked { state in
                for entry in chosen { state.allocators[entry.location.path].unpin(segment: entry.location.segment) }
            }
        }
        let bytes = chosen.reduce(0) { $0 + $1.location.length }
        guard bytes >= minimumBytes, let largest = chosen.map(\.location.length).max() else { return nil }
        let batch = 8
        let buffers = (0..<batch).map { _ in AlignedBuffer(count: FlashLayout.padded(largest)) }
        let started = ContinuousClock.now
        for first in stride(from: 0, to: chosen.count, by: batch) {
            let slice = Array(chosen[first..<min(first + batch, chosen.count)])
            let results = ReadResultBox(count: slice.count)
            let jobs = slice.enumerated().map { n, entry in
                readJob(key: entry.key, location: entry.location, target: FlashReadTarget(buffers[n].bytes), results: results, index: n)
            }
            let codes = pool.runBlocking(jobs)
            guard codes.allSatisfy({ $0 == 0 }), results.values.allSatisfy(\.isHit) else { return nil }
        }
        let seconds = (ContinuousClock.now - started).inSeconds
        return seconds > 0 ? Double(bytes) / seconds : nil
    }
}
