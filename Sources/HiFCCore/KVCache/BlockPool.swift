import Collections

/// The device's KV blocks: who holds each, which hold cached content, and which may be reused.
///
/// Every change of a block's state happens here (as in vLLM v1's `block_pool`). A block is
/// - *used*: held by one or more sequences (reference count >= 1);
/// - *cached*: free of owners but holding the KV of a full block under its content hash, so a
///   later request with the same prefix can take it back; cached blocks are reused least
///   recently freed first, and their content is forgotten only when the memory is needed;
/// - *empty*: free, no content.
///
/// A block may also be *pinned* by writes in flight that read it (a swap-out, a prefix block
/// saved to flash). A pinned block is never handed out, whatever its reference count, so a write
/// never reads memory a new owner is filling (the eviction bug vLLM PR 40330's review found).
/// Misuse (releasing a free block, committing content twice) stops the process: a wrongly freed
/// block would let two sequences write the same KV.
public struct BlockPool: Sendable {
    /// Number of blocks the pool manages (ids `0..<capacity`).
    public let capacity: Int
    private var refCounts: [Int]
    private var pinCounts: [Int]
    private var contents: [PrefixHash?]
    private var hitCounts: [Int]
    private var blockByContent: [PrefixHash: Int] = [:]
    /// Free, no content, not pinned: handed out first.
    private var empty: Deque<Int>
    /// Free with content, least recently freed first; some may be pinned.
    private var evictable: BlockLRUList
    /// Free, no content, pinned: handed out once their writes finish.
    private var pinnedEmpty: Set<Int> = []
    private var pinnedEvictable = 0
    /// Cached blocks whose content was forgotten to make room, since the pool was made.
    public private(set) var evictions = 0

    /// A pool of `capacity` empty blocks.
    public init(capacity: Int) {
        precondition(capacity >= 0, "a block pool's capacity must not be negative")
        self.capacity = capacity
        refCounts = Array(repeating: 0, count: capacity)
        pinCounts = Array(repeating: 0, count: capacity)
        contents = Array(repeating: nil, count: capacity)
        hitCounts = Array(repeating: 0, count: capacity)
        empty = Deque(0..<capacity)
        evictable = BlockLRUList(capacity: capacity)
    }

    // MARK: Reading

    /// Blocks that can be handed out now: empty ones and cached ones not pinned.
    public var freeCount: Int { empty.count + evictable.count - pinnedEvictable }
    /// Free blocks that writes in flight still read: free once those writes finish.
    public var arrivingCount: Int { pinnedEmpty.count + pinnedEvictable }
    /// Blocks with at least one owner.
    public var usedCount: Int { capacity - empty.count - evictable.count - pinnedEmpty.count }
    /// Free blocks holding cached content.
    public var cachedFreeCount: Int { evictable.count }
    /// Blocks whose content is cached (free or used).
    public var cachedCount: Int { blockByContent.count }
    /// Fraction of blocks with owners, 0...1.
    public var utilization: Double { capacity == 0 ? 0 : Double(usedCount) / Double(capacity) }

    /// Owners of `block`; 0 means free.
    public func refCount(_ block: Int) -> Int { refCounts[block] }
    /// Whether a write in flight still reads `block`.
    public func isPinned(_ block: Int) -> Bool { pinCounts[block] > 0 }
    /// The content `block` holds, if it is cached.
    public func content(of block: Int) -> PrefixHash? { contents[block] }
    /// How often `block`'s content was taken from the cache by another sequence.
    public func hits(of block: Int) -> Int { hitCounts[block] }
    /// The block holding `content`, if it is cached.
    public func block(holding content: PrefixHash) -> Int? { blockByContent[content] }

    // MARK: Owners

    /// Takes `count` blocks, each with one owner: empty blocks first, then cached ones least
    /// recently freed first (forgetting their content). Nil, and nothing taken, when fewer are free.
    public mutating func allocate(_ count: Int) -> [Int]? {
        precondition(count >= 0)
        guard count <= freeCount else { return nil }
        var blocks: [Int] = []
        blocks.reserveCapacity(count)
        while blocks.count < count, let block = empty.popFirst() {
            blocks.append(block)
        }
        var candidate = evictable.first
        while blocks.count < count, let block = candidate {
            candidate = evictable.member(after: block)
            if pinCounts[block] > 0 { continue }
            evictable.remove(block)
            forgetContent(of: block)
            evictions += 1
            blocks.append(block)
        }
        for block in blocks {
            assert(refCounts[block] == 0 && pinCounts[block] == 0)
            refCounts[block] = 1
        }
        return blocks
    }

