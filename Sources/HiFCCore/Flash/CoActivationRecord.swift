import Collections

/// Which flash blocks were read together recently (the Swarm paper's co-activation): each read
/// batch (one swap-in, or one prefix load) is one group, and the last `windowGroups` groups are
/// remembered.
///
/// From them: how hot a block is (how many remembered groups read it), and its partners (the
/// blocks of its most recent groups), which a placement puts on other paths than the block so one
/// retrieval uses every drive. Memory is bounded by `windowGroups * maxGroupKeys` keys.
public struct CoActivationRecord: Sendable {
    /// Groups remembered.
    public let windowGroups: Int
    /// Keys kept of one group (its first ones; a longer batch is cut).
    public let maxGroupKeys: Int
    /// Most recent groups remembered per key, for its partners.
    public let groupsPerKey: Int

    private var groups: Deque<(id: Int, keys: [BlockKey])> = []
    private var nextGroup = 0
    private var keys: [BlockKey: KeyRecord] = [:]

    private struct KeyRecord: Sendable {
        /// Remembered groups that read the key.
        var reads = 0
        /// Ids of its most recent groups, oldest first.
        var recentGroups: [Int] = []
    }

    /// An empty record.
    public init(windowGroups: Int = 1024, maxGroupKeys: Int = 256, groupsPerKey: Int = 2) {
        precondition(windowGroups > 0 && maxGroupKeys > 0 && groupsPerKey > 0, "the record's bounds must be positive")
        self.windowGroups = windowGroups
        self.maxGroupKeys = maxGroupKeys
        self.groupsPerKey = groupsPerKey
    }

    /// Keys that appear in a remembered group.
    public var trackedKeys: Int { keys.count }

    /// Records one batch of keys read together; the oldest group is forgotten past the window.
    public mutating func record(_ batch: [BlockKey]) {
        var seen = Set<BlockKey>()
        let kept = batch.filter { seen.insert($0).inserted }.prefix(maxGroupKeys)
        guard !kept.isEmpty else { return }
        let id = nextGroup
        nextGroup += 1
        for key in kept {
            keys[key, default: KeyRecord()].reads += 1
            keys[key]!.recentGroups.append(id)
            if keys[key]!.recentGroups.count > groupsPerKey { keys[key]!.recentGroups.removeFirst() }
        }
        groups.append((id, Array(kept)))
        if groups.count > windowGroups { forgetOldestGroup() }
    }

    /// Remembered groups that read `key`: its hotness.
    public func reads(of key: BlockKey) -> Int { keys[key]?.reads ?? 0 }

    /// Keys read together with `key` in its most recent groups (at most `limit`, itself excluded).
    public func partners(of key: BlockKey, limit: Int = 64) -> [BlockKey] {
        guard let record = keys[key], let first = groups.first?.id else { return [] }
        var partners: [BlockKey] = []
        var seen: Set<BlockKey> = [key]
        for id in record.recentGroups.reversed() where id >= first {
            for partner in groups[id - first].keys where seen.insert(partner).inserted {
                partners.append(partner)
                if partners.count == limit { return partners }
            }
        }
        return partners
    }

    private mutating func forgetOldestGroup() {
        let (id, members) = groups.removeFirst()
        for key in members {
            guard var record = keys[key] else { continue }
            record.reads -= 1
            record.recentGroups.removeAll { $0 == id }
            keys[key] = record.reads > 0 ? record : nil
        }
    }
}
