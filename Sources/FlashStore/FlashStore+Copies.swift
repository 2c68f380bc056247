import Foundation
import HiFCCore

/// What swarm placement needs from the store: each path's I/O backlog, the extra copies of
/// content blocks that `SwarmPlacement` asks for (written from the bytes a read just brought in,
/// in the background), and reads from the copy on the least busy path.
///
/// Extra copies are a cache of the primary slot: they are dropped when the block is deleted or
/// replaced, when their segment is compacted, when a new block needs their room, and at restart
/// (recovery maps one slot per key; the others are dead).
extension FlashStore {
    /// An I/O job, the path it runs on and its bytes, counted in that path's backlog until it ends.
    struct TrackedJob: Sendable {
        var job: IOThreadPool.Job
        var path: Int
        var bytes: Int

        init(_ job: @escaping IOThreadPool.Job, path: Int, bytes: Int) {
            self.job = job
            self.path = path
            self.bytes = bytes
        }
    }

    /// Runs `jobs` on the pool, each counted in its path's backlog (`queuedBytes`) until it ends.
    func runTracked(_ jobs: [TrackedJob]) async -> [Int32] {
        locked { state in
            for tracked in jobs { state.queuedBytes[tracked.path] += Int64(tracked.bytes) }
        }
        return await pool.run(
            jobs.map { tracked in
                { [self] in
                    let rc = tracked.job()
                    locked { $0.queuedBytes[tracked.path] -= Int64(tracked.bytes) }
                    return rc
                }
            })
    }

    /// The paths holding `key`: its slot's, then its copies'; none when it is not stored.
    func paths(of key: BlockKey, in state: State) -> [Int] {
        guard let location = state.map[key] else { return [] }
        return [location.path] + (state.copies[key]?.map(\.path) ?? [])
    }

    /// Swarm's paths for the blocks of a new batch.
    func swarmPaths(keys: [BlockKey], lengths: [Int], in state: State) -> [Int] {
        state.swarm!.placeBatch(
            keys: keys, lengths: lengths.map { FlashLayout.slotFootprint(payloadLength: $0) }, queuedBytes: state.queuedBytes,
            usedBytes: state.allocators.map { Int64($0.liveBytes) }, pathsOf: { paths(of: $0, in: state) })
    }

    /// Points each read of a batch at the copy whose path has the fewest bytes queued.
    func chooseCopies(_ reads: inout [(index: Int, location: FlashSlotLocation)], keys: [BlockKey], in state: inout State) {
        let candidates = reads.map { [$0.location] + (state.copies[keys[$0.index]] ?? []) }
        guard candidates.contains(where: { $0.count > 1 }) else { return }
        let chosen = SwarmPlacement.chooseCopies(
            candidates.map { $0.map(\.path) }, lengths: reads.map(\.location.footprint), queuedBytes: state.queuedBytes)
        for n in reads.indices { reads[n].location = candidates[n].first { $0.path == chosen[n] }! }
    }

    /// Drops the extra copies of `key`, giving their room and their replication budget back.
    func dropCopies(of key: BlockKey, in state: inout State) {
        if let copies = state.copies.removeValue(forKey: key) {
            for copy in copies { state.allocators[copy.path].release(segment: copy.segment, footprint: copy.footprint) }
        }
        state.swarm?.forgetCopies(of: key)
    }

    /// Drops every extra copy that lies in `segment` of `path` (before compacting it).
    func dropCopies(inPath path: Int, segment: Int, in state: inout State) {
        let keys = state.copies.compactMap { key, copies in copies.contains { $0.path == path && $0.segment == segment } ? key : nil }
        for key in keys { dropCopies(of: key, in: &state) }
    }

