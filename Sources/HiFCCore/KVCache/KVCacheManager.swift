/// Owns every device KV block on behalf of the scheduler: each sequence's block table, and
/// through `BlockPool` the reference counts, cached content and free blocks.
///
/// The scheduler speaks in sequences and tokens (`allocate`, `grow`, `free`, `cachedPrefix`) and
/// never handles a block's state itself (vLLM v1's `KVCacheManager` over its `BlockPool`;
/// nano-vllm's block manager). Block ids leave it only as a sequence's table, for the model
/// runner, and in the transfers the scheduler plans.
public struct KVCacheManager: Sendable {
    /// Tokens per block.
    public let blockTokens: Int
    /// Whether full blocks are shared between sequences by content (automatic prefix caching).
    public let prefixCaching: Bool
    /// The blocks.
    public private(set) var pool: BlockPool
    private var tables: [SequenceID: [Int]] = [:]
    /// Leading blocks of each table whose content is committed (or was found a duplicate).
    private var committed: [SequenceID: Int] = [:]

    /// A manager of `blocks` blocks of `blockTokens` tokens.
    public init(blockTokens: Int, blocks: Int, prefixCaching: Bool) {
        precondition(blockTokens > 0)
        self.blockTokens = blockTokens
        self.prefixCaching = prefixCaching
        pool = BlockPool(capacity: blocks)
    }

    // MARK: Reading

    /// The device blocks of `id`, in token order (empty when it holds none).
    public func blocks(of id: SequenceID) -> [Int] { tables[id] ?? [] }
    /// Blocks that can be given to a sequence now.
    public var freeBlocks: Int { pool.freeCount }
    /// Free blocks that writes in flight still read.
    public var arrivingBlocks: Int { pool.arrivingCount }
    /// Blocks needed to hold `tokens` tokens.
    public func blocks(forTokens tokens: Int) -> Int { (tokens + blockTokens - 1) / blockTokens }
    /// Blocks `id` lacks to hold `tokens` tokens.
    public func blocksMissing(_ id: SequenceID, forTokens tokens: Int) -> Int {
        max(0, blocks(forTokens: tokens) - (tables[id]?.count ?? 0))
    }

    /// The cached device blocks holding the longest prefix of `hashes`, in order. Nothing is
    /// taken yet (`adopt` does); empty when prefix caching is off.
    public func cachedPrefix<Hashes: Collection<PrefixHash>>(_ hashes: Hashes) -> [Int] {
        guard prefixCaching else { return [] }
        var blocks: [Int] = []
        for hash in hashes {
            guard let block = pool.block(holding: hash) else { break }
            blocks.append(block)
        }
        return blocks
    }

    /// How many free blocks taking `cached` (from `cachedPrefix`) would use up: those no
    /// sequence holds now.
    public func freeBlocksTaken(by cached: [Int]) -> Int {
        cached.filter { pool.refCount($0) == 0 }.count
    }

    // MARK: Tables

    /// Starts `id`'s table with the cached blocks `cached` (shared, not copied).
    public mutating func adopt(_ id: SequenceID, cached: [Int]) {
        precondition(tables[id, default: []].isEmpty, "sequence \(id) already holds blocks")
        pool.retain(cached)
        tables[id] = cached
        committed[id] = cached.count
    }

    /// Gives `id` the blocks it lacks to hold `tokens` tokens. Returns the new blocks, or nil
    /// (and nothing changes) when too few are free.
    public mutating func grow(_ id: SequenceID, toHold tokens: Int) -> [Int]? {
        let missing = blocksMissing(id, forTokens: tokens)
        guard missing > 0 else { return [] }
        guard let blocks = pool.allocate(missing) else { return nil }
        tables[id, default: []] += blocks
        return blocks
    }

    /// Records the content of `id`'s blocks that became full with `computedTokens` tokens, so
    /// other sequences can share them. `hashes[i]` is the hash of the sequence's block `i`.
    /// Returns the blocks committed now (for a write-through prefix cache).
    @discardableResult
    public mutating func commitFullBlocks(_ id: SequenceID, hashes: [PrefixHash], computedTokens: Int) -> [(block: Int, hash: PrefixHash)] {
        guard prefixCaching, let table = tables[id] else { return [] }
        let full = min(computedTokens / blockTokens, hashes.count, table.count)
        var committedNow: [(block: Int, hash: PrefixHash)] = []
        var index = committed[id] ?? 0
        while index < full {
            if pool.commit(table[index], content: hashes[index]) { committedNow.append((table[index], hashes[index])) }
            index += 1
        }
        committed[id] = max(index, committed[id] ?? 0)
        return committedNow
    }

    /// Releases `id`'s blocks beyond the first `count` (a load that delivered fewer blocks).
    public mutating func truncate(_ id: SequenceID, toBlocks count: Int) {
        guard var table = tables[id], table.count > count else { return }
        let dropped = Array(table[count...])
        table.removeLast(table.count - count)
        tables[id] = table
        committed[id] = min(committed[id] ?? 0, count)
        pool.release(dropped.reversed())
    }

    /// Releases all of `id`'s blocks, last first: cached content of a prefix outlives its tail.
    public mutating func free(_ id: SequenceID) {
        guard let table = tables.removeValue(forKey: id) else { return }
        committed[id] = nil
        pool.release(table.reversed())
    }

    // MARK: Writes and the cache

    /// Keeps `block` from being handed out while a write reads it.
    public mutating func pin(_ block: Int) { pool.pin(block) }
    /// Ends a write's hold on `block`.
    public mutating func unpin(_ block: Int) { pool.unpin(block) }

    /// Free cached blocks next in line to be reused, not pinned, at most `limit`.
    public func nextEvictions(limit: Int) -> [(block: Int, hash: PrefixHash)] {
        pool.nextEvictions(limit: limit).compactMap { block in pool.content(of: block).map { (block, $0) } }
    }

    /// Forgets all cached content (`/reset_prefix_cache`); sequences keep their blocks.
    @discardableResult
    public mutating func resetCache() -> Int {
        for id in committed.keys { committed[id] = tables[id]?.count ?? 0 }
        return pool.forgetCachedContent()
    }
}
