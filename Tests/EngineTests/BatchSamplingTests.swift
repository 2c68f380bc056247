import Backend
import HiFCCore
import XCTest

@testable import Engine

/// A step's sampled rows run on several threads; each request must get the tokens and log
/// probabilities it would get alone, in order, step after step.
final class BatchSamplingTests: XCTestCase {
    private func progress(_ sampling: SamplingParams, id: Int) -> RequestProgress {
        let loaded = EngineFixture.loaded
        return RequestProgress(
            request: GenerationRequest(id: "r\(id)", promptTokens: [1, 2, 3], sampling: sampling), tokenizer: loaded.tokenizer,
            eos: loaded.eosTokenIDs)
    }

    func testBatchSamplesEachRowAsItWouldAlone() {
        let vocabulary = 4096
        let kinds: [SamplingParams] = [
            SamplingParams(maxTokens: 8, temperature: 0.8, seed: 1),
            SamplingParams(maxTokens: 8, temperature: 1, topP: 0.9, seed: 2),
            SamplingParams(maxTokens: 8, temperature: 0.7, topK: 40, seed: 3, logprobs: 3),
            SamplingParams(maxTokens: 8, temperature: 1, seed: 4, presencePenalty: 0.5, frequencyPenalty: 0.2),
            SamplingParams(maxTokens: 8, temperature: 0),
        ]
        let count = 3 * kinds.count
        var batch = (0..<count).map { progress(kinds[$0 % kinds.count], id: $0) }
        var alone = batch
        var seed: UInt64 = 0x5eed
        for _ in 0..<4 {
            // Fresh, varied logits for every row and step.
            let logits = (0..<count).map { _ in
                (0..<vocabulary).map { _ -> Float in
                    seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    return Float(Int64(bitPattern: seed >> 11) % 2000) / 250
                }
            }
            let tokens = BatchSampling.sample(&batch, logits) { $0.sample($1) }
            for i in 0..<count {
                XCTAssertEqual(tokens[i], alone[i].sample(logits[i]), "row \(i)")
                XCTAssertEqual(batch[i].lastLogprobs?.chosen.logprob, alone[i].lastLogprobs?.chosen.logprob, "row \(i)")
            }
        }
    }
}
