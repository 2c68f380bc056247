import Engine
import HiFCCore

/// The request fields that shape how tokens are chosen beyond temperature and top-p: OpenAI's
/// penalties, `logit_bias` and log probabilities, and the extensions vLLM and llama.cpp's server
/// take (`top_k`, `min_p`, `repetition_penalty`, `min_tokens`). Also the OpenAI fields this server
/// does not implement: a request that sets one is refused with the field named, rather than
/// answered as if it had not been sent (a client asking for JSON output or tool calls must not get
/// free text back that looks like success).
struct SamplingOptions: Decodable, Sendable {
    /// `logprobs`: a count of alternatives on `/v1/completions`, a flag on chat.
    enum Logprobs: Sendable, Equatable {
        case flag(Bool)
        case count(Int)
    }

    var topK: Int?
    var minP: Double?
    var presencePenalty: Double?
    var frequencyPenalty: Double?
    var repetitionPenalty: Double?
    /// Token id (as the JSON key spells it) to bias.
    var logitBias: [String: Double]
    var minTokens: Int?
    var logprobs: Logprobs?
    var topLogprobs: Int?
    var echo: Bool
    /// `best_of`: accepted only equal to `n` (read where `n` is), as this server generates no
    /// extra candidates to choose among.
    var bestOf: Int?
    /// Fields set to something this server does not do, with why; the first one refuses the request.
    var unsupported: [(param: String, reason: String)] = []

    /// Most alternatives a token's log probabilities may list (vLLM's default `max_logprobs`).
    static let maxLogprobs = 20

    private enum CodingKeys: String, CodingKey {
        case logprobs, echo, suffix, tools, functions
        case topK = "top_k"
        case minP = "min_p"
        case presencePenalty = "presence_penalty"
        case frequencyPenalty = "frequency_penalty"
        case repetitionPenalty = "repetition_penalty"
        case logitBias = "logit_bias"
        case minTokens = "min_tokens"
        case topLogprobs = "top_logprobs"
        case bestOf = "best_of"
        case responseFormat = "response_format"
        case promptLogprobs = "prompt_logprobs"
    }

