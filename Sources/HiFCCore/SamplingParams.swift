/// How the next token is chosen and when generation stops, as an OpenAI request states it.
public struct SamplingParams: Hashable, Sendable {
    /// Most tokens to generate.
    public var maxTokens: Int
    /// 0 picks the most likely token (greedy); higher values flatten the distribution.
    public var temperature: Float
    /// Keep only the `topK` most likely tokens (0: all).
    public var topK: Int
    /// Keep the smallest set of tokens whose probabilities sum to at least `topP` (1: all).
    public var topP: Float
    /// Keep only tokens at least `minP` times as likely as the most likely one (0: all).
    public var minP: Float
    /// Seed of the sampler's random numbers; nil draws one.
    public var seed: UInt64?
    /// Text that ends generation; the text itself is not returned.
    public var stop: [String]
    /// Token ids that end generation besides the model's EOS ids.
    public var stopTokenIDs: [Int]
    /// Whether the model's EOS tokens end generation.
    public var ignoreEOS: Bool
    /// Subtracted once from the logit of every token the output holds already (OpenAI's
    /// `presence_penalty`, -2 ... 2).
    public var presencePenalty: Float
    /// Subtracted from a token's logit once per time the output holds it (`frequency_penalty`).
    public var frequencyPenalty: Float
    /// Divides the positive logits, and multiplies the negative ones, of tokens in the prompt or
    /// the output (vLLM's and llama.cpp's `repetition_penalty`; 1: none).
    public var repetitionPenalty: Float
    /// Added to the logits of these token ids (OpenAI's `logit_bias`, -100 ... 100).
    public var logitBias: [Int: Float]
    /// Until this many tokens are generated, EOS and `stopTokenIDs` cannot be chosen (vLLM's
    /// `min_tokens`; stop strings still end generation).
    public var minTokens: Int
    /// Return each generated token's log probability and those of this many most likely
    /// alternatives; nil returns none.
    public var logprobs: Int?

    /// Parameters with OpenAI's defaults except `maxTokens`.
    public init(
        maxTokens: Int = 16, temperature: Float = 1, topK: Int = 0, topP: Float = 1, minP: Float = 0,
        seed: UInt64? = nil, stop: [String] = [], stopTokenIDs: [Int] = [], ignoreEOS: Bool = false,
        presencePenalty: Float = 0, frequencyPenalty: Float = 0, repetitionPenalty: Float = 1, logitBias: [Int: Float] = [:],
        minTokens: Int = 0, logprobs: Int? = nil
    ) {
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.seed = seed
        self.stop = stop
        self.stopTokenIDs = stopTokenIDs
        self.ignoreEOS = ignoreEOS
        self.presencePenalty = presencePenalty
        self.frequencyPenalty = frequencyPenalty
        self.repetitionPenalty = repetitionPenalty
        self.logitBias = logitBias
        self.minTokens = minTokens
        self.logprobs = logprobs
    }

    /// Greedy decoding of up to `maxTokens` tokens.
    public static func greedy(maxTokens: Int) -> SamplingParams {
        SamplingParams(maxTokens: maxTokens, temperature: 0)
    }

    /// Whether the logits are changed before a token is chosen (penalties, bias, `minTokens`), so
    /// that even at temperature 0 the choice is not the model's most likely token.
    public var adjustsLogits: Bool {
        presencePenalty != 0 || frequencyPenalty != 0 || repetitionPenalty != 1 || !logitBias.isEmpty || minTokens > 0
    }

    /// Whether a token is a draw that nothing but the draw decides (a temperature above 0, the
    /// logits unadjusted), so that whoever holds the logits (a backend) can make it.
    public var isPlainDraw: Bool { temperature > 0 && !adjustsLogits }
}
