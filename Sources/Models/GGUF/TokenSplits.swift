/// Every way to cut a vocabulary token, at a Unicode scalar boundary, into two vocabulary tokens:
/// what both of GGUFTokenizer's merge derivations start from. A Gemma or Llama vocabulary has
/// 32K-262K tokens and several cuts each, so the pieces are not built as strings: a token is found
/// by a polynomial hash of its UTF-8 bytes, the hashes of a token's prefixes are kept as it is cut,
/// and a suffix's hash is the whole token's minus its prefix's times a power of the base. A hit is
/// then confirmed byte for byte, so a hash collision costs time, never a wrong merge.
struct TokenSplits {
    private let bytes: [[UInt8]]
    /// The tokens by hash: the first with each, then any later ones with a hash already taken.
    private var first: [UInt64: Int] = [:]
    private var later: [UInt64: [Int]] = [:]
    /// `base^i`, for i up to the longest token's byte count.
    private let powers: [UInt64]

    private static let base: UInt64 = 0x100_0000_01b3

    init(tokens: [String]) {
        bytes = tokens.map { Array($0.utf8) }
        var powers: [UInt64] = [1]
        for _ in 0..<(bytes.map(\.count).max() ?? 0) { powers.append(powers.last! &* Self.base) }
        self.powers = powers
        first.reserveCapacity(tokens.count)
        for (id, text) in bytes.enumerated() {
            let hash = Self.prefixHashes(text).last!
            if first[hash] == nil {
                first[hash] = id
            } else {
                later[hash, default: []].append(id)
            }
        }
    }

    /// The cuts of token `id` into two tokens, left pieces shortest first, as their ids (for a
    /// text the vocabulary holds twice, the later id, as a dictionary filled in id order keeps).
    func splits(of id: Int) -> [(left: Int, right: Int)] {
        let text = bytes[id]
        let hashes = Self.prefixHashes(text)
        var found: [(left: Int, right: Int)] = []
        for cut in 1..<max(text.count, 1) where text[cut] & 0xC0 != 0x80 {
            let suffix = hashes[text.count] &- hashes[cut] &* powers[text.count - cut]
            if let left = token(text[..<cut], hash: hashes[cut]), let right = token(text[cut...], hash: suffix) {
                found.append((left, right))
            }
        }
        return found
    }

    /// The token whose bytes are `piece` (the latest such id), given the piece's hash.
    private func token(_ piece: ArraySlice<UInt8>, hash: UInt64) -> Int? {
        guard let id = first[hash] else { return nil }
        for candidate in (later[hash] ?? []).reversed() where bytes[candidate].elementsEqual(piece) { return candidate }
        return bytes[id].elementsEqual(piece) ? id : nil
    }

    /// `h[i]`: the hash of the first i bytes (each byte counted plus one, so zeros count too).
    private static func prefixHashes(_ text: [UInt8]) -> [UInt64] {
        var hashes: [UInt64] = [0]
        hashes.reserveCapacity(text.count + 1)
        for byte in text { hashes.append(hashes.last! &* base &+ UInt64(byte) &+ 1) }
        return hashes
    }
}
