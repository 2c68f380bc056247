/// What the scheduler knows of the blocks in the tiers below the device (host memory, flash):
/// which keys are stored, which are being written, which swapped sequences still need which
/// keys, and, for content blocks on flash (the prefix cache's second level), which to drop when
/// the room they may take is used up.
///
/// It is a belief kept in step with the writes the scheduler plans and the outcomes the engine
/// reports; a read can still find a block gone or damaged, and then the sequence recomputes.
public struct TierContents: Sendable {
    /// Stored keys, and whether this instance wrote each (only those it may delete).
    private var stored: [SwapTier: [BlockKey: Bool]] = [:]
    private var pending: [SwapTier: Set<BlockKey>] = [:]
    /// Swapped sequences needing each key (stored or still being written).
    private var pins: [SwapTier: [BlockKey: Int]] = [:]
    /// Content blocks this instance owns on flash that no swapped sequence needs, least recently
    /// used first: the prefix cache's second level.
    private var prefixLRU = KeyLRUList<BlockKey>()
    /// Most content blocks kept on flash for the prefix cache.
    public var prefixCapacityBlocks: Int
    /// Whether content blocks stay on flash when no sequence needs them (the flash prefix cache).
    public let keepsPrefixBlocks: Bool

    /// Empty tiers. With `keepsPrefixBlocks`, at most `prefixCapacityBlocks` content blocks stay
    /// on flash once no sequence needs them.
    public init(keepsPrefixBlocks: Bool, prefixCapacityBlocks: Int) {
        self.keepsPrefixBlocks = keepsPrefixBlocks
        self.prefixCapacityBlocks = prefixCapacityBlocks
    }

    // MARK: Reading

    /// Whether `key` is stored in `tier` (written, not just being written).
    public func isStored(_ key: BlockKey, in tier: SwapTier) -> Bool { stored[tier]?[key] != nil }
    /// Whether a write of `key` to `tier` is in flight.
    public func isPending(_ key: BlockKey, in tier: SwapTier) -> Bool { pending[tier]?.contains(key) == true }
    /// Blocks stored in `tier`.
    public func storedCount(in tier: SwapTier) -> Int { stored[tier]?.count ?? 0 }
    /// Blocks `tier` holds or is being written: the room they take.
    public func occupiedCount(in tier: SwapTier) -> Int { storedCount(in: tier) + (pending[tier]?.count ?? 0) }
    /// Content blocks on flash kept for the prefix cache (needed by no swapped sequence).
    public var prefixBlocks: Int { prefixLRU.count }

    // MARK: Changes

    /// Adds blocks found in `tier` without writing them: content blocks recovered from flash at
    /// start, or another instance's blocks (`owned` false: never deleted by this one).
    public mutating func learn(_ keys: [BlockKey], in tier: SwapTier, owned: Bool) {
        for key in keys where stored[tier]?[key] == nil {
            stored[tier, default: [:]][key] = owned
            keepIfPrefix(key, in: tier)
        }
    }

    /// Forgets blocks that are no longer in `tier` (another instance reused their space).
    public mutating func forget(_ keys: [BlockKey], in tier: SwapTier) {
        for key in keys {
            stored[tier]?[key] = nil
            if tier == .flash { prefixLRU.remove(key) }
        }
    }

    /// Forgets blocks another instance wrote (`owned` false) that it no longer holds; a block
    /// this instance also wrote stays known.
    public mutating func forgetForeign(_ keys: [BlockKey], in tier: SwapTier) {
        for key in keys where stored[tier]?[key] == false { stored[tier]?[key] = nil }
    }

    /// Records that a write of `key` to `tier` starts.
    public mutating func beginWrite(_ key: BlockKey, to tier: SwapTier) {
        pending[tier, default: []].insert(key)
    }

    /// Records the end of a write of `key`: stored when it succeeded. Returns true when the
    /// block was stored but no one needs it any more (its sequence ended meanwhile) and it is not
    /// a prefix block to keep: the caller deletes it.
    public mutating func endWrite(_ key: BlockKey, to tier: SwapTier, succeeded: Bool) -> Bool {
        pending[tier]?.remove(key)
        guard succeeded, stored[tier]?[key] == nil else { return false }
        if pins[tier]?[key] == nil, !keepsPrefix(key, in: tier) { return true }
        stored[tier, default: [:]][key] = true
        keepIfPrefix(key, in: tier)
        return false
    }

    /// Marks `keys` as needed by a swapped sequence: they are not dropped until `unpin`.
    public mutating func pin(_ keys: [BlockKey], in tier: SwapTier) {
        for key in keys {
            pins[tier, default: [:]][key, default: 0] += 1
            if tier == .flash { prefixLRU.remove(key) }
        }
    }

    /// Ends a swapped sequence's need of `keys`. Returns the keys to delete from the tier now:
    /// stored, owned, needed by no one, and not kept as prefix cache blocks (sequence blocks,
    /// host memory, or flash without the prefix cache).
    public mutating func unpin(_ keys: [BlockKey], in tier: SwapTier) -> [BlockKey] {
        var deleted: [BlockKey] = []
        for key in keys {
            guard let count = pins[tier]?[key] else { continue }
            pins[tier]?[key] = count > 1 ? count - 1 : nil
            guard count == 1, let owned = stored[tier]?[key], owned else { continue }
            if keepsPrefix(key, in: tier) {
                prefixLRU.append(key)
            } else {
                stored[tier]?[key] = nil
                deleted.append(key)
            }
        }
        return deleted
    }

    /// Records a use of prefix block `key` on flash (a load), which keeps it longest.
    public mutating func touch(_ key: BlockKey) {
        guard prefixLRU.remove(key) else { return }
        prefixLRU.append(key)
    }

    /// The prefix blocks to delete from flash, least recently used first, so that at most
    /// `prefixCapacityBlocks` stay; they are forgotten here.
    public mutating func trimPrefixBlocks() -> [BlockKey] {
        var deleted: [BlockKey] = []
        while prefixLRU.count > prefixCapacityBlocks, let key = prefixLRU.removeFirst() {
            stored[.flash]?[key] = nil
            deleted.append(key)
        }
        return deleted
    }

    /// Forgets every prefix block this instance owns on flash and returns them for deletion
    /// (`/reset_prefix_cache?flash=true`); blocks swapped sequences need stay.
    public mutating func dropPrefixBlocks() -> [BlockKey] {
        let keys = prefixLRU.ordered
        prefixLRU.removeAll()
        for key in keys { stored[.flash]?[key] = nil }
        return keys
    }

    private func keepsPrefix(_ key: BlockKey, in tier: SwapTier) -> Bool {
        tier == .flash && key.kind == .content && keepsPrefixBlocks
    }

    /// Puts an owned, unneeded content block on flash under the prefix cache's management;
    /// without the prefix cache such a block is left to whoever pinned it.
    private mutating func keepIfPrefix(_ key: BlockKey, in tier: SwapTier) {
        guard keepsPrefix(key, in: tier), stored[tier]?[key] == true, pins[tier]?[key] == nil else { return }
        prefixLRU.append(key)
    }
}
