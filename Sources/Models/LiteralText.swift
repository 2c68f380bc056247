/// Text operations at the level of Unicode scalars, as HF `tokenizers` does them on Rust chars.
/// Swift's `String` compares grapheme clusters instead: a space followed by a combining mark is one
/// `Character`, so `replacingOccurrences(of: " ", ...)` and `hasPrefix(" ")` would not see the space.
extension String {
    /// `self` with every occurrence of `pattern` (as bytes) replaced by `replacement`.
    func replacingLiterally(_ pattern: String, with replacement: String) -> String {
        let bytes = Array(utf8)
        let target = Array(pattern.utf8)
        guard !target.isEmpty, bytes.count >= target.count else { return self }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == target[0], i + target.count <= bytes.count, bytes[i..<(i + target.count)].elementsEqual(target) {
                out += replacement.utf8
                i += target.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        // Valid UTF-8 with whole scalars swapped for whole scalars stays valid.
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether the first Unicode scalars of `self` are those of `prefix`.
    func startsLiterally(with prefix: String) -> Bool {
        unicodeScalars.starts(with: prefix.unicodeScalars)
    }
}
