/// Which swapped sequences have their blocks read into host memory ahead of their resume (a
/// pure decision; the scheduler applies it each step, the engine does the reads).
///
/// A swapped sequence resumes once the device has blocks for it; its swap-in then reads its
/// blocks from the tier, and on flash that read (hundreds of MB at a disk's 1-3 GB/s) is time
/// the sequence is neither running nor being read while the blocks freed for it sit idle. The
/// scheduler knows who resumes next before the blocks are free: the swapped queue in resume
/// order. Reading those sequences' blocks into host memory while the device is still full
/// turns the swap-in at resume into a host-to-device copy.
///
/// The next `depth` sequences in resume order are wanted (those `prefetchable`: swapped to a
/// tier worth reading ahead, with blocks to read). Prefetches of sequences no longer wanted are
/// dropped (a sequence preempted ahead of them took their place in line, or they left the queue).
/// Wanted sequences are started in resume order while their blocks fit `capacityBlocks` beside
/// those already held; the first that does not fit whole gets its leading blocks in the room
/// left (its swap-in reads the rest from the tier) and stops the rest, so a later sequence never
/// takes the room an earlier one will need.
public enum SwapPrefetchDecision {
    /// A swapped sequence in resume order.
    public struct Candidate: Hashable, Sendable {
        /// The sequence.
        public var sequence: SequenceID
        /// Its blocks in the tier (those the device still caches too).
        public var blocks: Int
        /// Whether its blocks may be read ahead: swapped (not still swapping out) to flash.
        public var prefetchable: Bool

        public init(sequence: SequenceID, blocks: Int, prefetchable: Bool) {
            self.sequence = sequence
            self.blocks = blocks
            self.prefetchable = prefetchable
        }
    }

    /// What to change.
    public struct Change: Sendable {
        /// Sequences whose prefetch starts now, in resume order, each with the number of its
        /// leading blocks to read (all of them, or what room is left).
        public var start: [(sequence: SequenceID, blocks: Int)] = []
        /// Sequences whose prefetch is dropped.
        public var drop: [SequenceID] = []
    }

    /// The change for `candidates` (the swapped queue in resume order) when `held` maps each
    /// sequence with a prefetch (in flight or done) to its blocks.
    public static func decide(
        candidates: [Candidate], held: [SequenceID: Int], depth: Int, capacityBlocks: Int
    ) -> Change {
        var change = Change()
        let wanted = candidates.prefix(max(depth, 0)).filter { $0.prefetchable && $0.blocks > 0 }
        let wantedIDs = Set(wanted.map(\.sequence))
        change.drop = held.keys.filter { !wantedIDs.contains($0) }.sorted()
        var holding = held.filter { wantedIDs.contains($0.key) }.values.reduce(0, +)
        for candidate in wanted where held[candidate.sequence] == nil {
            let blocks = min(candidate.blocks, capacityBlocks - holding)
            if blocks > 0 { change.start.append((candidate.sequence, blocks)) }
            holding += blocks
            if blocks < candidate.blocks { break }
        }
        return change
    }
}
