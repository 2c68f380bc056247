import HiFCCore
import Models

/// One request's output side while it runs: how its next token is sampled, its text so far, and
/// when it is done.
struct RequestProgress {
    let request: GenerationRequest
    private let eos: Set<Int>
    private var sampler: Sampler
    private let tokenizer: Tokenizer
    /// The newest sampled token's log probabilities, when the request asked for them.
    private(set) var lastLogprobs: GeneratedLogprobs?
    private var detokenizer: IncrementalDetokenizer
    private var stopFilter: StopStringFilter
    private(set) var usage: TokenUsage

    init(request: GenerationRequest, tokenizer: Tokenizer, eos: Set<Int>) {
        self.request = request
        self.eos = eos
        self.sampler = Sampler(request.sampling, prompt: request.promptTokens, endTokens: request.sampling.ignoreEOS ? [] : eos)
        self.tokenizer = tokenizer
        self.detokenizer = IncrementalDetokenizer(tokenizer: tokenizer)
        self.stopFilter = StopStringFilter(request.sampling.stop)
        self.usage = TokenUsage(promptTokens: request.promptTokens.count, completionTokens: 0)
    }

    /// The next token from `logits`, and its log probabilities when the request asked for them.
    mutating func sample(_ logits: [Float]) -> Int {
        let token = sampler.sample(logits)
        if let top = request.sampling.logprobs {
            lastLogprobs = GeneratedLogprobs(TokenLogprobs(logits: logits, chosen: token, top: top), tokenizer: tokenizer)
        }
        return token
    }

    /// Whether the backend may pick the next token itself without handing over the logits: nothing
    /// but the token is asked for, and the token is the most likely one or a draw that its
    /// sampler's state does not change (no penalties, bias or minimum length).
    var picksOnBackend: Bool { request.sampling.logprobs == nil && !request.sampling.adjustsLogits }

    /// Whether the backend's pick is a draw (a temperature above 0), not the largest logit.
    var drawsOnBackend: Bool { picksOnBackend && request.sampling.isPlainDraw }

    /// Whether a step may be launched behind this request's step before its token is back: the
    /// backend picks it, as an argmax or as a draw it queues (`queuesDraws`), so the next step
    /// takes it where it is; a draw made on the host would make that launch wait for the step.
    func mayBeLaunchedBehind(queuesDraws: Bool) -> Bool { picksOnBackend && (queuesDraws || !drawsOnBackend) }

    /// How the backend picks the next token, where it may (`picksOnBackend`): greedily, or by the
    /// sampler's next draw, whose random number this takes as sampling would.
    mutating func backendPick() -> TokenPick? {
        guard picksOnBackend else { return nil }
        return sampler.nextDraw().map(TokenPick.draw) ?? .argmax
    }

    /// Takes the sequence's newest token: the text it adds, and why generation ends if it does.
    mutating func advance(_ sequence: GenerationSequence, maxSequenceTokens: Int) -> (text: String, finish: FinishReason?) {
        let sampling = request.sampling
        let token = sequence.tokens.last!
        usage.completionTokens = sequence.generatedCount
        usage.cachedTokens = sequence.cachedPromptTokens
        if (!sampling.ignoreEOS && eos.contains(token)) || sampling.stopTokenIDs.contains(token) {
            return (finishText(), .stop)
        }
        let text = stopFilter.feed(detokenizer.append(token))
        if stopFilter.stopped { return (text, .stop) }
        if sequence.generatedCount >= sampling.maxTokens || sequence.tokens.count >= maxSequenceTokens {
            let rest = finishText()
            return (text + rest, stopFilter.stopped ? .stop : .length)
        }
        return (text, nil)
    }

    /// The text held back by the detokenizer and the stop filter, at the end of generation.
    private mutating func finishText() -> String {
        let text = stopFilter.feed(detokenizer.flush())
        return text + stopFilter.finish()
    }
}
