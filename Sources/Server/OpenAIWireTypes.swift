import Engine
import Foundation

// The JSON bodies of the OpenAI API as this server reads and writes them. Field names follow the
// API (snake_case); unknown fields of a request are ignored, as OpenAI-compatible servers do.

/// The fields `/v1/completions` and `/v1/chat/completions` share: model, sampling, streaming.
struct GenerationOptions: Decodable, Sendable {
    var model: String
    var maxTokens: Int?
    var temperature: Double?
    var topP: Double?
    var seed: Int64?
    var stop: [String]
    var n: Int?
    var stream: Bool
    var includeUsage: Bool
    /// Generate to `max_tokens` even past the model's end-of-sequence token (`ignore_eos`, an
    /// extension vLLM and llama.cpp's server also take; benchmarks use it for fixed output lengths).
    var ignoreEOS: Bool
    /// vLLM's `cache_salt`: requests see only cached prefixes written under the same salt.
    var cacheSalt: String?
    /// Penalties, bias, log probabilities and the other sampling fields.
    var sampling: SamplingOptions

    private enum CodingKeys: String, CodingKey {
        case model, temperature, seed, stop, n, stream
        case ignoreEOS = "ignore_eos"
        case cacheSalt = "cache_salt"
        case maxTokens = "max_tokens"
        case maxCompletionTokens = "max_completion_tokens"
        case topP = "top_p"
        case streamOptions = "stream_options"
    }

    private struct StreamOptions: Decodable {
        var includeUsage: Bool?
        private enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        maxTokens = try Self.wholeNumber(c, .maxCompletionTokens) ?? Self.wholeNumber(c, .maxTokens)
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        seed = try Self.seed(c)
        n = try Self.wholeNumber(c, .n)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream) ?? false
        includeUsage = try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)?.includeUsage ?? false
        ignoreEOS = try c.decodeIfPresent(Bool.self, forKey: .ignoreEOS) ?? false
        cacheSalt = try c.decodeIfPresent(String.self, forKey: .cacheSalt)
        sampling = try SamplingOptions(from: decoder)
        if let one = try? c.decodeIfPresent(String.self, forKey: .stop) {
            stop = [one]
        } else {
            stop = try c.decodeIfPresent([String].self, forKey: .stop) ?? []
        }
    }
}

extension GenerationOptions {
    /// The seed, a 64-bit integer; a number outside that range (2^70, 1.5) is refused with the key
    /// named (Foundation's own error for it says the body is not JSON).
    private static func seed(_ c: KeyedDecodingContainer<CodingKeys>) throws -> Int64? {
        do {
            return try c.decodeIfPresent(Int64.self, forKey: .seed)
        } catch {
            guard let number = try? c.decode(Double.self, forKey: .seed) else { throw error }
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: c.codingPath + [CodingKeys.seed],
                    debugDescription: "expected a whole number between \(Int64.min) and \(Int64.max), got \(number)"))
        }
    }

    /// A count that must be a whole number; 2.5 is refused with the key named (Foundation's own
    /// error for it names no key on every platform).
    private static func wholeNumber(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Int? {
        guard let value = try c.decodeIfPresent(Double.self, forKey: key) else { return nil }
        guard value == value.rounded(), abs(value) < 1e15 else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [key], debugDescription: "expected a whole number, got \(value)"))
        }
        return Int(value)
    }
}

/// The body of `POST /v1/completions`.
struct CompletionRequest: Decodable, Sendable {
    /// One entry per prompt: text, or token ids as the client sent them.
    enum Prompt: Sendable {
        case text(String)
        case tokens([Int])
    }

    var options: GenerationOptions
    var prompts: [Prompt]

    private enum CodingKeys: String, CodingKey { case prompt }

    init(from decoder: any Decoder) throws {
        options = try GenerationOptions(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // OpenAI accepts a string, a list of strings, a list of token ids, or a list of those.
        if let text = try? c.decode(String.self, forKey: .prompt) {
            prompts = [.text(text)]
        } else if let texts = try? c.decode([String].self, forKey: .prompt) {
            prompts = texts.map(Prompt.text)
        } else if let tokens = try? c.decode([Int].self, forKey: .prompt) {
            prompts = [.tokens(tokens)]
        } else if let lists = try? c.decode([[Int]].self, forKey: .prompt) {
            prompts = lists.map(Prompt.tokens)
        } else {
            guard c.contains(.prompt) else {
                throw DecodingError.keyNotFound(CodingKeys.prompt, .init(codingPath: c.codingPath, debugDescription: "missing"))
            }
            throw DecodingError.typeMismatch(
                String.self,
                .init(
                    codingPath: c.codingPath + [CodingKeys.prompt],
                    debugDescription: "expected a string, a list of strings, a list of token ids, or a list of such lists"))
        }
        guard !prompts.isEmpty else {
            throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.prompt], debugDescription: "the list of prompts is empty"))
        }
    }
}

