/// The merge step of BPE: a word's symbols are merged pairwise, lowest merge rank first, until no
/// adjacent pair has a merge.
struct BPEMerger: Sendable {
    /// Two adjacent token ids.
    struct Pair: Hashable, Sendable {
        let left: Int32
        let right: Int32
    }

    /// For each mergeable pair, its rank (lower merges first) and the id of the merged token.
    let merges: [Pair: (rank: Int32, merged: Int32)]

    /// Merges `symbols` in place.
    func merge(_ symbols: inout [Int32]) {
        guard symbols.count > 1 else { return }
        while true {
            var bestRank = Int32.max
            var bestMerged: Int32 = 0
            var bestPair = Pair(left: -1, right: -1)
            for i in 0..<(symbols.count - 1) {
                if let m = merges[Pair(left: symbols[i], right: symbols[i + 1])], m.rank < bestRank {
                    bestRank = m.rank
                    bestMerged = m.merged
                    bestPair = Pair(left: symbols[i], right: symbols[i + 1])
                }
            }
            if bestRank == Int32.max { return }
            // Merge every occurrence of the best pair, leftmost first, without overlaps.
            var out: [Int32] = []
            out.reserveCapacity(symbols.count)
            var i = 0
            while i < symbols.count {
                if i + 1 < symbols.count, symbols[i] == bestPair.left, symbols[i + 1] == bestPair.right {
                    out.append(bestMerged)
                    i += 2
                } else {
                    out.append(symbols[i])
                    i += 1
                }
            }
            symbols = out
            if symbols.count == 1 { return }
        }
    }
}
