import Engine
import Foundation
import HiFCCore

/// Which OpenAI endpoint a request came to; it decides the shape of the response.
enum CompletionEndpoint: String, Sendable {
    case completions = "/v1/completions"
    case chatCompletions = "/v1/chat/completions"

    /// Prefix of response ids (`cmpl-…`, `chatcmpl-…`).
    var idPrefix: String { self == .completions ? "cmpl-" : "chatcmpl-" }
}

/// A validated request, ready for the engine: its prompts tokenized, its sampling parameters
/// checked against the model's context, one `GenerationRequest` per choice.
///
/// Everything that can be wrong with a request is found here, before a response starts, so that a
/// bad request is a 4xx with a named parameter and never a broken stream.
struct CompletionPlan: Sendable {
    var endpoint: CompletionEndpoint
    /// The response id; each choice's engine request id is this plus `-<index>`.
    var id: String
    /// The model name echoed in responses.
    var model: String
    /// Unix time of the request.
    var created: Int
    /// Tokens of each prompt.
    var promptTokenCounts: [Int]
    /// One engine request per choice, in choice order (prompt-major, then `n`).
    var choices: [GenerationRequest]
    /// Whether to answer with server-sent events.
    var stream: Bool
    /// Whether a stream ends with a chunk carrying `usage`.
    var includeUsage: Bool
    /// With `echo`, the text of each choice's prompt, which its text starts with; else empty.
    var echoTexts: [String]

    /// Default `max_tokens` of `/v1/completions` (OpenAI's); chat defaults to the rest of the context.
    static let defaultCompletionTokens = 16
    /// Most choices one request may ask for.
    static let maxChoices = 16

    /// Prompt tokens of the whole request (each prompt counted once, whatever `n`).
    var promptTokens: Int { promptTokenCounts.reduce(0, +) }

    /// Refuses a request whose prompts times `n` make more sequences than `limits` allow; checked
    /// before anything is tokenized, so that a huge list of prompts costs no work.
    static func checkSequenceCount(prompts: Int, options: GenerationOptions, promptParam: String, limits: RequestLimits) throws(OpenAIError) {
        let n = options.n ?? 1
        guard (1...Self.maxChoices).contains(n) else {
            throw .invalidRequest("'n' must be between 1 and \(Self.maxChoices); got \(n).", param: "n", code: "invalid_value")
        }
        let sequences = prompts * n
        guard sequences <= limits.maxSequences else {
            throw .requestLimitExceeded(
                "sequences (\(prompts) prompt(s) x n=\(n))", asked: sequences, limit: limits.maxSequences, setting: "--max-request-sequences",
                param: n > 1 ? "n" : promptParam)
        }
    }

    /// Checks `options` and the tokenized `prompts` against `service` and `limits` and builds the
    /// engine requests; `promptTexts` (one a prompt) are what `echo` repeats.
    init(
        endpoint: CompletionEndpoint, options: GenerationOptions, prompts: [[Int]], promptTexts: [String] = [], promptParam: String,
        service: any GenerationService, servedModelName: String, limits: RequestLimits
    ) throws(OpenAIError) {
        guard options.model == servedModelName else { throw .modelNotFound(options.model, served: servedModelName) }
        try Self.checkSequenceCount(prompts: prompts.count, options: options, promptParam: promptParam, limits: limits)
        let n = options.n ?? 1
        let temperature = options.temperature ?? 1
        guard temperature.isFinite, (0...2).contains(temperature) else {
            throw .invalidRequest("'temperature' must be between 0 and 2; got \(temperature).", param: "temperature", code: "invalid_value")
        }
        let topP = options.topP ?? 1
        guard topP.isFinite, topP > 0, topP <= 1 else {
            throw .invalidRequest("'top_p' must be greater than 0 and at most 1; got \(topP).", param: "top_p", code: "invalid_value")
        }
        if let maxTokens = options.maxTokens, maxTokens < 1 {
            throw .invalidRequest("'max_tokens' must be at least 1; got \(maxTokens).", param: "max_tokens", code: "invalid_value")
        }
        guard !options.stop.contains(where: \.isEmpty) else {
            throw .invalidRequest("'stop' must not contain an empty string.", param: "stop", code: "invalid_value")
        }
        let limit = service.maxContextTokens
        let sequences = prompts.count * n
        let promptTokens = prompts.reduce(0) { $0 + $1.count } * n
        guard promptTokens <= limits.maxPromptTokens else {
            throw .requestLimitExceeded(
                "prompt tokens (counting each of the n choices)", asked: promptTokens, limit: limits.maxPromptTokens,
                setting: "--max-request-prompt-tokens", param: promptParam)
        }
        // An unset max_tokens means "as many as allowed": the context's room, within the limit.
        let defaultShare = max(1, limits.maxCompletionTokens / sequences)
        var choices: [GenerationRequest] = []
        var echoTexts: [String] = []
        let id = endpoint.idPrefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
        for (p, tokens) in prompts.enumerated() {
            guard !tokens.isEmpty else {
                throw .invalidRequest("The \(promptParam) is empty.", param: promptParam, code: "empty_prompt")
            }
            if let bad = tokens.first(where: { $0 < 0 }) {
                throw .invalidRequest("The \(promptParam) holds the invalid token id \(bad).", param: promptParam, code: "invalid_value")
            }
            guard tokens.count < limit else {
                throw .invalidRequest(
                    "This model's maximum context length is \(limit) tokens; the \(promptParam) has \(tokens.count), leaving no room to generate.",
                    param: promptParam, code: "context_length_exceeded")
            }
            let room = limit - tokens.count
            let maxTokens: Int
            if let asked = options.maxTokens {
                guard asked <= room else {
                    throw OpenAIError(GenerationError.contextTooLong(promptTokens: tokens.count, maxTokens: asked, limit: limit))
                }
                maxTokens = asked
            } else {
                maxTokens = min(endpoint == .completions ? min(Self.defaultCompletionTokens, room) : room, defaultShare)
            }
            var template = SamplingParams(
                maxTokens: maxTokens, temperature: Float(temperature), topP: Float(topP), stop: options.stop, ignoreEOS: options.ignoreEOS)
            try options.sampling.apply(to: &template, endpoint: endpoint, choices: n)
            for _ in 0..<n {
                let index = choices.count
                var sampling = template
                if options.sampling.echo { echoTexts.append(p < promptTexts.count ? promptTexts[p] : "") }
                // Choices of one seeded request differ from each other but repeat across requests.
                sampling.seed = options.seed.map { UInt64(bitPattern: $0) &+ UInt64(index) }
                choices.append(GenerationRequest(id: "\(id)-\(index)", promptTokens: tokens, sampling: sampling, cacheSalt: options.cacheSalt))
            }
        }
        // After the context checks, which name the more basic mistake of a single huge max_tokens.
        if let asked = options.maxTokens, asked * sequences > limits.maxCompletionTokens {
            throw .requestLimitExceeded(
                "completion tokens (max_tokens \(asked) x \(sequences) sequence(s))", asked: asked * sequences, limit: limits.maxCompletionTokens,
                setting: "--max-request-completion-tokens", param: "max_tokens")
        }
        self.endpoint = endpoint
        self.id = id
        self.model = servedModelName
        self.created = Int(Date().timeIntervalSince1970)
        self.promptTokenCounts = prompts.map(\.count)
        self.choices = choices
        self.stream = options.stream
        self.includeUsage = options.includeUsage
        self.echoTexts = echoTexts
    }
}
