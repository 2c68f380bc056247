import Foundation
import HiFCCore

extension FlashStore {
    func validate(keys: [BlockKey], lengths: [Int]) throws {
        var seen = Set<BlockKey>()
        for (key, length) in zip(keys, lengths) {
            guard seen.insert(key).inserted else { throw FlashStoreError.duplicateKey(key) }
            guard FlashLayout.slotFootprint(payloadLength: length) <= geometry.segmentSize else {
                throw FlashStoreError.blockTooLarge(key: key, length: length, segmentSize: geometry.segmentSize)
            }
        }
    }

    /// Plans slots; when no path has room, drops the extra copies, or compacts once, and tries again.
    func planWithCompaction(keys: [BlockKey], lengths: [Int]) async throws -> [PlannedSlot] {
        do {
            return try locked { try plan(keys: keys, lengths: lengths, in: &$0) }
        } catch FlashStoreError.regionFull {
            // Extra copies yield to new blocks first, then compaction frees segments.
            if let planned = try? locked({ state -> [PlannedSlot]? in
                guard !state.copies.isEmpty else { return nil }
                for key in Array(state.copies.keys) { dropCopies(of: key, in: &state) }
                return try plan(keys: keys, lengths: lengths, in: &state)
            }) {
                return planned
            }
            guard await compact() > 0 else { throw regionFullError(lengths) }
            return try locked { try plan(keys: keys, lengths: lengths, in: &$0) }
        }
    }

    func regionFullError(_ lengths: [Int]) -> FlashStoreError {
        .regionFull(paths: regions.map(\.regionFile), needed: Int64(lengths.reduce(0) { $0 + FlashLayout.slotFootprint(payloadLength: $1) }))
    }

    /// Chooses a path for each block (the placement policy, then the other paths when that one
    /// is full) and allocates the blocks of each path contiguously.
    func plan(keys: [BlockKey], lengths: [Int], in state: inout State) throws -> [PlannedSlot] {
        guard !state.closed else { throw FlashStoreError.closed }
        let preferred =
            state.swarm != nil
            ? swarmPaths(keys: keys, lengths: lengths, in: state) : placement.paths(forBatchOf: keys.count, rotation: state.rotation)
        state.rotation &+= keys.count
        var groups: [(path: Int, indices: [Int])] = []
        for (index, path) in preferred.enumerated() {
            if let g = groups.firstIndex(where: { $0.path == path }) { groups[g].indices.append(index) } else { groups.append((path, [index])) }
        }
        var slots = [PlannedSlot?](repeating: nil, count: keys.count)
        var allocated: [PlannedSlot] = []
        for group in groups {
            let footprints = group.indices.map { FlashLayout.slotFootprint(payloadLength: lengths[$0]) }
            var placed = false
            for path in placement.fallbackOrder(from: group.path) {
                guard let placements = state.allocators[path].allocate(footprints: footprints) else { continue }
                for (index, where_) in zip(group.indices, placements) {
                    let slot = PlannedSlot(key: keys[index], path: path, placement: where_, length: lengths[index], generation: state.nextGeneration)
                    state.nextGeneration += 1
                    slots[index] = slot
                    allocated.append(slot)
                }
                placed = true
                break
            }
            if !placed {
                for slot in allocated { state.allocators[slot.path].release(segment: slot.placement.segment, footprint: slot.footprint) }
                throw regionFullError(lengths)
            }
        }
        return slots.map { $0! }
    }

    /// Counts one write in the write pattern and the path's wear ledger.
    func record(write length: Int, at offset: Int64, path: Int, in state: inout State) {
        state.pattern.recordWrite(path: path, offset: offset, length: length)
        state.superblocks[path].wear.record(bytes: Int64(length), at: Date().timeIntervalSince1970)
    }

    /// Maps the written slots, or, if any write failed, releases them all and throws.
    func publish(_ slots: [PlannedSlot], codes: [Int32], checksums: [UInt32]) throws {
        if let failed = codes.firstIndex(where: { $0 != 0 }) {
            locked { state in
                for slot in slots { state.allocators[slot.path].release(segment: slot.placement.segment, footprint: slot.footprint) }
            }
            let slot = slots[failed]
            throw FlashStoreError.ioFailed(
                path: regions[slot.path].regionFile, operation: "write", offset: slot.placement.offset,
                errno: codes[failed], message: DirectIO.message(codes[failed]))
        }
        locked { state in
            for (slot, checksum) in zip(slots, checksums) {
                if let dead = state.map.insert(slot.key, at: slot.location(checksum: checksum)) {
                    state.allocators[dead.path].release(segment: dead.segment, footprint: dead.footprint)
                }
                dropCopies(of: slot.key, in: &state)
                state.pattern.recordPayload(slot.length)
            }
        }
    }
}
