import Models

/// What `hifc bench serve` sends: sessions of one or more turns, their prompts and output lengths,
/// all drawn from one seed so every rate of a sweep (and every server compared) sees the same
/// requests.
///
/// A session's turns run one after another, each resending the whole conversation so far (its
/// earlier prompts and the server's replies) with a new user message: the way chat clients work,
/// and the case a prefix cache serves. Sessions may also open with a shared document, one of
/// `prefixGroups`: many questions over the same long text.
public struct ServeWorkload: Sendable {
    /// How the requests are shaped.
    public struct Shape: Sendable, Hashable {
        /// Requests in all (sessions times turns; the last session may have fewer turns).
        public var requests: Int
        /// Tokens of each new user message.
        public var inputLengths: LengthDistribution
        /// Tokens each request asks the server to generate.
        public var outputLengths: LengthDistribution
        /// Requests per session (1: independent requests).
        public var turns: Int
        /// Tokens of the shared document that opens each session (0: none).
        public var sharedPrefixTokens: Int
        /// Distinct shared documents; session `i` opens with document `i % prefixGroups`.
        public var prefixGroups: Int
        /// The dataset file the messages and output lengths come from (ShareGPT), nil for random
        /// words; with one, `inputLengths` and `outputLengths` give the range the sampled turns span.
        public var dataset: String?

        public init(
            requests: Int, inputLengths: LengthDistribution, outputLengths: LengthDistribution, turns: Int = 1, sharedPrefixTokens: Int = 0,
            prefixGroups: Int = 1
        ) {
            self.requests = requests
            self.inputLengths = inputLengths
            self.outputLengths = outputLengths
            self.turns = turns
            self.sharedPrefixTokens = sharedPrefixTokens
            self.prefixGroups = prefixGroups
        }

        /// Sessions needed for `requests` requests of `turns` turns each.
        public var sessions: Int { (requests + turns - 1) / max(turns, 1) }

        /// The most prompt tokens one request can have (a last turn carrying every earlier turn
        /// and its reply), for checking against the server's context.
        public var longestPromptTokens: Int {
            sharedPrefixTokens + min(turns, requests) * inputLengths.maximum + (min(turns, requests) - 1) * outputLengths.maximum
        }
    }

    /// One request's own part: the new user message and how much to generate.
    public struct Turn: Sendable, Hashable {
        public var message: SyntheticPrompt.Piece
        public var outputTokens: Int
    }

    /// A conversation's turns and the document it opens with.
    public struct Session: Sendable, Hashable {
        public var index: Int
        public var sharedPrefix: SyntheticPrompt.Piece?
        public var turns: [Turn]
    }

    public var shape: Shape
    public var sessions: [Session]

    /// The workload of `sessions` drawn from the dataset file `dataset` (`ShareGPTDataset.sessions`),
    /// each of up to `turns` turns.
    public init(dataset: String, sessions: [Session], turns: Int) {
        let turnsSent = sessions.flatMap(\.turns)
        func range(_ lengths: [Int]) -> LengthDistribution {
            let low = lengths.min() ?? 0
            let high = lengths.max() ?? 0
            return low == high ? .fixed(low) : .uniform(low...high)
        }
        shape = Shape(
            requests: turnsSent.count, inputLengths: range(turnsSent.map(\.message.tokens)), outputLengths: range(turnsSent.map(\.outputTokens)),
            turns: turns)
        shape.dataset = dataset
        self.sessions = sessions
    }

    /// The workload of `shape` from `seed`, prompts made by `prompts`.
    public init(shape: Shape, seed: UInt64, prompts: SyntheticPrompt) {
        self.shape = shape
        var random = SeededGenerator(seed: seed)
        let documents =
            shape.sharedPrefixTokens > 0
            ? (0..<max(shape.prefixGroups, 1)).map { _ in prompts.piece(tokens: shape.sharedPrefixTokens, using: &random) } : []
        var remaining = shape.requests
        sessions = (0..<shape.sessions).map { index in
            let count = min(shape.turns, remaining)
            remaining -= count
            let turns = (0..<count).map { _ in
                let message = prompts.piece(tokens: shape.inputLengths.sample(using: &random), using: &random)
                return Turn(message: message, outputTokens: shape.outputLengths.sample(using: &random))
            }
            return Session(index: index, sharedPrefix: documents.isEmpty ? nil : documents[index % documents.count], turns: turns)
        }
    }
}
