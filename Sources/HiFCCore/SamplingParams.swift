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
    /// Seed of the sampler's random numbers; nil draws one.
    public var seed: UInt64?
    /// Text that ends generation; the text itself is not returned.
    public var stop: [String]
    /// Token ids that end generation besides the model's EOS ids.
    public var stopTokenIDs: [Int]
    /// Whether the model's EOS tokens end generation.
    public var ignoreEOS: Bool

    /// Parameters with OpenAI's defaults except `maxTokens`.
    public init(
        maxTokens: Int = 16, temperature: Float = 1, topK: Int = 0, topP: Float = 1,
        seed: UInt64? = nil, stop: [String] = [], stopTokenIDs: [Int] = [], ignoreEOS: Bool = false
    ) {
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
        self.stop = stop
        self.stopTokenIDs = stopTokenIDs
        self.ignoreEOS = ignoreEOS
    }

    /// Greedy decoding of up to `maxTokens` tokens.
    public static func greedy(maxTokens: Int) -> SamplingParams {
        SamplingParams(maxTokens: maxTokens, temperature: 0)
    }
}
