import Backend
import HiFCCore
import Models

/// Runs the compute part of a `StepPlan`: turns its chunks into the model's `ForwardBatch`, with
/// each sequence's tokens and block table, and launches it; what the chunks that sample need
/// (their logits, or the token itself where the backend picks it) comes from the returned
/// `LaunchedStep` once the step is done.
struct ModelRunner: Sendable {
    let model: any CausalLanguageModel
    let kv: any KVCachePool

    /// Launches `plan`. A chunk whose one token is not among its sequence's tokens yet is the
    /// token `previous` samples for it (a plan from `Scheduler.planContinuation`): the backend
    /// takes it from `previous`'s picks where they are. `pick` says, once for each sampling
    /// chunk, how the backend picks its sequence's token (nil: the host samples it).
    func launch(
        _ plan: StepPlan, sequences: (SequenceID) -> GenerationSequence, blockTables: (SequenceID) -> [Int],
        pick: (SequenceID) -> TokenPick?, feeding previous: LaunchedStep? = nil
    ) throws -> LaunchedStep {
        let started = ContinuousClock.now
        let previousRows = previous?.logitRows ?? [:]
        let batch = ForwardBatch(
            try plan.chunks.map { chunk in
                let sequence = sequences(chunk.sequence)
                let known = sequence.tokens.count
                var entry = ForwardSequence(
                    tokens: Array(sequence.tokens[min(chunk.start, known)..<min(chunk.start + chunk.count, known)]),
                    startPosition: chunk.start, blockTable: blockTables(chunk.sequence), wantsLogits: chunk.samples,
                    pick: chunk.samples ? pick(chunk.sequence) : nil)
                if chunk.start + chunk.count > known {
                    guard chunk.count == 1, chunk.start == known, let row = previousRows[chunk.sequence] else {
                        throw EngineStepError.tokensNotSampled(sequence: chunk.sequence, position: chunk.start)
                    }
                    entry.tokens = [0]
                    entry.feedRow = row
                }
                return entry
            })
        let pending = try model.launch(batch, kv: kv, feeding: previous?.pending.pickedTokens)
        return LaunchedStep(plan: plan, pending: pending, launched: started)
    }
}

/// A step launched and not yet taken back: its plan, its outputs to come, and when it was launched.
struct LaunchedStep: Sendable {
    let plan: StepPlan
    let pending: PendingForward
    let launched: ContinuousClock.Instant

    /// Each sampling chunk's sequence and its logit row (the chunks' order).
    var logitRows: [SequenceID: Int] {
        var rows: [SequenceID: Int] = [:]
        for (row, chunk) in plan.chunks.filter(\.samples).enumerated() { rows[chunk.sequence] = row }
        return rows
    }

    /// The output of each chunk that samples, by sequence, once the step is done.
    func outputs() throws -> [SequenceID: ForwardOutput] {
        var bySequence: [SequenceID: ForwardOutput] = [:]
        for (chunk, output) in zip(plan.chunks, try pending.outputs()) where chunk.samples { bySequence[chunk.sequence] = output }
        return bySequence
    }
}

/// Why the engine could not launch a step.
enum EngineStepError: Error, CustomStringConvertible {
    /// A planned token is neither known nor sampled by the step launched before.
    case tokensNotSampled(sequence: SequenceID, position: Int)

    var description: String {
        switch self {
        case .tokensNotSampled(let sequence, let position):
            return "sequence \(sequence): position \(position) is planned before its token is sampled, with no step before it that samples it"
        }
    }
}
