import Collections

/// The device's KV blocks: which are free, and how many owners each used block has.
///
/// Every change of a block's state happens here (as in vLLM v1's `block_pool`): a block is free
/// (reference count 0, on the free list) or used (count >= 1, not on it). Sequences hold
/// references through their `BlockTable`; whoever allocates or retains a block must release it
/// exactly once. Misuse (releasing a free block, asking for a block that does not exist) is a
/// programming error and stops the process, because a wrongly freed block would let two sequences
/// write the same KV (the eviction bug vLLM PR 40330's review found).
public struct BlockPool: Sendable {
    /// Number of blocks the pool manages (ids `0..<capacity`).
    public let capacity: Int
    private var freeList: Deque<Int>
    private var refCounts: [Int]

    /// A pool of `capacity` free blocks.
    public init(capacity: Int) {
        precondition(capacity >= 0, "a block pool's capacity must not be negative")
        self.capacity = capacity
        self.freeList = Deque(0..<capacity)
        self.refCounts = Array(repeating: 0, count: capacity)
    }

    /// Blocks that can be allocated now.
    public var freeCount: Int { freeList.count }
    /// Blocks with at least one owner.
    public var usedCount: Int { capacity - freeList.count }
    /// Fraction of blocks in use, 0...1.
    public var utilization: Double { capacity == 0 ? 0 : Double(usedCount) / Double(capacity) }

    /// Owners of `block`; 0 means free.
    public func refCount(_ block: Int) -> Int { refCounts[block] }

    /// Takes `count` free blocks, each with one owner, or none at all when fewer are free.
    public mutating func allocate(_ count: Int) -> [Int]? {
        precondition(count >= 0)
        guard count <= freeList.count else { return nil }
        var blocks: [Int] = []
        blocks.reserveCapacity(count)
        for _ in 0..<count {
            let block = freeList.removeFirst()
            assert(refCounts[block] == 0)
            refCounts[block] = 1
            blocks.append(block)
        }
        return blocks
    }

    /// Adds an owner to each of `blocks` (a block shared by two sequences).
    public mutating func retain(_ blocks: [Int]) {
        for block in blocks {
            precondition(refCounts[block] > 0, "retain of free KV block \(block)")
            refCounts[block] += 1
        }
    }

    /// Drops one owner of each of `blocks`; a block with no owner left goes back on the free list.
    public mutating func release(_ blocks: [Int]) {
        for block in blocks {
            precondition(refCounts[block] > 0, "release of free KV block \(block)")
            refCounts[block] -= 1
            if refCounts[block] == 0 { freeList.append(block) }
        }
    }
}
