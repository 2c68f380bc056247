import Foundation

/// Conversations in the ShareGPT format (`ShareGPT_V3_unfiltered_cleaned_split.json`, the file
/// `vllm bench serve --dataset-name sharegpt` reads): a JSON array of records, each with
/// `conversations`, a list of `{"from": ..., "value": ...}` messages. Turn i of a conversation is
/// its messages 2i (the prompt) and 2i + 1 (the reply whose length the request asks for), whoever
/// is named as their sender, as vLLM takes messages 0 and 1.
public struct ShareGPTDataset: Sendable {
    /// One turn: the message sent and the reply it got in the recorded conversation.
    public struct Turn: Sendable, Hashable {
        public var prompt: String
        public var reply: String
    }

    /// Each conversation's turns (conversations of fewer than two messages are left out).
    public var conversations: [[Turn]]

    /// Why a dataset could not be read or sampled.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case unreadable(path: String, reason: String)
        case notShareGPT(path: String, reason: String)
        case tooFewRequests(path: String, found: Int, wanted: Int, maxRequestTokens: Int)

        public var description: String {
            switch self {
            case .unreadable(let path, let reason): return "cannot read the dataset \(path): \(reason)"
            case .notShareGPT(let path, let reason):
                return "\(path) is not a ShareGPT file (a JSON array of records with \"conversations\": [{\"from\", \"value\"}, ...]): \(reason)"
            case .tooFewRequests(let path, let found, let wanted, let maxRequestTokens):
                return
                    "\(path) gives \(found) requests that fit (a prompt of 4 to 1024 tokens, a reply of at least 4, \(maxRequestTokens) tokens a request in all), fewer than the \(wanted) asked for; lower --num-prompts"
            }
        }
    }

    /// The file's record layout; other keys (`id`, ...) are ignored.
    private struct Record: Decodable {
        struct Message: Decodable {
            var value: String?
        }
        var conversations: [Message]?
    }

    /// The conversations of `data`, read as the file at `path` (named in errors).
    public init(data: Data, path: String) throws(Failure) {
        let records: [Record]
        do { records = try JSONDecoder().decode([Record].self, from: data) } catch {
            throw .notShareGPT(path: path, reason: Self.describe(error))
        }
        conversations = records.compactMap { record in
            let values = (record.conversations ?? []).map { $0.value ?? "" }
            let turns = stride(from: 0, to: values.count - 1, by: 2).map { Turn(prompt: values[$0], reply: values[$0 + 1]) }
            return turns.isEmpty ? nil : turns
        }
        if conversations.isEmpty { throw .notShareGPT(path: path, reason: "no record has a conversation of two messages or more") }
    }

    /// The conversations of the file at `path`.
    public init(contentsOf path: String) throws(Failure) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) } catch {
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        try self.init(data: data, path: path)
    }

    /// Sessions of up to `turns` turns for `requests` requests in all, from the conversations in
    /// an order shuffled by `seed`, as vLLM samples: a turn is kept if its prompt has 4 to 1024
    /// tokens and its reply at least 4 (unless `outputTokens` fixes every request's output), and
    /// the request (the conversation so far, this prompt and its output) stays within
    /// `maxRequestTokens` (vLLM's 2048, or less where the server's context is shorter), counting
    /// `tokensAddedPerMessage` more for each message it sends (the server's chat template). A
    /// session ends at its conversation's first turn that is not kept; the last one ends where the
    /// count is reached. Lengths are counted by `prompts.tokenizer`, or estimated at 4 bytes a token
    /// (and bounded at 3 for the request's fit).
    public func sessions(
        requests: Int, turns: Int, outputTokens: Int?, maxRequestTokens: Int, tokensAddedPerMessage: Int = 0, seed: UInt64,
        prompts: SyntheticPrompt, path: String
    ) throws(Failure) -> [ServeWorkload.Session] {
        var random = SeededGenerator(seed: seed)
        var sessions: [ServeWorkload.Session] = []
        var remaining = requests
        for conversation in conversations.shuffled(using: &random) where remaining > 0 {
            var kept: [ServeWorkload.Turn] = []
            var context = 0
            for turn in conversation.prefix(min(turns, remaining)) {
                let ids = prompts.tokenIDs(of: turn.prompt)
                let promptTokens = ids?.count ?? Self.estimatedTokens(turn.prompt)
                // Uncounted text is bounded at 3 bytes a token, so that an estimate short of the
                // server's count does not take a request past its context.
                let promptBound = ids?.count ?? (turn.prompt.utf8.count + 2) / 3
                let output = outputTokens ?? prompts.tokenIDs(of: turn.reply)?.count ?? Self.estimatedTokens(turn.reply)
                let added = tokensAddedPerMessage * (2 * kept.count + 1)  // the earlier turns' two messages and this one
                guard (4...1024).contains(promptTokens), outputTokens != nil || output >= 4,
                    context + promptBound + output + added <= maxRequestTokens
                else { break }
                kept.append(.init(message: .init(text: turn.prompt, tokenIDs: ids, tokens: promptTokens), outputTokens: output))
                context += promptBound + output
            }
            guard !kept.isEmpty else { continue }
            sessions.append(.init(index: sessions.count, sharedPrefix: nil, turns: kept))
            remaining -= kept.count
        }
        guard remaining == 0 else {
            throw .tooFewRequests(path: path, found: requests - remaining, wanted: requests, maxRequestTokens: maxRequestTokens)
        }
        return sessions
    }

    /// Tokens of `text` without a tokenizer: 4 bytes a token, the usual figure for English under
    /// byte-level BPE vocabularies (the server's `usage` reports the exact prompt counts).
    static func estimatedTokens(_ text: String) -> Int { (text.utf8.count + 3) / 4 }

    /// A decoding error's gist: what was expected where.
    private static func describe(_ error: Error) -> String {
        switch error as? DecodingError {
        case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?, .keyNotFound(_, let context)?, .dataCorrupted(let context)?:
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return (path.isEmpty ? "" : "at \(path): ") + context.debugDescription
        default:
            return "\(error)"
        }
    }
}