    /// After a read batch whose `keys` arrived intact in `sources` (issued when the paths had
    /// `queuedAtIssue` bytes queued): tells swarm placement, drops the copies it gives up and
    /// starts writing the copies it asks for from the bytes just read. The writes run on the I/O
    /// threads after `get` returns; `close` waits for them.
    func copyAfterRead(keys: [BlockKey], sources: [FlashReadTarget], queuedAtIssue: [Int64]) {
        let planned: [(slot: PlannedSlot, source: FlashSlotLocation, from: Int)] = locked { state in
            guard !state.closed, state.swarm != nil else { return [] }
            let present = keys.indices.filter { state.map[keys[$0]] != nil }
            let (map, copies) = (state.map, state.copies)
            let pathsOf = { (key: BlockKey) -> [Int] in map[key].map { [$0.path] + (copies[key]?.map(\.path) ?? []) } ?? [] }
            let used = state.allocators.map { Int64($0.liveBytes) }
            // In place: the co-activation record is large, a copy of it per read would cost.
            let plan = state.swarm!.noteRead(
                keys: present.map { keys[$0] }, lengths: present.map { map[keys[$0]]!.footprint }, copies: present.map { pathsOf(keys[$0]) },
                queuedBytes: queuedAtIssue, usedBytes: used, pathsOf: pathsOf)
            for key in plan.drops { dropCopies(of: key, in: &state) }
            let index = Dictionary(present.map { (keys[$0], $0) }, uniquingKeysWith: { first, _ in first })
            var planned: [(slot: PlannedSlot, source: FlashSlotLocation, from: Int)] = []
            for copy in plan.copies {
                guard let from = index[copy.key], let source = state.map[copy.key] else { continue }
                guard let placement = state.allocators[copy.path].allocate(footprints: [source.footprint])?.first else {
                    dropCopies(of: copy.key, in: &state)
                    continue
                }
                let slot = PlannedSlot(key: copy.key, path: copy.path, placement: placement, length: source.length, generation: state.nextGeneration)
                state.nextGeneration += 1
                record(write: slot.footprint, at: placement.offset, path: copy.path, in: &state)
                state.queuedBytes[copy.path] += Int64(slot.footprint)
                planned.append((slot, source, from))
            }
            if !planned.isEmpty { copyWrites.enter() }
            return planned
        }
        guard !planned.isEmpty else { return }
        let buffers = planned.map { copy -> AlignedBuffer in
            let buffer = AlignedBuffer(count: FlashLayout.padded(copy.source.length))
            buffer.bytes.copyMemory(from: UnsafeRawBufferPointer(rebasing: sources[copy.from].bytes[0..<copy.source.length]))
            return buffer
        }
        let remaining = CopyCountdown(planned.count) { [copyWrites] in copyWrites.leave() }
        let checksums = ChecksumBox(count: planned.count)
        pool.enqueue(
            planned.enumerated().map { n, copy in
                let payload = UnsafeRawBufferPointer(rebasing: buffers[n].bytes[0..<copy.source.length])
                let write = writeJob(copy.slot, payload: payload, knownChecksum: copy.source.checksum, checksums: checksums, index: n)
                let buffer = buffers[n]
                return { [self] in
                    let rc = withExtendedLifetime(buffer) { write() }
                    finishCopy(copy.slot, of: copy.source, code: rc)
                    remaining.countDown()
                    return rc
                }
            })
    }

    /// Maps a written copy, unless its write failed, the store closed, or the block changed or
    /// lost its copies meanwhile; then its slot is given back.
    private func finishCopy(_ slot: PlannedSlot, of source: FlashSlotLocation, code: Int32) {
        locked { state in
            state.queuedBytes[slot.path] -= Int64(slot.footprint)
            if code == 0, !state.closed, state.map[slot.key] == source, state.swarm?.copyBytes[slot.key] != nil {
                state.copies[slot.key, default: []].append(slot.location(checksum: source.checksum))
                state.copyBytesWritten += Int64(slot.footprint)
            } else {
                state.allocators[slot.path].release(segment: slot.placement.segment, footprint: slot.footprint)
                if code != 0 { dropCopies(of: slot.key, in: &state) }
            }
        }
    }

    /// Extra copies now, their bytes, and bytes read per path (swarm placement's figures).
    public var copyStats: FlashCopyStats {
        locked { state in
            FlashCopyStats(
                blocksWithCopies: state.copies.count, copies: state.copies.values.reduce(0) { $0 + $1.count },
                copyBytes: state.copies.values.reduce(0) { $0 + $1.reduce(0) { $0 + Int64($1.footprint) } },
                bytesCopied: state.copyBytesWritten, bytesReadPerPath: state.pathBytesRead)
        }
    }
}

/// Figures of the store's extra copies (swarm placement) and of its reads per path.
public struct FlashCopyStats: Hashable, Sendable {
    /// Blocks that have at least one extra copy.
    public var blocksWithCopies: Int
    /// Extra copies in all.
    public var copies: Int
    /// Footprint bytes of the extra copies.
    public var copyBytes: Int64
    /// Footprint bytes of extra copies written since the store opened (dropped ones included).
    public var bytesCopied: Int64
    /// Slot bytes read from each path since the store opened.
    public var bytesReadPerPath: [Int64]
}

/// Calls `done` once `countDown` has been called `count` times (from any thread).
private final class CopyCountdown: @unchecked Sendable {
    private let lock = NSLock()
    private var left: Int
    private let done: @Sendable () -> Void

    init(_ count: Int, done: @escaping @Sendable () -> Void) {
        left = count
        self.done = done
    }

    func countDown() {
        lock.lock()
        left -= 1
        let finished = left == 0
        lock.unlock()
        if finished { done() }
    }
}
