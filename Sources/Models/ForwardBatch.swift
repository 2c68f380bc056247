/// One sequence's part of a forward step: its new tokens, where they start, and its KV blocks.
public struct ForwardSequence: Sendable, Hashable {
    /// Token ids to run: the whole prompt, a chunk of it, or the one token sampled last step.
    public var tokens: [Int]
    /// Position of `tokens[0]`: how many tokens of this sequence are already in the KV cache.
    public var startPosition: Int
    /// KV pool blocks of the sequence, covering at least `startPosition + tokens.count` positions.
    public var blockTable: [Int]
    /// Whether the step should return logits for the last of `tokens` (false for a prefill chunk
    /// that is not the prompt's last).
    public var wantsLogits: Bool
    /// Whether only the most likely next token is wanted (greedy decoding), so `CausalLanguageModel.step`
    /// may pick it where the logits are rather than bring them to the host: a batch of 16 on an
    /// 8B Llama otherwise moves 8 MB of logits a step.
    public var greedy: Bool

    /// A sequence entry; see the properties.
    public init(tokens: [Int], startPosition: Int, blockTable: [Int], wantsLogits: Bool = true, greedy: Bool = false) {
        self.tokens = tokens
        self.startPosition = startPosition
        self.blockTable = blockTable
        self.wantsLogits = wantsLogits
        self.greedy = greedy
    }
}

/// What a forward step gives back for one sequence.
public enum ForwardOutput: Sendable, Hashable {
    /// Nothing: the sequence did not want logits (a prefill chunk before the prompt's last).
    case none
    /// The logits of the sequence's last token, vocabulary-sized.
    case logits([Float])
    /// The index of the largest logit (the first on ties), for a sequence marked `greedy`.
    case greedyToken(Int)
}

/// The sequences one forward step runs together: prefills, prefill chunks and decodes of
/// different lengths, batched into one pass.
public struct ForwardBatch: Sendable, Hashable {
    /// The sequences, in any order.
    public var sequences: [ForwardSequence]

    /// A batch of `sequences`.
    public init(_ sequences: [ForwardSequence]) { self.sequences = sequences }
}
