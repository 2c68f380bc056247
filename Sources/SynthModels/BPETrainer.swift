/// Learns BPE merges from word counts: repeatedly merges the most frequent adjacent pair of
/// symbols (ties broken by the pair's spelling, so training is deterministic).
enum BPETrainer {
    /// `words`: each word spelled as its initial symbols, with its count. Returns up to
    /// `maxMerges` merges, in the order learned.
    static func learn(words: [[String]: Int], maxMerges: Int) -> [(String, String)] {
        var words = words.map { (symbols: $0.key, count: $0.value) }
        var merges: [(String, String)] = []
        while merges.count < maxMerges {
            var counts: [PairKey: Int] = [:]
            for word in words where word.symbols.count > 1 {
                for i in 0..<(word.symbols.count - 1) {
                    counts[PairKey(word.symbols[i], word.symbols[i + 1]), default: 0] += word.count
                }
            }
            guard
                let best = counts.max(by: { a, b in
                    a.value != b.value ? a.value < b.value : (a.key.left, a.key.right) > (b.key.left, b.key.right)
                }), best.value >= 2
            else { break }
            let (left, right) = (best.key.left, best.key.right)
            merges.append((left, right))
            for w in words.indices where words[w].symbols.count > 1 {
                var out: [String] = []
                var i = 0
                let s = words[w].symbols
                while i < s.count {
                    if i + 1 < s.count, s[i] == left, s[i + 1] == right {
                        out.append(left + right)
                        i += 2
                    } else {
                        out.append(s[i])
                        i += 1
                    }
                }
                words[w].symbols = out
            }
        }
        return merges
    }

    private struct PairKey: Hashable {
        let left: String
        let right: String
        init(_ left: String, _ right: String) {
            self.left = left
            self.right = right
        }
    }
}
