import Backend
import Engine
import HiFCCore
import Models

/// Greedy requests driven through an `EngineCore` to the end, one step after another, and what
/// they produced. The losslessness checks use it: the same prompts with a KV budget that never
/// runs out and with one that forces dozens of preemptions must give the same tokens.
public struct GreedyRun: Sendable {
    /// Each request's generated tokens, by the id it was added under (its prompt's index).
    public var tokens: [SequenceID: [Int]] = [:]
    /// Each request's finish reason.
    public var finish: [SequenceID: FinishReason] = [:]
    /// The engine's counters at the end.
    public var stats = EngineStats()

    /// A run that produced nothing yet (`run(_:maxTokens:through:)` fills one in).
    public init() {}

    /// Why a run stopped before its requests finished.
    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// The engine took `steps` steps without finishing every request.
        case noProgress(steps: Int)

        public var description: String {
            switch self {
            case .noProgress(let steps): return "the engine made no progress: requests still open after \(steps) steps"
            }
        }
    }

    /// `count` different prompts of 17 to 59 tokens, ids in 3..<203 (inside any synthetic
    /// model's vocabulary): lengths that end inside a block and cross block boundaries at
    /// different steps, so preemptions fall at many different points.
    public static func distinctPrompts(_ count: Int) -> [[Int]] {
        (0..<count).map { n in (0..<(17 + (n % 8) * 6)).map { (n * 31 + $0 * 7) % 200 + 3 } }
    }

    /// Runs `prompts` (each generating exactly `maxTokens`, end-of-sequence ignored) through
    /// `core` until it is idle: greedily, or with a `temperature`, top-p 0.9 and request n's seed n.
    public static func run(
        _ prompts: [[Int]], maxTokens: Int, through core: EngineCore, temperature: Float = 0, stepLimit: Int = 20_000
    ) throws -> GreedyRun {
        for (n, prompt) in prompts.enumerated() {
            var sampling = SamplingParams.greedy(maxTokens: maxTokens)
            if temperature > 0 { sampling = SamplingParams(maxTokens: maxTokens, temperature: temperature, topP: 0.9, seed: UInt64(n)) }
            sampling.ignoreEOS = true
            try core.add(id: SequenceID(n), GenerationRequest(id: "r\(n)", promptTokens: prompt, sampling: sampling))
        }
        var run = GreedyRun()
        var steps = 0
        while !core.isIdle {
            steps += 1
            guard steps <= stepLimit else { throw Failure.noProgress(steps: stepLimit) }
            for (id, event) in try core.step() {
                switch event {
                case .delta(let ids, _, _): run.tokens[id, default: []] += ids
                case .finished(let reason, _): run.finish[id] = reason
                }
            }
        }
        run.stats = core.snapshot()
        return run
    }

    /// The requests whose tokens differ from `reference`'s, or that did not finish at full length.
    public func differences(from reference: GreedyRun) -> [SequenceID] {
        reference.tokens.keys.sorted().filter { tokens[$0] != reference.tokens[$0] || finish[$0] != .length }
    }

    /// Where request `id` first leaves `reference`'s tokens (its index), nil where they agree.
    public func firstDivergence(of id: SequenceID, from reference: GreedyRun) -> Int? {
        let mine = tokens[id] ?? []
        let theirs = reference.tokens[id] ?? []
        if mine == theirs { return nil }
        return (0..<min(mine.count, theirs.count)).first { mine[$0] != theirs[$0] } ?? min(mine.count, theirs.count)
    }
}
