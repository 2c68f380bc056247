/// The traffic a prefix cache is deployed for, as token prompts: conversations that resend their
/// history, and many questions over the same long documents.
public enum PrefixWorkload: String, CaseIterable, CustomStringConvertible, Sendable {
    /// Multi-turn chat: each turn resends the whole conversation (earlier prompts and answers)
    /// and adds a new user message.
    case chat
    /// Shared-document QA: several long documents, many questions each, interleaved.
    case docqa
    /// One request per prefix size, alone, to time loading a known prefix against computing it.
    case sweep

    public var description: String { rawValue }
}

/// Deterministic token ids standing in for text: the same seed gives the same tokens, so a
/// document or a message recurs exactly when it should and nowhere else.
public struct TokenSource: Sendable {
    /// Token ids are drawn from `lowest ..< vocabulary` (the lowest ids are often special tokens).
    let vocabulary: Int
    let lowest = 3

    /// Tokens below `vocabulary`.
    public init(vocabulary: Int) { self.vocabulary = vocabulary }

    /// `count` tokens for the stream named `seed`.
    func tokens(_ count: Int, seed: UInt64) -> [Int] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 0xD1B5_4A32_D192_ED03
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return lowest + Int((state >> 33) % UInt64(max(vocabulary - lowest, 1)))
        }
    }
}

/// The shape of each workload (lengths in tokens).
public struct PrefixWorkloadShape: Sendable {
    /// chat: conversations at once, turns each, tokens of each user message, tokens of each answer.
    public var conversations = 8
    public var turns = 8
    public var messageTokens = 256
    public var answerTokens = 32
    /// docqa: documents, their length, questions per document, question tokens, answer tokens,
    /// requests in flight at once.
    public var documents = 3
    public var documentTokens = 8_192
    public var questions = 8
    public var questionTokens = 32
    public var concurrency = 4
    /// sweep: the prefix sizes.
    public var sweepSizes = [1_024, 2_048, 4_096, 8_192, 16_384, 32_768]

    /// The default lengths.
    public init() {}

    /// The docqa requests, interleaved across documents (document 0's first question, document
    /// 1's first, ...), as (document, prompt).
    func documentQuestions(_ source: TokenSource) -> [(document: Int, prompt: [Int])] {
        let documents = (0..<documents).map { source.tokens(documentTokens, seed: 1_000 + UInt64($0)) }
        var requests: [(Int, [Int])] = []
        for question in 0..<questions {
            for (index, document) in documents.enumerated() {
                requests.append((index, document + source.tokens(questionTokens, seed: 2_000 + UInt64(index * questions + question))))
            }
        }
        return requests
    }

    /// Conversation `conversation`'s user message of turn `turn`.
    func message(_ source: TokenSource, conversation: Int, turn: Int) -> [Int] {
        source.tokens(messageTokens, seed: 3_000 + UInt64(conversation * turns + turn))
    }

    /// The sweep's prefix of `size` tokens and the question asked after it.
    func sweepRequest(_ source: TokenSource, size: Int) -> (prefix: [Int], question: [Int]) {
        (source.tokens(size, seed: 4_000 + UInt64(size)), source.tokens(16, seed: 5_000 + UInt64(size)))
    }
}
