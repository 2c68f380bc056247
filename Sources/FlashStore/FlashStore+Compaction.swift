import Foundation
import HiFCCore

extension FlashStore {
    /// Compacts where free segments ran short, after a put.
    func compactIfNeeded() async {
        let short = locked { state in
            state.allocators.contains { $0.freeSegmentCount < configuration.minimumFreeSegments }
        }
        if short { await compact() }
    }

    /// On every path with fewer free segments than `minimumFreeSegments`, moves the live slots of
    /// the closed segment with the lowest live fraction (below `compactionThreshold`) to the open
    /// segment, so that segment becomes free. Returns the number of slots moved.
    @discardableResult
    public func compact() async -> Int {
        let start = locked { state -> Bool in
            guard !state.compacting, !state.closed else { return false }
            state.compacting = true
            return true
        }
        guard start else { return 0 }
        var moved = 0
        for path in regions.indices { moved += await compact(path: path) }
        locked {
            $0.compacting = false
            $0.compactedSlots += Int64(moved)
        }
        return moved
    }

    func compact(path: Int) async -> Int {
        let picked: (segment: Int, entries: [(key: BlockKey, location: FlashSlotLocation)])? = locked { state in
            guard
                let segment = state.allocators[path].compactionCandidate(
                    threshold: configuration.compactionThreshold, minimumFreeSegments: configuration.minimumFreeSegments)
            else { return nil }
            dropCopies(inPath: path, segment: segment, in: &state)
            state.allocators[path].pin(segment: segment)
            return (segment, state.map.entries(inPath: path, segment: segment))
        }
        guard let picked else { return 0 }
        defer { locked { $0.allocators[path].unpin(segment: picked.segment) } }
        let buffers = picked.entries.map { AlignedBuffer(count: max($0.location.length, 1), zeroed: false) }
        let outcomes = ReadResultBox(count: picked.entries.count)
        _ = await pool.run(
            picked.entries.enumerated().map { n, entry in
                readJob(key: entry.key, location: entry.location, target: FlashReadTarget(buffers[n].bytes), results: outcomes, index: n)
            })
        let read = outcomes.values
        let readable = picked.entries.indices.filter { read[$0].isHit }
        guard !readable.isEmpty else { return 0 }
        let moves: [PlannedSlot]? = locked { state in
            guard
                let placements = state.allocators[path].allocate(
                    footprints: readable.map { picked.entries[$0].location.footprint })
            else { return nil }
            let moves = zip(readable, placements).map { n, placement in
                PlannedSlot(
                    key: picked.entries[n].key, path: path, placement: placement,
                    length: picked.entries[n].location.length, generation: picked.entries[n].location.generation)
            }
            for move in moves { record(write: move.footprint, at: move.placement.offset, path: path, in: &state) }
            return moves
        }
        guard let moves else { return 0 }
        let box = ChecksumBox(count: moves.count)
        let codes = await pool.run(
            moves.enumerated().map { i, move in
                let entry = picked.entries[readable[i]]
                return writeJob(
                    move, payload: UnsafeRawBufferPointer(rebasing: buffers[readable[i]].bytes[0..<entry.location.length]),
                    knownChecksum: entry.location.checksum, checksums: box, index: i)
            })
        return locked { state in
            var moved = 0
            for (i, move) in moves.enumerated() {
                let old = picked.entries[readable[i]].location
                let new = move.location(checksum: old.checksum)
                if codes[i] == 0, state.map.replace(move.key, expecting: old, with: new) {
                    state.allocators[path].release(segment: old.segment, footprint: old.footprint)
                    moved += 1
                } else {
                    state.allocators[path].release(segment: move.placement.segment, footprint: move.footprint)
                }
            }
            withExtendedLifetime(buffers) {}
            return moved
        }
    }
}
