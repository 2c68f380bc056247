/// How much work one request may create (`--max-request-sequences`, `--max-request-prompt-tokens`,
/// `--max-request-completion-tokens`); a request over a limit gets a 400 naming it.
///
/// Sequences are prompts times `n`; prompt tokens count each prompt once per choice (each choice
/// computes it); completion tokens are `max_tokens` times the sequences. An unset `max_tokens` is
/// cut to fit the completion limit rather than refused.
public struct RequestLimits: Sendable, Hashable {
    /// Most sequences (prompts x `n`).
    public var maxSequences: Int
    /// Most prompt tokens, summed over the sequences.
    public var maxPromptTokens: Int
    /// Most completion tokens asked for (`max_tokens` x sequences).
    public var maxCompletionTokens: Int

    public init(maxSequences: Int, maxPromptTokens: Int, maxCompletionTokens: Int) {
        self.maxSequences = maxSequences
        self.maxPromptTokens = maxPromptTokens
        self.maxCompletionTokens = maxCompletionTokens
    }
}