    /// Any JSON value, read only to be counted.
    private struct Ignored: Decodable {}
    private struct ResponseFormat: Decodable { var type: String }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        topK = try c.decodeIfPresent(Int.self, forKey: .topK)
        minP = try c.decodeIfPresent(Double.self, forKey: .minP)
        presencePenalty = try c.decodeIfPresent(Double.self, forKey: .presencePenalty)
        frequencyPenalty = try c.decodeIfPresent(Double.self, forKey: .frequencyPenalty)
        repetitionPenalty = try c.decodeIfPresent(Double.self, forKey: .repetitionPenalty)
        logitBias = try c.decodeIfPresent([String: Double].self, forKey: .logitBias) ?? [:]
        minTokens = try c.decodeIfPresent(Int.self, forKey: .minTokens)
        if try !c.contains(.logprobs) || c.decodeNil(forKey: .logprobs) {
            logprobs = nil
        } else if let flag = try? c.decode(Bool.self, forKey: .logprobs) {
            logprobs = .flag(flag)
        } else {
            logprobs = .count(try c.decode(Int.self, forKey: .logprobs))
        }
        topLogprobs = try c.decodeIfPresent(Int.self, forKey: .topLogprobs)
        echo = try c.decodeIfPresent(Bool.self, forKey: .echo) ?? false
        bestOf = try c.decodeIfPresent(Int.self, forKey: .bestOf)
        if let suffix = try c.decodeIfPresent(String.self, forKey: .suffix), !suffix.isEmpty {
            unsupported.append(("suffix", "insertion (a text after the completion) is not supported"))
        }
        if let format = try c.decodeIfPresent(ResponseFormat.self, forKey: .responseFormat), format.type != "text" {
            unsupported.append(("response_format", "structured output ('\(format.type)') is not supported; only 'text'"))
        }
        for key in [CodingKeys.tools, .functions] {
            let count = try c.decodeIfPresent([Ignored].self, forKey: key)?.count ?? 0
            if count > 0 { unsupported.append((key.stringValue, "tool calling is not supported")) }
        }
        if c.contains(.promptLogprobs), try !c.decodeNil(forKey: .promptLogprobs) {
            unsupported.append(("prompt_logprobs", "the prompt's log probabilities are not computed"))
        }
    }

    /// The number of alternatives each generated token's log probabilities list, or nil when
    /// none are asked for; checked for `endpoint`'s form of the fields.
    func logprobsCount(for endpoint: CompletionEndpoint) throws(OpenAIError) -> Int? {
        let range = 0...Self.maxLogprobs
        switch (endpoint, logprobs) {
        case (.completions, .count(let count)?):
            guard range.contains(count) else {
                throw .invalidRequest("'logprobs' must be between 0 and \(Self.maxLogprobs); got \(count).", param: "logprobs", code: "invalid_value")
            }
            return count
        case (.completions, .flag?):
            throw .invalidRequest(
                "On /v1/completions 'logprobs' is the number of alternatives to list (0 to \(Self.maxLogprobs)), not a boolean.",
                param: "logprobs", code: "invalid_type")
        case (.completions, nil):
            return nil
        case (.chatCompletions, .count?):
            throw .invalidRequest(
                "On /v1/chat/completions 'logprobs' is a boolean; 'top_logprobs' gives the number of alternatives.", param: "logprobs",
                code: "invalid_type")
        case (.chatCompletions, let flag):
            let asked = flag == .flag(true)
            guard let top = topLogprobs else { return asked ? 0 : nil }
            guard asked else {
                throw .invalidRequest("'top_logprobs' needs 'logprobs' set to true.", param: "top_logprobs", code: "invalid_value")
            }
            guard range.contains(top) else {
                throw .invalidRequest(
                    "'top_logprobs' must be between 0 and \(Self.maxLogprobs); got \(top).", param: "top_logprobs", code: "invalid_value")
            }
            return top
        }
    }

    /// Checks the fields and sets them on `sampling` (whose `maxTokens` is already decided) for a
    /// request of `choices` generations a prompt (its `n`).
    func apply(to sampling: inout SamplingParams, endpoint: CompletionEndpoint, choices: Int) throws(OpenAIError) {
        var unsupported = unsupported
        if let bestOf, bestOf != choices {
            unsupported.insert(("best_of", "choosing the best of several generations is not supported; leave it unset or equal to 'n'"), at: 0)
        }
        if let refused = unsupported.first {
            throw .invalidRequest(
                "'\(refused.param)' is not supported by this server: \(refused.reason).", param: refused.param, code: "unsupported_parameter")
        }
        if let topK {
            // vLLM's and llama.cpp's "no limit" are -1 and 0.
            guard topK >= -1 else {
                throw .invalidRequest("'top_k' must be -1, 0 (no limit) or positive; got \(topK).", param: "top_k", code: "invalid_value")
            }
            sampling.topK = max(topK, 0)
        }
        sampling.minP = Float(try Self.checked(minP, "min_p", in: 0...1) ?? 0)
        sampling.presencePenalty = Float(try Self.checked(presencePenalty, "presence_penalty", in: -2...2) ?? 0)
        sampling.frequencyPenalty = Float(try Self.checked(frequencyPenalty, "frequency_penalty", in: -2...2) ?? 0)
        if let penalty = repetitionPenalty {
            guard penalty.isFinite, penalty > 0 else {
                throw .invalidRequest(
                    "'repetition_penalty' must be greater than 0; got \(penalty).", param: "repetition_penalty", code: "invalid_value")
            }
            sampling.repetitionPenalty = Float(penalty)
        }
        for (key, bias) in logitBias {
            guard let token = Int(key), token >= 0 else {
                throw .invalidRequest("'logit_bias' keys must be token ids; got '\(key)'.", param: "logit_bias", code: "invalid_value")
            }
            guard bias.isFinite, (-100...100).contains(bias) else {
                throw .invalidRequest(
                    "'logit_bias' values must be between -100 and 100; got \(bias) for token \(token).", param: "logit_bias", code: "invalid_value")
            }
            sampling.logitBias[token] = Float(bias)
        }
        if let minTokens {
            guard minTokens >= 0, minTokens <= sampling.maxTokens else {
                throw .invalidRequest(
                    "'min_tokens' must be between 0 and max_tokens (\(sampling.maxTokens)); got \(minTokens).", param: "min_tokens",
                    code: "invalid_value")
            }
            sampling.minTokens = minTokens
        }
        sampling.logprobs = try logprobsCount(for: endpoint)
        if echo {
            guard endpoint == .completions else {
                throw .invalidRequest("'echo' is a field of /v1/completions only.", param: "echo", code: "invalid_value")
            }
            guard sampling.logprobs == nil else {
                throw .invalidRequest(
                    "'echo' with 'logprobs' would need the prompt's log probabilities, which this server does not compute.", param: "echo",
                    code: "unsupported_parameter")
            }
        }
    }

    private static func checked(_ value: Double?, _ param: String, in range: ClosedRange<Double>) throws(OpenAIError) -> Double? {
        guard let value else { return nil }
        guard value.isFinite, range.contains(value) else {
            throw .invalidRequest(
                "'\(param)' must be between \(range.lowerBound) and \(range.upperBound); got \(value).", param: param, code: "invalid_value")
        }
        return value
    }
}
