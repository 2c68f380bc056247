import Backend

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
    /// For a one-token entry whose token the previous step picks greedily and the host does not
    /// have yet: that step's logit row (the index among its sequences that wanted logits). The
    /// step that is given the previous one's `PendingForward.greedyTokens` takes the token from
    /// there (on a GPU, on the device); `tokens` holds a placeholder.
    public var feedRow: Int?

    /// A sequence entry; see the properties.
    public init(
        tokens: [Int], startPosition: Int, blockTable: [Int], wantsLogits: Bool = true, greedy: Bool = false, feedRow: Int? = nil
    ) {
        self.tokens = tokens
        self.startPosition = startPosition
        self.blockTable = blockTable
        self.wantsLogits = wantsLogits
        self.greedy = greedy
        self.feedRow = feedRow
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

/// A launched step's outputs: the greedy tokens possibly still being computed, and the logits of
/// sampling sequences (brought to the host at launch). `outputs()` waits for the step.
public struct PendingForward: Sendable {
    /// The greedy pick of each logit row (every sequence that wanted logits, in order), for a
    /// next step to take as token ids where they are; nil when no row is greedy.
    public let greedyTokens: (any StepTokens)?
    let wantsLogits: [Bool]
    let greedy: [Bool]
    /// The logits of the rows that sample, in logit-row order, empty when none does.
    let rows: [[Float]]

    /// The step's output per sequence in the batch's order, once the step has finished.
    public func outputs() throws -> [ForwardOutput] {
        var outputs = [ForwardOutput](repeating: .none, count: wantsLogits.count)
        let tokens = try greedyTokens?.wait() ?? []
        var row = 0
        for (n, wants) in wantsLogits.enumerated() where wants {
            outputs[n] = greedy[n] ? .greedyToken(tokens[row]) : .logits(rows[row])
            row += 1
        }
        return outputs
    }
}

/// The sequences one forward step runs together: prefills, prefill chunks and decodes of
/// different lengths, batched into one pass.
public struct ForwardBatch: Sendable, Hashable {
    /// The sequences, in any order.
    public var sequences: [ForwardSequence]

    /// A batch of `sequences`.
    public init(_ sequences: [ForwardSequence]) { self.sequences = sequences }
}
