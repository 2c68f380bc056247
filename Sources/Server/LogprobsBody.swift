import Engine
import Models

/// A choice's `logprobs`, in the form of its endpoint. A token's text is its bytes read as UTF-8;
/// a token whose bytes are not UTF-8 on their own (part of a character another token completes)
/// is written `bytes:\xe3\x81`, as OpenAI writes it, so that two such tokens stay apart. Chat
/// entries also carry the bytes themselves. A log probability of minus infinity (a token the
/// model rules out) is written as -9999, as vLLM writes it: JSON has no infinity.
enum LogprobsBody: Encodable, Sendable {
    /// `/v1/completions`: parallel lists, with each token's `text_offset` (`TextOffsets`).
    case completion([GeneratedLogprobs], textOffsets: [Int])
    /// `/v1/chat/completions`: `{"content": [{token, logprob, bytes, top_logprobs}]}`.
    case chat([GeneratedLogprobs])

    /// The text a token shows as.
    static func text(_ entry: GeneratedLogprobs.Entry) -> String {
        let text = String(decoding: entry.bytes, as: UTF8.self)
        guard !text.utf8.elementsEqual(entry.bytes) else { return text }
        return "bytes:" + entry.bytes.map { "\\x" + String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// Where each token starts in a choice's text, in characters (Unicode scalars, as Python
    /// counts them): a token that continues a character starts where that character does.
    struct TextOffsets: Sendable {
        private var characters = 0
        /// The bytes of a character still incomplete at the end of the tokens so far.
        private var pending: [UInt8] = []

        init() {}

        /// The offset of a token with `bytes`, after the tokens before it.
        mutating func next(_ bytes: [UInt8]) -> Int {
            let start = characters
            let all = pending + bytes
            let complete = IncrementalDetokenizer.completePrefixLength(all)
            characters += String(decoding: all[..<complete], as: UTF8.self).unicodeScalars.count
            pending = Array(all[complete...])
            return start
        }
    }

    private static func finite(_ logprob: Float) -> Float { logprob.isFinite ? logprob : -9999 }

    private enum CompletionKeys: String, CodingKey {
        case tokens
        case tokenLogprobs = "token_logprobs"
        case topLogprobs = "top_logprobs"
        case textOffset = "text_offset"
    }

    private enum ChatKeys: String, CodingKey { case content, refusal }

    private struct ChatEntry: Encodable {
        var token: String
        var logprob: Float
        var bytes: [UInt8]
        var topLogprobs: [ChatEntry]?

        init(_ entry: GeneratedLogprobs.Entry, top: [GeneratedLogprobs.Entry]?) {
            token = LogprobsBody.text(entry)
            logprob = LogprobsBody.finite(entry.logprob)
            bytes = entry.bytes
            topLogprobs = top?.map { ChatEntry($0, top: nil) }
        }

        private enum CodingKeys: String, CodingKey {
            case token, logprob, bytes
            case topLogprobs = "top_logprobs"
        }
    }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .completion(let tokens, let textOffsets):
            var c = encoder.container(keyedBy: CompletionKeys.self)
            try c.encode(tokens.map { Self.text($0.chosen) }, forKey: .tokens)
            try c.encode(tokens.map { Self.finite($0.chosen.logprob) }, forKey: .tokenLogprobs)
            // The alternatives and the chosen token, as vLLM lists them (two tokens that read
            // the same keep the more likely one's figure).
            let tops = tokens.map { token in
                (token.top + [token.chosen]).reversed().reduce(into: [String: Float]()) { $0[Self.text($1)] = Self.finite($1.logprob) }
            }
            try c.encode(tops, forKey: .topLogprobs)
            try c.encode(textOffsets, forKey: .textOffset)
        case .chat(let tokens):
            var c = encoder.container(keyedBy: ChatKeys.self)
            try c.encode(tokens.map { ChatEntry($0.chosen, top: $0.top) }, forKey: .content)
            try c.encodeNil(forKey: .refusal)
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