    /// Adds an owner to each of `blocks`. A cached block without owners is taken back from the
    /// free blocks; taking a cached block counts as a hit.
    public mutating func retain(_ blocks: [Int]) {
        for block in blocks {
            if refCounts[block] == 0 {
                precondition(contents[block] != nil, "retain of free KV block \(block), which holds no cached content")
                evictable.remove(block)
                if pinCounts[block] > 0 { pinnedEvictable -= 1 }
            }
            if contents[block] != nil { hitCounts[block] += 1 }
            refCounts[block] += 1
        }
    }

    /// Drops one owner of each of `blocks`, in order. A block left without owners stays cached
    /// when it holds content (the first released is the first reused), or becomes empty.
    public mutating func release(_ blocks: [Int]) {
        for block in blocks {
            precondition(refCounts[block] > 0, "release of free KV block \(block)")
            refCounts[block] -= 1
            guard refCounts[block] == 0 else { continue }
            if contents[block] != nil {
                evictable.append(block)
                if pinCounts[block] > 0 { pinnedEvictable += 1 }
            } else if pinCounts[block] > 0 {
                pinnedEmpty.insert(block)
            } else {
                empty.append(block)
            }
        }
    }

    // MARK: Pins

    /// Marks `block` as read by a write in flight; it is not handed out until `unpin`.
    public mutating func pin(_ block: Int) {
        precondition(refCounts[block] > 0 || contents[block] != nil, "pin of free KV block \(block)")
        pinCounts[block] += 1
        if pinCounts[block] == 1, refCounts[block] == 0 { pinnedEvictable += 1 }
    }

    /// Ends one write's hold on `block`.
    public mutating func unpin(_ block: Int) {
        precondition(pinCounts[block] > 0, "unpin of KV block \(block), which is not pinned")
        pinCounts[block] -= 1
        guard pinCounts[block] == 0, refCounts[block] == 0 else { return }
        if contents[block] != nil {
            pinnedEvictable -= 1
        } else {
            pinnedEmpty.remove(block)
            empty.append(block)
        }
    }

    // MARK: Content

    /// Records that used block `block` holds the full block `content`, so other sequences can
    /// share it. Returns false, recording nothing, when another block already holds that content
    /// (two sequences computed the same block at once; the second copy stays private).
    @discardableResult
    public mutating func commit(_ block: Int, content: PrefixHash) -> Bool {
        precondition(refCounts[block] > 0, "commit of free KV block \(block)")
        if let holder = blockByContent[content] { return holder == block }
        precondition(contents[block] == nil, "KV block \(block) already holds other content")
        contents[block] = content
        blockByContent[content] = block
        hitCounts[block] = 0
        return true
    }

    /// Free cached blocks in the order they would be reused (least recently freed first), not
    /// pinned, at most `limit`: the blocks a prefix cache should save before they are forgotten.
    public func nextEvictions(limit: Int) -> [Int] {
        var blocks: [Int] = []
        for block in evictable where pinCounts[block] == 0 {
            guard blocks.count < limit else { break }
            blocks.append(block)
        }
        return blocks
    }

    /// Every block holding cached content, with its content.
    public var cachedBlocks: [(block: Int, content: PrefixHash)] { blockByContent.map { ($0.value, $0.key) } }

    /// Forgets every block's cached content (used blocks keep their KV and owners). Returns how
    /// many blocks held content.
    @discardableResult
    public mutating func forgetCachedContent() -> Int {
        let count = blockByContent.count
        for block in Array(blockByContent.values) {
            forgetContent(of: block)
            if refCounts[block] == 0 {
                evictable.remove(block)
                if pinCounts[block] > 0 {
                    pinnedEvictable -= 1
                    pinnedEmpty.insert(block)
                } else {
                    empty.append(block)
                }
            }
        }
        return count
    }

    private mutating func forgetContent(of block: Int) {
        if let content = contents[block] { blockByContent[content] = nil }
        contents[block] = nil
        hitCounts[block] = 0
    }
}
