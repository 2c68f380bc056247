/// Keys in the order they were last used, least recent first, with O(1) append, removal and
/// taking the oldest: each key gets a slot (reused once its key goes), and the slots are ordered
/// by a `BlockLRUList`.
///
/// The flash tier's prefix blocks live here: with an `OrderedSet` every load's `touch` and every
/// trimmed block shifted all the others, which on a drive holding 100K blocks of the prefix
/// cache was a millisecond of the step thread a block.
struct KeyLRUList<Key: Hashable & Sendable>: Sendable {
    private var slots: [Key: Int] = [:]
    private var keys: [Key?] = []
    private var freeSlots: [Int] = []
    private var order = BlockLRUList(capacity: 0)

    var count: Int { order.count }
    /// The least recently used key.
    var first: Key? { order.first.map { keys[$0]! } }
    /// The keys, least recently used first.
    var ordered: [Key] { order.map { keys[$0]! } }

    /// Adds `key` as the most recently used; a key already there keeps its place.
    mutating func append(_ key: Key) {
        guard slots[key] == nil else { return }
        let slot: Int
        if let reused = freeSlots.popLast() {
            slot = reused
        } else {
            slot = keys.count
            keys.append(nil)
            order.grow(to: max(16, keys.count * 2))
        }
        keys[slot] = key
        slots[key] = slot
        order.append(slot)
    }

    /// Removes `key`; returns whether it was there.
    @discardableResult
    mutating func remove(_ key: Key) -> Bool {
        guard let slot = slots.removeValue(forKey: key) else { return false }
        order.remove(slot)
        keys[slot] = nil
        freeSlots.append(slot)
        return true
    }

    /// Removes and returns the least recently used key.
    mutating func removeFirst() -> Key? {
        guard let key = first else { return nil }
        remove(key)
        return key
    }

    /// Removes every key.
    mutating func removeAll() { self = KeyLRUList() }
}
