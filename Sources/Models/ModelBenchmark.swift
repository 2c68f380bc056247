import Backend
import Foundation

/// Prefill and decode throughput of a model on its backend, at a given batch size: `batch`
/// sequences of `promptTokens` random tokens are prefilled together in one step, then decoded
/// together for `decodeTokens` steps (greedy), as `bench/cpu_vs_torch.py` does with PyTorch.
public struct ModelBenchmark: Sendable {
    /// One measurement.
    public struct Figures: Sendable, CustomStringConvertible {
        public var batch: Int
        public var promptTokens: Int
        public var decodeTokens: Int
        /// Prompt tokens per second (all sequences).
        public var prefillTokensPerSecond: Double
        /// Generated tokens per second (all sequences).
        public var decodeTokensPerSecond: Double

        public var description: String {
            String(format: "batch %2d  prompt %5d  decode %4d  prefill %9.1f tok/s  decode %8.1f tok/s",
                   batch, promptTokens, decodeTokens, prefillTokensPerSecond, decodeTokensPerSecond)
        }
    }

    public let model: LlamaModel
    public let blockTokens: Int

    public init(model: LlamaModel, blockTokens: Int = 64) {
        self.model = model
        self.blockTokens = blockTokens
    }

    /// Runs one measurement (after a short warm-up step).
    public func run(batch: Int, promptTokens: Int, decodeTokens: Int, seed: UInt64 = 1) throws -> Figures {
        let perSequence = (promptTokens + decodeTokens + blockTokens - 1) / blockTokens
        let pool = try model.makeKVCachePool(blockTokens: blockTokens, blocks: batch * perSequence)
        let tables = (0..<batch).map { Array(($0 * perSequence)..<(($0 + 1) * perSequence)) }
        var generator = SeededGenerator(seed: seed)
        let vocab = model.config.vocabSize
        let prompts = (0..<batch).map { _ in (0..<promptTokens).map { _ in Int(generator.next() % UInt64(vocab)) } }
        // Warm-up: touches the weights once so page faults of the mapping are not timed.
        _ = try model.forward(ForwardBatch([ForwardSequence(tokens: [1], startPosition: 0, blockTable: tables[0])]), kv: pool)

        let prefillStart = Date()
        var last = try model.forward(ForwardBatch((0..<batch).map {
            ForwardSequence(tokens: prompts[$0], startPosition: 0, blockTable: tables[$0])
        }), kv: pool).map(Sampler.argmax)
        let prefill = Date().timeIntervalSince(prefillStart)

        let decodeStart = Date()
        for step in 0..<decodeTokens {
            let logits = try model.forward(ForwardBatch((0..<batch).map {
                ForwardSequence(tokens: [last[$0]], startPosition: promptTokens + step, blockTable: tables[$0])
            }), kv: pool)
            last = logits.map(Sampler.argmax)
        }
        let decode = Date().timeIntervalSince(decodeStart)
        return Figures(batch: batch, promptTokens: promptTokens, decodeTokens: decodeTokens,
                       prefillTokensPerSecond: Double(batch * promptTokens) / prefill,
                       decodeTokensPerSecond: Double(batch * decodeTokens) / decode)
    }
}

/// A seeded SplitMix64 generator, so benchmark prompts are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
