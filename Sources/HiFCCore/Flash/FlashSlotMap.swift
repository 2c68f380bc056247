/// The fine-grained mapping of the flash tier: each block key to the one slot that holds its
/// current bytes.
///
/// The map only records decisions; the store keeps the segment allocator's live counts in step by
/// releasing every location the map hands back as replaced or removed.
public struct FlashSlotMap: Sendable {
    private var slots: [BlockKey: FlashSlotLocation] = [:]

    /// An empty map.
    public init() {}

    /// Number of mapped keys.
    public var count: Int { slots.count }

    /// The slot of `key`, if mapped.
    public subscript(key: BlockKey) -> FlashSlotLocation? { slots[key] }

    /// Maps `key` to `location` and returns the location it replaces, which is now dead.
    ///
    /// A location with a lower generation than the current one does not replace it (recovery
    /// may meet an old copy after a newer one); it is returned instead, as the dead one.
    @discardableResult
    public mutating func insert(_ key: BlockKey, at location: FlashSlotLocation) -> FlashSlotLocation? {
        if let current = slots[key], current.generation > location.generation { return location }
        let old = slots[key]
        slots[key] = location
        return old
    }

    /// Unmaps `key` and returns its location, which is now dead.
    @discardableResult
    public mutating func remove(_ key: BlockKey) -> FlashSlotLocation? {
        slots.removeValue(forKey: key)
    }

    /// Unmaps `key` only if it still maps to `location` (a compaction's move must not undo a
    /// newer put); returns whether it did.
    public mutating func replace(_ key: BlockKey, expecting location: FlashSlotLocation, with new: FlashSlotLocation) -> Bool {
        guard slots[key] == location else { return false }
        slots[key] = new
        return true
    }

    /// Keys whose slots lie in `segment` of `path`, with their locations.
    public func entries(inPath path: Int, segment: Int) -> [(key: BlockKey, location: FlashSlotLocation)] {
        slots.filter { $0.value.path == path && $0.value.segment == segment }
            .map { (key: $0.key, location: $0.value) }
            .sorted { $0.location.offset < $1.location.offset }
    }

    /// Every mapped key and its location.
    public var entries: [(key: BlockKey, location: FlashSlotLocation)] {
        slots.map { (key: $0.key, location: $0.value) }
    }
}
