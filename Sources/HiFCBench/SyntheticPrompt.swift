import Models

/// Prompt text of a requested length in tokens, made of common English words drawn at random.
///
/// Without a tokenizer one word stands for one token: the words are short, frequent ones that
/// byte-level BPE vocabularies (GPT-2, Llama 3, SmolLM2) and the synthetic model's tokenizer keep
/// whole, so the server's count is close (it reports the exact one in `usage`). With the served
/// model's tokenizer the text is fitted to the exact count, and the token ids are available for
/// servers that take them as the prompt.
public struct SyntheticPrompt: Sendable {
    /// The tokenizer lengths are counted with; nil counts words.
    public var tokenizer: Tokenizer?

    public init(tokenizer: Tokenizer?) { self.tokenizer = tokenizer }

    /// One piece of prompt: its text and, when a tokenizer counted it, its token ids.
    public struct Piece: Sendable, Hashable {
        public var text: String
        /// Exactly the requested number of ids (present only with a tokenizer).
        public var tokenIDs: [Int]?
        /// The length asked for.
        public var tokens: Int
    }

    /// Text of `tokens` tokens of random words.
    public func piece(tokens: Int, using random: inout SeededGenerator) -> Piece {
        var words = (0..<tokens).map { _ in Self.words[Int(random.next() % UInt64(Self.words.count))] }
        guard let tokenizer else { return Piece(text: words.joined(separator: " "), tokenIDs: nil, tokens: tokens) }
        // Words and tokens are close to one to one: add or drop words by the difference a few
        // times, then cut the ids to the exact length.
        var ids = tokenizer.encode(words.joined(separator: " "), addSpecialTokens: false)
        for _ in 0..<8 where ids.count != tokens {
            if ids.count < tokens {
                words += (0..<(tokens - ids.count)).map { _ in Self.words[Int(random.next() % UInt64(Self.words.count))] }
            } else {
                words.removeLast(min(words.count - 1, max(1, (ids.count - tokens) / 2)))
            }
            ids = tokenizer.encode(words.joined(separator: " "), addSpecialTokens: false)
        }
        while ids.count < tokens {
            words.append(Self.words[Int(random.next() % UInt64(Self.words.count))])
            ids = tokenizer.encode(words.joined(separator: " "), addSpecialTokens: false)
        }
        if ids.count > tokens {
            ids.removeLast(ids.count - tokens)
            return Piece(text: tokenizer.decode(ids), tokenIDs: ids, tokens: tokens)
        }
        return Piece(text: words.joined(separator: " "), tokenIDs: ids, tokens: tokens)
    }

    /// Token ids of text the server produced (a reply in a multi-turn session), without a BOS.
    public func tokenIDs(of text: String) -> [Int]? { tokenizer?.encode(text, addSpecialTokens: false) }

    /// Frequent words, each one token after a space in common byte-level BPE vocabularies (GPT-2,
    /// Llama 3, SmolLM2) and in the synthetic model's small one (these are the words of its
    /// training text that it learned whole).
    static let words: [String] = [
        "a", "about", "all", "and", "as", "at", "be", "cache", "can", "closed", "could", "day", "days", "door", "evening", "every", "had",
        "in", "is", "it", "kept", "library", "memory", "more", "morning", "new", "next", "of", "old", "on", "people", "per", "processor",
        "program", "read", "second", "she", "should", "square", "storage", "tea", "than", "that", "the", "then", "thousand", "to", "token",
        "turned", "was", "we", "week", "when", "where", "why", "with", "year", "you",
    ]
}
