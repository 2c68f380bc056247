import Backend
import HiFCCore
import Models

/// Runs the compute part of a `StepPlan`: turns its chunks into the model's `ForwardBatch`, with
/// each sequence's tokens and block table, and returns the logits of the chunks that sample.
struct ModelRunner: Sendable {
    let model: LlamaModel
    let kv: any KVCachePool

    /// Logits (vocabulary-sized) of the last token of every chunk whose `samples` is true.
    func run(_ plan: StepPlan, sequences: (SequenceID) -> GenerationSequence) throws -> [SequenceID: [Float]] {
        let chunks = plan.chunks
        let batch = ForwardBatch(chunks.map { chunk in
            let sequence = sequences(chunk.sequence)
            return ForwardSequence(
                tokens: Array(sequence.tokens[chunk.start ..< chunk.start + chunk.count]),
                startPosition: chunk.start,
                blockTable: sequence.table.blocks,
                wantsLogits: chunk.samples)
        })
        let logits = try model.forward(batch, kv: kv)
        var bySequence: [SequenceID: [Float]] = [:]
        for (chunk, row) in zip(chunks, logits) where chunk.samples { bySequence[chunk.sequence] = row }
        return bySequence
    }
}
