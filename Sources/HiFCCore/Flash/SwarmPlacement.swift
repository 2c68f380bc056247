/// Copies of flash blocks to add or drop, as `SwarmPlacement.noteRead` decides them.
public struct ReplicationPlan: Hashable, Sendable {
    /// One extra copy to write: the block and the path it goes to.
    public struct Copy: Hashable, Sendable {
        public var key: BlockKey
        public var path: Int

        public init(key: BlockKey, path: Int) {
            self.key = key
            self.path = path
        }
    }

    /// Extra copies to write.
    public var copies: [Copy] = []
    /// Blocks whose extra copies to drop (their primary copy stays).
    public var drops: [BlockKey] = []

    public init(copies: [Copy] = [], drops: [BlockKey] = []) {
        self.copies = copies
        self.drops = drops
    }

    /// Whether the plan changes nothing.
    public var isEmpty: Bool { copies.isEmpty && drops.isEmpty }
}

/// The Swarm placement over several flash paths (SSDs), as pure decisions.
///
/// - New blocks: a batch's blocks (one sequence's swap-out, one prefix save) will be read back
///   together, and so will blocks that were read together before (`CoActivationRecord`). Each new
///   block goes to the path holding the fewest of those partners, then the one with the fewest
///   bytes queued, then the least used: one later read then spreads over every drive.
/// - Extra copies of content (prefix) blocks, within a byte budget: a block read by many requests
///   gets one more copy each `replicateAfterReads` reads, up to one per path, when its read had
///   to queue behind more bytes than another path held (a copy there would have been faster); and
///   when a prefix load found its blocks crowded on some paths, blocks read more than once are
///   copied to the paths it left idle. A copy goes where the block's partners are fewest. When the budget is
///   spent, a hotter block takes the copies of the coldest one. Copies of swapped-sequence blocks
///   are never made: each is read once.
/// - Reads: each block is read from the copy whose path has the fewest bytes queued.
public struct SwarmPlacement: Sendable {
    /// The knobs.
    public struct Settings: Hashable, Sendable {
        /// A content block gets one more copy each time its remembered reads pass another multiple of this.
        public var replicateAfterReads: Int
        /// Bytes all extra copies may take together.
        public var replicationBudgetBytes: Int64
        /// Most copies of one block (primary included); nil: one per path.
        public var maxCopies: Int?

        public init(replicateAfterReads: Int = 4, replicationBudgetBytes: Int64, maxCopies: Int? = nil) {
            precondition(replicateAfterReads > 0, "replicateAfterReads must be positive")
            self.replicateAfterReads = replicateAfterReads
            self.replicationBudgetBytes = replicationBudgetBytes
            self.maxCopies = maxCopies
        }
    }

    /// Number of paths.
    public let pathCount: Int
    /// The knobs.
    public var settings: Settings
    /// Which blocks were read together lately.
    public private(set) var record: CoActivationRecord
    /// Bytes of extra copies per block that has some.
    public private(set) var copyBytes: [BlockKey: Int64] = [:]
    /// Bytes of all extra copies.
    public private(set) var replicaBytes: Int64 = 0

    /// A placement over `pathCount` paths.
    public init(pathCount: Int, settings: Settings, record: CoActivationRecord = CoActivationRecord()) {
        precondition(pathCount > 0, "placement needs at least one flash path")
        self.pathCount = pathCount
        self.settings = settings
        self.record = record
    }

    private var maxCopies: Int { min(pathCount, max(settings.maxCopies ?? pathCount, 1)) }

    // MARK: New blocks

    /// The path of each block of a new batch. `queuedBytes` and `usedBytes` have one entry per
    /// path; `pathsOf` gives the paths that hold a stored block (none for one not stored). Only
    /// partners with a single copy count: one with several can be read from another path.
    public func placeBatch(
        keys: [BlockKey], lengths: [Int], queuedBytes: [Int64], usedBytes: [Int64], pathsOf: (BlockKey) -> [Int]
    ) -> [Int] {
        precondition(keys.count == lengths.count && queuedBytes.count == pathCount && usedBytes.count == pathCount)
        var queued = queuedBytes
        var used = usedBytes
        var batchCount = [Int](repeating: 0, count: pathCount)
        var chosen: [Int] = []
        chosen.reserveCapacity(keys.count)
        let inBatch = Set(keys)
        for (key, length) in zip(keys, lengths) {
            var partners = batchCount
            for partner in record.partners(of: key) where !inBatch.contains(partner) {
                let paths = pathsOf(partner)
                if paths.count == 1, paths[0] >= 0, paths[0] < pathCount { partners[paths[0]] += 1 }
            }
            let path = (0..<pathCount).min { (partners[$0], queued[$0], used[$0], $0) < (partners[$1], queued[$1], used[$1], $1) }!
            chosen.append(path)
            batchCount[path] += 1
            queued[path] += Int64(length)
            used[path] += Int64(length)
        }
        return chosen
    }

    // MARK: Reads

    /// The copy each block of a read batch is read from: `copies[i]` lists the paths holding
    /// block `i` (primary first). Blocks with one copy are placed first, then each other block on
    /// its copy whose path has the fewest bytes queued, this batch's reads included.
    public static func chooseCopies(_ copies: [[Int]], lengths: [Int], queuedBytes: [Int64]) -> [Int] {
        precondition(copies.count == lengths.count)
        var queued = queuedBytes
        var chosen = copies.map { $0.first ?? 0 }
        let order = copies.indices.sorted { (copies[$0].count, $0) < (copies[$1].count, $1) }
        for index in order where !copies[index].isEmpty {
            let path = copies[index].min { (queued[$0], $0) < (queued[$1], $1) }!
            chosen[index] = path
            queued[path] += Int64(lengths[index])
        }
        return chosen
    }

