import Foundation
import HiFCCore

extension FlashStore {
    /// Stores a batch of blocks. The blocks of one path land contiguously, in order, in that
    /// path's open segment. When it returns, every block is on the device and mapped, replacing
    /// any earlier slot of the same key. When it throws (region full, ENOSPC, EIO, ...) no block
    /// of the batch is mapped and earlier blocks are untouched.
    public func put(_ items: [FlashPutItem]) async throws {
        guard !items.isEmpty else { return }
        try validate(keys: items.map(\.key), lengths: items.map(\.bytes.count))
        let slots = try await planWithCompaction(keys: items.map(\.key), lengths: items.map(\.bytes.count))
        locked { state in
            for slot in slots.sorted(by: { ($0.path, $0.placement.offset) < ($1.path, $1.placement.offset) }) {
                record(write: slot.footprint, at: slot.placement.offset, path: slot.path, in: &state)
            }
        }
        let checksums = ChecksumBox(count: slots.count)
        let jobs = slots.enumerated().map { index, slot in
            TrackedJob(
                writeJob(slot, payload: items[index].bytes, knownChecksum: nil, checksums: checksums, index: index), path: slot.path,
                bytes: slot.footprint)
        }
        let codes = await runTracked(jobs)
        try publish(slots, codes: codes, checksums: checksums.values)
        persistSuperblocks(force: false)
        await compactIfNeeded()
    }

    /// Reads each key's payload into its target. Each result is a hit with the payload's length,
    /// or a miss with its reason (absent, buffer too small, header or checksum mismatch, I/O
    /// error); a miss never leaves wrong bytes presented as a hit.
    public func get(_ keys: [BlockKey], into targets: [FlashReadTarget]) async -> [FlashReadResult] {
        precondition(keys.count == targets.count, "get needs one target per key")
        var results = [FlashReadResult?](repeating: nil, count: keys.count)
        var reads: [(index: Int, location: FlashSlotLocation)] = []
        let queuedAtIssue = locked { state -> [Int64] in
            for (index, key) in keys.enumerated() {
                guard !state.closed, let location = state.map[key] else {
                    results[index] = .miss(state.closed ? .ioError("the flash store is closed") : .absent)
                    continue
                }
                guard targets[index].bytes.count >= location.length else {
                    results[index] = .miss(.bufferTooSmall(needed: location.length, given: targets[index].bytes.count))
                    continue
                }
                reads.append((index, location))
            }
            if state.swarm != nil { chooseCopies(&reads, keys: keys, in: &state) }
            for read in reads { state.allocators[read.location.path].pin(segment: read.location.segment) }
            return state.queuedBytes
        }
        let outcomes = ReadResultBox(count: reads.count)
        let jobs = reads.enumerated().map { n, read in
            TrackedJob(
                readJob(key: keys[read.index], location: read.location, target: targets[read.index], results: outcomes, index: n),
                path: read.location.path, bytes: read.location.footprint)
        }
        _ = await runTracked(jobs)
        let read = outcomes.values
        locked { state in
            for (n, entry) in reads.enumerated() {
                state.allocators[entry.location.path].unpin(segment: entry.location.segment)
                state.reads += 1
                state.bytesRead += Int64(entry.location.footprint)
                state.pathBytesRead[entry.location.path] += Int64(entry.location.footprint)
                if !read[n].isHit { state.failedReads += 1 }
                results[entry.index] = read[n]
            }
        }
        let hits = reads.indices.filter { read[$0].isHit }
        if !hits.isEmpty, locked({ $0.swarm != nil }) {
            copyAfterRead(keys: hits.map { keys[reads[$0].index] }, sources: hits.map { targets[reads[$0].index] }, queuedAtIssue: queuedAtIssue)
        }
        if configuration.sharedDirectory {
            let absent = results.indices.filter { results[$0] == .miss(.absent) }
            let found = await getShared(absent.map { keys[$0] }, into: absent.map { targets[$0] })
            for (index, result) in zip(absent, found) { results[index] = result }
        }
        return results.map { $0! }
    }

    /// Unmaps the keys; their slots are dead and their segments are reused once wholly dead.
    public func delete(_ keys: [BlockKey]) {
        locked { state in
            for key in keys {
                if let old = state.map.remove(key) {
                    state.allocators[old.path].release(segment: old.segment, footprint: old.footprint)
                }
                dropCopies(of: key, in: &state)
            }
        }
    }

    /// Every content-addressed (prefix) key mapped now, e.g. those recovered at start.
    public var contentKeys: [BlockKey] {
        locked { state in state.map.entries.compactMap { $0.key.kind == .content ? $0.key : nil } }
    }

    /// Whether `key` is mapped (a get may still miss if its slot proves corrupt).
    public func contains(_ key: BlockKey) -> Bool {
        locked { $0.map[key] != nil }
    }
}
