/// An ordered set of block ids in `0..<capacity`, oldest first, as a doubly linked list threaded
/// through two arrays: appending, removing any member and taking the first are O(1).
///
/// The pool's cached free blocks live here. An `OrderedSet` did the same with O(n) removals (its
/// element array shifts and its hash table is rebuilt around the gap); with thousands of cached
/// blocks every block handed out (the oldest removed) and every prefix hit (one removed from the
/// middle) cost tens of microseconds, inside the server's step.
struct BlockLRUList: Sequence, Sendable {
    /// No block: the end of the list, or a block not in it.
    private static let none = -1
    /// The block after each member, `none` for the last.
    private var next: [Int]
    /// The block before each member, `none` for the first; `notMember` for a block not in the list.
    private var previous: [Int]
    private static let notMember = -2
    private(set) var first: Int?
    private var last = BlockLRUList.none
    private(set) var count = 0

    /// An empty list of blocks in `0..<capacity`.
    init(capacity: Int) {
        next = Array(repeating: Self.none, count: capacity)
        previous = Array(repeating: Self.notMember, count: capacity)
    }

    var isEmpty: Bool { count == 0 }

    /// Makes room for ids in `0..<capacity`.
    mutating func grow(to capacity: Int) {
        guard capacity > next.count else { return }
        next += Array(repeating: Self.none, count: capacity - next.count)
        previous += Array(repeating: Self.notMember, count: capacity - previous.count)
    }

    func contains(_ block: Int) -> Bool { previous[block] != Self.notMember }

    /// Adds `block`, not a member, as the newest.
    mutating func append(_ block: Int) {
        precondition(!contains(block), "block \(block) is already in the list")
        previous[block] = last
        next[block] = Self.none
        if last == Self.none { first = block } else { next[last] = block }
        last = block
        count += 1
    }

    /// Removes `block` if it is a member; returns whether it was.
    @discardableResult
    mutating func remove(_ block: Int) -> Bool {
        guard contains(block) else { return false }
        let before = previous[block]
        let after = next[block]
        if before == Self.none { first = after == Self.none ? nil : after } else { next[before] = after }
        if after == Self.none { last = before } else { previous[after] = before }
        previous[block] = Self.notMember
        next[block] = Self.none
        count -= 1
        return true
    }

    /// The member after `block` (a member), or nil for the newest.
    func member(after block: Int) -> Int? {
        precondition(contains(block), "block \(block) is not in the list")
        return next[block] == Self.none ? nil : next[block]
    }

    /// The members, oldest first.
    func makeIterator() -> Iterator { Iterator(links: next, current: first ?? Self.none) }

    struct Iterator: IteratorProtocol {
        fileprivate let links: [Int]
        fileprivate var current: Int

        mutating func next() -> Int? {
            guard current != BlockLRUList.none else { return nil }
            defer { current = links[current] }
            return current
        }
    }
}
