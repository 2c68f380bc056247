import Backend
import HiFCCore
import Models

/// Runs the compute part of a `StepPlan`: turns its chunks into the model's `ForwardBatch`, with
/// each sequence's tokens and block table, and returns what the chunks that sample need: their
/// logits, or for greedy requests the token itself, picked by the backend.
struct ModelRunner: Sendable {
    let model: any CausalLanguageModel
    let kv: any KVCachePool

    /// The output of the last token of every chunk whose `samples` is true. `greedy` says which
    /// sequences decode greedily.
    func run(
        _ plan: StepPlan, sequences: (SequenceID) -> GenerationSequence, blockTables: (SequenceID) -> [Int],
        greedy: (SequenceID) -> Bool
    ) throws -> [SequenceID: ForwardOutput] {
        let chunks = plan.chunks
        let batch = ForwardBatch(
            chunks.map { chunk in
                let sequence = sequences(chunk.sequence)
                return ForwardSequence(
                    tokens: Array(sequence.tokens[chunk.start..<chunk.start + chunk.count]),
                    startPosition: chunk.start,
                    blockTable: blockTables(chunk.sequence),
                    wantsLogits: chunk.samples,
                    greedy: chunk.samples && greedy(chunk.sequence))
            })
        let outputs = try model.step(batch, kv: kv)
        var bySequence: [SequenceID: ForwardOutput] = [:]
        for (chunk, output) in zip(chunks, outputs) where chunk.samples { bySequence[chunk.sequence] = output }
        return bySequence
    }
}