/// The body of `POST /v1/chat/completions`.
struct ChatCompletionRequest: Decodable, Sendable {
    var options: GenerationOptions
    var messages: [ChatMessage]

    private enum CodingKeys: String, CodingKey { case messages }

    /// A message; `content` is a string, a list of text parts, or null (an assistant turn that
    /// only called tools).
    private struct Message: Decodable {
        var role: String
        var content: String

        private enum CodingKeys: String, CodingKey { case role, content }
        private struct Part: Decodable {
            var type: String
            var text: String?
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decode(String.self, forKey: .role)
            guard ChatCompletionRequest.roles.contains(role) else {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: c.codingPath + [CodingKeys.role],
                        debugDescription: "unknown role '\(role)'; expected one of \(ChatCompletionRequest.roles.sorted().joined(separator: ", "))"))
            }
            if try c.decodeNil(forKey: .content) {
                content = ""
            } else if let text = try? c.decode(String.self, forKey: .content) {
                content = text
            } else {
                let parts = try c.decode([Part].self, forKey: .content)
                content = try parts.map { part in
                    guard part.type == "text", let text = part.text else {
                        throw DecodingError.dataCorrupted(
                            .init(
                                codingPath: c.codingPath + [CodingKeys.content],
                                debugDescription: "only text content parts are supported, not '\(part.type)'"))
                    }
                    return text
                }.joined()
            }
        }
    }

    static let roles: Set<String> = ["system", "developer", "user", "assistant", "tool"]

    init(from decoder: any Decoder) throws {
        options = try GenerationOptions(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        messages = try c.decode([Message].self, forKey: .messages).map { ChatMessage(role: $0.role, content: $0.content) }
        guard !messages.isEmpty else {
            throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.messages], debugDescription: "the list of messages is empty"))
        }
    }
}

/// `usage` of a response.
struct UsageBody: Encodable, Sendable {
    var promptTokens: Int
    var completionTokens: Int
    /// Prompt tokens whose KV came from the prefix cache (`prompt_tokens_details.cached_tokens`).
    var cachedTokens: Int
    var totalTokens: Int { promptTokens + completionTokens }

    private enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
        case promptTokensDetails = "prompt_tokens_details"
    }

    private struct PromptTokensDetails: Encodable {
        var cachedTokens: Int
        private enum CodingKeys: String, CodingKey { case cachedTokens = "cached_tokens" }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encode(completionTokens, forKey: .completionTokens)
        try c.encode(totalTokens, forKey: .totalTokens)
        try c.encode(PromptTokensDetails(cachedTokens: cachedTokens), forKey: .promptTokensDetails)
    }
}

/// A response or stream chunk of either endpoint: the envelope is shared, the choices differ.
struct CompletionEnvelope: Encodable, Sendable {
    var id: String
    /// `text_completion`, `chat.completion` or `chat.completion.chunk`.
    var object: String
    var created: Int
    var model: String
    var choices: [ResponseChoice]
    /// Present in final responses, and in the last chunk of a stream that asked for it.
    var usage: UsageBody?
}

/// One choice of a response or chunk.
struct ResponseChoice: Encodable, Sendable {
    /// What the choice carries, by endpoint.
    enum Content: Sendable {
        /// `/v1/completions`, whole or streamed: `"text"`.
        case text(String)
        /// `/v1/chat/completions`, whole: `"message": {"role": "assistant", "content"}`.
        case message(String)
        /// `/v1/chat/completions`, streamed: `"delta"`; the first carries the role, the last nothing.
        case delta(role: String?, content: String?)
    }

    var index: Int
    var content: Content
    var finishReason: FinishReason?
    /// The tokens' log probabilities, when the request asked for them.
    var logprobs: LogprobsBody? = nil

    private enum CodingKeys: String, CodingKey {
        case index, text, message, delta, logprobs
        case finishReason = "finish_reason"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        switch content {
        case .text(let text):
            try c.encode(text, forKey: .text)
        case .message(let text):
            try c.encode(["role": "assistant", "content": text], forKey: .message)
        case .delta(let role, let text):
            var delta: [String: String] = [:]
            delta["role"] = role
            delta["content"] = text
            try c.encode(delta, forKey: .delta)
        }
        if let logprobs {
            try c.encode(logprobs, forKey: .logprobs)
        } else {
            try c.encodeNil(forKey: .logprobs)  // null, as OpenAI sends when logprobs were not asked for
        }
        try c.encode(finishReason?.rawValue, forKey: .finishReason)
    }
}

/// The body of `GET /v1/models`.
struct ModelListBody: Encodable, Sendable {
    struct Model: Encodable, Sendable {
        var id: String
        var object = "model"
        var created: Int
        var ownedBy = "hifc"
        var maxModelLen: Int

        private enum CodingKeys: String, CodingKey {
            case id, object, created
            case ownedBy = "owned_by"
            case maxModelLen = "max_model_len"
        }
    }

    var object = "list"
    var data: [Model]
}
