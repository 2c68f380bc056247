/// Turns generated token ids into text deltas as they arrive, holding back the bytes of a
/// multi-byte character until it is complete, so every delta is valid text and the deltas join
/// to the full decoded output. A SentencePiece tokenizer's run of byte-fallback tokens is held
/// until the run ends, since HF decodes a run that is not valid UTF-8 as one U+FFFD per byte.
public struct IncrementalDetokenizer: Sendable {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    /// Bytes received but not yet emitted (an incomplete UTF-8 sequence at the end).
    private var pending: [UInt8] = []

    /// A detokenizer for a continuation (no leading space is stripped: the output follows a prompt).
    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one token; returns the text it completes (possibly empty).
    public mutating func append(_ id: Int) -> String {
        if skipSpecialTokens && tokenizer.isSpecial(id) { return "" }
        if tokenizer.decodesByteRunsApart {
            if tokenizer.isByteFallbackToken(id) {
                pending += tokenizer.bytes(of: id)
                return ""
            }
            let delta = (pending.isEmpty ? "" : Tokenizer.byteRunText(pending)) + String(decoding: tokenizer.bytes(of: id), as: UTF8.self)
            pending = []
            return delta
        }
        pending += tokenizer.bytes(of: id)
        let complete = Self.completePrefixLength(pending)
        guard complete > 0 else { return "" }
        let delta = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return delta
    }

    /// Emits whatever is held back (an incomplete character becomes U+FFFD), at the end of output.
    public mutating func flush() -> String {
        guard !pending.isEmpty else { return "" }
        let delta = tokenizer.decodesByteRunsApart ? Tokenizer.byteRunText(pending) : String(decoding: pending, as: UTF8.self)
        pending = []
        return delta
    }

    /// Length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence that
    /// could still be completed by more bytes.
    package static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        // Look back at most 3 bytes for the lead byte of a sequence still missing continuation bytes.
        var i = n - 1
        var continuation = 0
        while i >= 0, i >= n - 4 {
            let b = bytes[i]
            if b & 0xC0 == 0x80 {
                continuation += 1
                i -= 1
                continue
            }
            let needed: Int
            if b & 0x80 == 0 {
                needed = 0
            } else if b & 0xE0 == 0xC0 {
                needed = 1
            } else if b & 0xF0 == 0xE0 {
                needed = 2
            } else if b & 0xF8 == 0xF0 {
                needed = 3
            } else {
                needed = 0
            }
            return continuation < needed ? i : n
        }
        return n
    }
}
