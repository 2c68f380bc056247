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
    /// How the backend picks the next token where the logits are, so `CausalLanguageModel.step`
    /// need not bring them to the host (a batch of 16 on an 8B Llama otherwise moves 8 MB of
    /// logits a step). Nil: the host samples from the logits.
    public var pick: TokenPick?
    /// Whether the backend picks the next token itself.
    public var picksOnBackend: Bool { pick != nil }
    /// For a one-token entry whose token the previous step picks on the backend and the host does not
    /// have yet: that step's logit row (the index among its sequences that wanted logits). The
    /// step that is given the previous one's `PendingForward.pickedTokens` takes the token from
    /// there (on a GPU, on the device); `tokens` holds a placeholder.
    public var feedRow: Int?

    /// A sequence entry; see the properties.
    public init(
        tokens: [Int], startPosition: Int, blockTable: [Int], wantsLogits: Bool = true, pick: TokenPick? = nil, feedRow: Int? = nil
    ) {
        self.tokens = tokens
        self.startPosition = startPosition
        self.blockTable = blockTable
        self.wantsLogits = wantsLogits
        self.pick = pick
        self.feedRow = feedRow
    }
}

/// How the backend picks a sequence's next token where the logits are.
public enum TokenPick: Sendable, Hashable {
    /// The largest logit (the first on ties): greedy decoding.
    case argmax
    /// This draw's token: a temperature, top-k, top-p and min-p with its random number, made as
    /// the host sampler would make it.
    case draw(TokenDraw)

    /// The draw, where it is one.
    public var draw: TokenDraw? {
        if case .draw(let draw) = self { return draw }
        return nil
    }
}

/// What a forward step gives back for one sequence.
public enum ForwardOutput: Sendable, Hashable {
    /// Nothing: the sequence did not want logits (a prefill chunk before the prompt's last).
    case none
    /// The logits of the sequence's last token, vocabulary-sized.
    case logits([Float])
    /// The token the backend picked, for a sequence it picks for (`pick`).
    case pickedToken(Int)
}

/// A launched step's outputs: the tokens the backend picks, possibly still being computed, and
/// the logits of the sequences the host samples (brought to the host at launch). `outputs()`
/// waits for the step.
public struct PendingForward: Sendable {
    /// The backend's pick of each logit row (every sequence that wanted logits, in order: its
    /// draw where it has one, else the largest logit), for a next step to take as token ids where
    /// they are; nil when the backend picks for no row.
    public let pickedTokens: (any StepTokens)?
    let wantsLogits: [Bool]
    let picksOnBackend: [Bool]
    /// The logits of the rows that sample, in logit-row order, empty when none does.
    let rows: [[Float]]

    /// The step's output per sequence in the batch's order, once the step has finished.
    public func outputs() throws -> [ForwardOutput] {
        var outputs = [ForwardOutput](repeating: .none, count: wantsLogits.count)
        let tokens = try pickedTokens?.wait() ?? []
        var row = 0
        for (n, wants) in wantsLogits.enumerated() where wants {
            outputs[n] = picksOnBackend[n] ? .pickedToken(tokens[row]) : .logits(rows[row])
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