    // MARK: Replication

    /// Records a read batch (one swap-in or prefix load) and decides extra copies. `copies[i]`
    /// lists the paths holding `keys[i]` now; `queuedBytes` is each path's backlog when the batch
    /// was issued; `pathsOf` gives the paths of any other stored block.
    public mutating func noteRead(
        keys: [BlockKey], lengths: [Int], copies: [[Int]], queuedBytes: [Int64], usedBytes: [Int64], pathsOf: (BlockKey) -> [Int]
    ) -> ReplicationPlan {
        precondition(keys.count == lengths.count && keys.count == copies.count)
        record.record(keys)
        guard pathCount > 1 else { return ReplicationPlan() }
        var plan = ReplicationPlan()
        var holders = copies.map { Set($0) }
        var queued = queuedBytes
        var used = usedBytes
        let batch = Dictionary(keys.indices.map { (keys[$0], $0) }, uniquingKeysWith: { first, _ in first })

        /// Plans one more copy of block `index` on `path` (the best one when nil); false when
        /// no path or no budget is left for it.
        func addCopy(_ index: Int, on path: Int? = nil) -> Bool {
            let key = keys[index]
            guard holders[index].count < maxCopies else { return false }
            let target =
                path
                ?? bestPathForCopy(
                    of: key, avoiding: holders[index], queued: queued, used: used,
                    pathsOf: { batch[$0].map { Array(holders[$0]) } ?? pathsOf($0) })
            guard let target, !holders[index].contains(target), makeRoom(Int64(lengths[index]), for: key, sparing: batch, plan: &plan)
            else { return false }
            plan.copies.append(.init(key: key, path: target))
            holders[index].insert(target)
            copyBytes[key, default: 0] += Int64(lengths[index])
            replicaBytes += Int64(lengths[index])
            queued[target] += Int64(lengths[index])
            used[target] += Int64(lengths[index])
            return true
        }

        // Hot blocks whose copies all sat behind a busier queue than another path's: one more
        // copy per `replicateAfterReads` reads.
        let idlest = queuedBytes.min() ?? 0
        for index in keys.indices where keys[index].kind == .content && !holders[index].isEmpty {
            let waited = holders[index].map { queuedBytes[$0] }.min()! - idlest >= Int64(lengths[index])
            let wanted = min(maxCopies, 1 + record.reads(of: keys[index]) / settings.replicateAfterReads)
            if waited, holders[index].count < wanted { _ = addCopy(index) }
        }

        // A crowded load: copy blocks read more than once from its busiest paths to its idlest.
        let spreadable = keys.indices.filter {
            keys[$0].kind == .content && !holders[$0].isEmpty && record.reads(of: keys[$0]) > 1
        }
        guard spreadable.count > 1 else { return plan }
        let idle = [Int64](repeating: 0, count: pathCount)
        while true {
            let reads = Self.chooseCopies(keys.indices.map { holders[$0].sorted() }, lengths: lengths, queuedBytes: idle)
            var count = [Int](repeating: 0, count: pathCount)
            for path in reads { count[path] += 1 }
            let idlest = (0..<pathCount).min { (count[$0], $0) < (count[$1], $1) }!
            let busiest = (0..<pathCount).max { (count[$0], -$0) < (count[$1], -$1) }!
            guard count[busiest] - count[idlest] > 1,
                let index = spreadable.first(where: { reads[$0] == busiest && !holders[$0].contains(idlest) }),
                addCopy(index, on: idlest)
            else { break }
        }
        return plan
    }

    /// Forgets the extra copies of `key` (dropped, failed to write, or the block deleted or
    /// replaced), giving their bytes back to the budget.
    public mutating func forgetCopies(of key: BlockKey) {
        if let bytes = copyBytes.removeValue(forKey: key) { replicaBytes -= bytes }
    }

    /// The path for a new copy of `key`: not one that holds it; the fewest of its partners that
    /// can be read only there, then the fewest bytes queued, then the least used.
    private func bestPathForCopy(
        of key: BlockKey, avoiding holders: Set<Int>, queued: [Int64], used: [Int64], pathsOf: (BlockKey) -> [Int]
    ) -> Int? {
        var partners = [Int](repeating: 0, count: pathCount)
        for partner in record.partners(of: key) {
            let paths = pathsOf(partner)
            if paths.count == 1, paths[0] >= 0, paths[0] < pathCount { partners[paths[0]] += 1 }
        }
        return (0..<pathCount).filter { !holders.contains($0) }
            .min { (partners[$0], queued[$0], used[$0], $0) < (partners[$1], queued[$1], used[$1], $1) }
    }

    /// Makes room in the budget for `bytes` of copies of `key`, planning drops of colder blocks'
    /// copies (never those of the batch being read) where needed; false when it cannot.
    private mutating func makeRoom(_ bytes: Int64, for key: BlockKey, sparing batch: [BlockKey: Int], plan: inout ReplicationPlan) -> Bool {
        let heat = record.reads(of: key)
        while replicaBytes + bytes > settings.replicationBudgetBytes {
            let coldest = copyBytes.keys.filter { batch[$0] == nil }
                .min { (record.reads(of: $0), $0.high, $0.low) < (record.reads(of: $1), $1.high, $1.low) }
            guard let coldest, record.reads(of: coldest) < heat else { return false }
            plan.drops.append(coldest)
            forgetCopies(of: coldest)
        }
        return true
    }
}
