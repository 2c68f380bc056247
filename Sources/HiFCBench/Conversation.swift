import Foundation

/// The messages of one session so far, and the request body that sends them.
public struct Conversation: Sendable {
    /// Who said a message.
    public enum Role: String, Sendable { case user, assistant }

    /// One message: its text and, when known, its token ids.
    public struct Message: Sendable {
        public var role: Role
        public var text: String
        public var tokenIDs: [Int]?
    }

    public private(set) var messages: [Message] = []

    public init() {}

    /// Adds a user message; `document` (a shared prefix) goes before it in the same message.
    public mutating func addUser(_ piece: SyntheticPrompt.Piece, after document: SyntheticPrompt.Piece? = nil) {
        guard let document else {
            messages.append(Message(role: .user, text: piece.text, tokenIDs: piece.tokenIDs))
            return
        }
        let ids = document.tokenIDs.flatMap { documentIDs in piece.tokenIDs.map { documentIDs + $0 } }
        messages.append(Message(role: .user, text: document.text + "\n\n" + piece.text, tokenIDs: ids))
    }

    /// Adds the server's reply.
    public mutating func addAssistant(_ text: String, tokenIDs: [Int]?) {
        messages.append(Message(role: .assistant, text: text, tokenIDs: tokenIDs))
    }

    /// Sampling and stopping settings every request carries.
    public struct Options: Sendable, Hashable {
        /// 0: greedy.
        public var temperature: Double
        /// Sends `ignore_eos: true` (hifc, vLLM and llama-server honour it) so outputs run to
        /// `max_tokens`.
        public var ignoreEOS: Bool
        /// Completions only: sends the prompt as token ids (needs every message's ids).
        public var tokenIDPrompts: Bool
        /// `top_p`, `top_k` and `min_p`, sent when set (as `vllm bench serve` sends them): what a
        /// sampling request costs the server depends on them.
        public var topP: Double?
        public var topK: Int?
        public var minP: Double?

        public init(
            temperature: Double = 0, ignoreEOS: Bool = true, tokenIDPrompts: Bool = false, topP: Double? = nil, topK: Int? = nil,
            minP: Double? = nil
        ) {
            self.temperature = temperature
            self.ignoreEOS = ignoreEOS
            self.tokenIDPrompts = tokenIDPrompts
            self.topP = topP
            self.topK = topK
            self.minP = minP
        }
    }

    /// The JSON body of a streaming request for the conversation so far, asking for `maxTokens`.
    public func body(endpoint: ServeEndpoint, model: String, maxTokens: Int, options: Options) -> [UInt8] {
        var body: [String: Any] = [
            "model": model, "max_tokens": maxTokens, "temperature": options.temperature, "stream": true,
            "stream_options": ["include_usage": true],
        ]
        if options.ignoreEOS { body["ignore_eos"] = true }
        body["top_p"] = options.topP
        body["top_k"] = options.topK
        body["min_p"] = options.minP
        switch endpoint {
        case .chat:
            body["messages"] = messages.map { ["role": $0.role.rawValue, "content": $0.text] }
        case .completions:
            if options.tokenIDPrompts, messages.allSatisfy({ $0.tokenIDs != nil }) {
                body["prompt"] = messages.flatMap { $0.tokenIDs! }
            } else {
                // Turns follow each other as the text continues; a reply is followed by the next
                // message after a blank line.
                body["prompt"] = messages.map(\.text).joined(separator: "\n\n")
            }
        }
        return Array((try? JSONSerialization.data(withJSONObject: body)) ?? Data())
    }
}
