/// What `hifc bench serve --json` prints: the run's settings and one summary per request rate.
public struct ServeBenchReport: Codable, Sendable {
    public var base_url: String
    public var model: String
    public var endpoint: String
    public var num_prompts: Int
    /// The dataset the requests come from (ShareGPT), nil for random words.
    public var dataset_path: String?
    /// Lengths of each new message and of each output, as asked (`128` or `64-256`); with a
    /// dataset, the range its sampled turns span.
    public var input_len: String
    public var output_len: String
    public var turns: Int
    public var shared_prefix_tokens: Int
    public var prefix_groups: Int
    public var seed: UInt64
    public var max_concurrency: Int?
    public var runs: [ServeRunSummary]

    public init(settings: ServeBenchRunner.Settings, shape: ServeWorkload.Shape, seed: UInt64, runs: [ServeRunSummary]) {
        base_url = settings.baseURL.description
        model = settings.model
        endpoint = settings.endpoint.rawValue
        num_prompts = shape.requests
        dataset_path = shape.dataset
        input_len = shape.inputLengths.description
        output_len = shape.outputLengths.description
        turns = shape.turns
        shared_prefix_tokens = shape.sharedPrefixTokens
        prefix_groups = shape.prefixGroups
        self.seed = seed
        max_concurrency = settings.maxConcurrency
        self.runs = runs
    }
}
