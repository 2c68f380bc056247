/// The router's memory of which replicas were recently sent which prompt prefixes, so a request
/// can go where its prefix is likely cached without asking the engines.
///
/// A prompt's full blocks are named by a chained 64-bit hash (block `i`'s hash covers every token
/// up to the end of block `i`, and the request's cache salt, so equal hashes mean equal prefixes
/// that the engines' prefix cache may share, up to a collision, which costs only a worse routing
/// choice). Each hash remembers the replicas it was routed to. Memory is
/// bounded: at most `capacity` hashes, the least recently routed forgotten first.
public struct PrefixAffinityTable: Sendable {
    /// Tokens per block (the engines' KV block size).
    public let blockTokens: Int
    /// Most block hashes remembered.
    public let capacity: Int
    /// Leading blocks of a prompt looked at, at most (bounds the work per request).
    public let maxBlocks: Int
    /// Most replicas the table tells apart.
    public static let maxReplicas = 64

    private var slotOfHash: [UInt64: Int] = [:]
    private var entries: [Entry] = []
    /// Most recently routed entry, and least recently routed (the next to forget).
    private var newest = -1
    private var oldest = -1

    private struct Entry: Sendable {
        var hash: UInt64
        var replicas: UInt64
        var newer: Int
        var older: Int
    }

    /// An empty table.
    public init(blockTokens: Int, capacity: Int = 65_536, maxBlocks: Int = 512) {
        precondition(blockTokens > 0 && capacity > 0 && maxBlocks > 0, "block size, capacity and block count must be positive")
        self.blockTokens = blockTokens
        self.capacity = capacity
        self.maxBlocks = maxBlocks
    }

    /// Block hashes remembered now.
    public var count: Int { slotOfHash.count }

    /// The chained hashes of the prompt's leading full blocks (at most `maxBlocks`), under `salt`.
    public func blockHashes(_ prompt: [Int], salt: String? = nil) -> [UInt64] {
        let blocks = min(prompt.count / blockTokens, maxBlocks)
        var hashes: [UInt64] = []
        hashes.reserveCapacity(blocks)
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        if let salt {
            for byte in salt.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
            hash = Self.finalize(hash ^ 0x5A17)
        }
        for block in 0..<blocks {
            for token in prompt[block * blockTokens..<(block + 1) * blockTokens] {
                hash = (hash ^ UInt64(bitPattern: Int64(token))) &* 0x0000_0100_0000_01B3
            }
            hash = Self.finalize(hash ^ UInt64(block))
            hashes.append(hash)
        }
        return hashes
    }

    /// For each of `replicas` replicas, how many of the prompt's leading blocks (under the same
    /// `salt`) were routed to it and are still remembered.
    public func affinity(of prompt: [Int], salt: String? = nil, replicas: Int) -> [Int] {
        precondition(replicas > 0 && replicas <= Self.maxReplicas, "the table tells apart 1 to \(Self.maxReplicas) replicas")
        var matched = [Int](repeating: 0, count: replicas)
        var candidates: UInt64 = replicas == 64 ? ~0 : (1 << UInt64(replicas)) - 1
        for hash in blockHashes(prompt, salt: salt) {
            guard let slot = slotOfHash[hash] else { break }
            candidates &= entries[slot].replicas
            if candidates == 0 { break }
            for replica in 0..<replicas where candidates & (1 << UInt64(replica)) != 0 { matched[replica] += 1 }
        }
        return matched
    }

    /// Remembers that `prompt` (with `salt`) was routed to `replica` (its blocks become the most recent).
    public mutating func record(_ prompt: [Int], salt: String? = nil, replica: Int) {
        precondition(replica >= 0 && replica < Self.maxReplicas, "replica \(replica) is outside 0..<\(Self.maxReplicas)")
        for hash in blockHashes(prompt, salt: salt) {
            let slot: Int
            if let existing = slotOfHash[hash] {
                slot = existing
                unlink(slot)
            } else if slotOfHash.count < capacity {
                slot = entries.count
                entries.append(Entry(hash: hash, replicas: 0, newer: -1, older: -1))
                slotOfHash[hash] = slot
            } else {
                slot = oldest
                unlink(slot)
                slotOfHash[entries[slot].hash] = nil
                entries[slot] = Entry(hash: hash, replicas: 0, newer: -1, older: -1)
                slotOfHash[hash] = slot
            }
            entries[slot].replicas |= 1 << UInt64(replica)
            linkAsNewest(slot)
        }
    }

    private mutating func unlink(_ slot: Int) {
        let (newer, older) = (entries[slot].newer, entries[slot].older)
        if newer >= 0 { entries[newer].older = older } else { newest = older }
        if older >= 0 { entries[older].newer = newer } else { oldest = newer }
        entries[slot].newer = -1
        entries[slot].older = -1
    }

    private mutating func linkAsNewest(_ slot: Int) {
        entries[slot].older = newest
        entries[slot].newer = -1
        if newest >= 0 { entries[newest].newer = slot }
        newest = slot
        if oldest < 0 { oldest = slot }
    }

    /// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
    private static func finalize(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x = x &* 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        x = x &* 0xC4CE_B9FE_1A85_EC53
        x ^= x >> 33
        return x
    }
}
