import Models

/// A generated token's log probability and its most likely alternatives' (asked for with
/// `SamplingParams.logprobs`), each with the bytes the token stands for, so that a client can
/// show it without the tokenizer (a token may hold part of a UTF-8 character).
public struct GeneratedLogprobs: Sendable, Hashable {
    /// One token: its id, its bytes and its log probability.
    public struct Entry: Sendable, Hashable {
        public var token: Int
        public var bytes: [UInt8]
        public var logprob: Float

        public init(token: Int, bytes: [UInt8], logprob: Float) {
            self.token = token
            self.bytes = bytes
            self.logprob = logprob
        }
    }

    /// The generated token.
    public var chosen: Entry
    /// The most likely tokens at its position, most likely first.
    public var top: [Entry]

    public init(chosen: Entry, top: [Entry]) {
        self.chosen = chosen
        self.top = top
    }

    /// `logprobs` with each token's bytes from `tokenizer`; a special token (EOS, a chat
    /// template's markers) has none, as it adds nothing to the text (llama.cpp's server does the same).
    init(_ logprobs: TokenLogprobs, tokenizer: Tokenizer) {
        func entry(_ e: TokenLogprobs.Entry) -> Entry {
            Entry(token: e.token, bytes: tokenizer.isSpecial(e.token) ? [] : tokenizer.bytes(of: e.token), logprob: e.logprob)
        }
        self.init(chosen: entry(logprobs.chosen), top: logprobs.top.map(entry))
    }
}
