import Backend
import Foundation
import HiFCCore
import Models
import XCTest

/// The Swift forward pass against an independent NumPy one, and the paged-KV invariants:
/// batched decode equals decoding alone, chunked prefill equals one-shot prefill.
final class ForwardReferenceTests: XCTestCase {
    let prompt = [5, 17, 42, 99, 3, 250, 8, 64, 128, 7, 33, 21, 11, 200, 19, 77, 4, 90, 31, 60]

    /// Prompt logits and `steps` greedy tokens against the NumPy reference (which recomputes the
    /// whole sequence each step: the newer families take fewer steps to keep CI short).
    private func checkAgainstReference(
        _ architecture: ModelArchitecture, backend: any ComputeBackend, steps: Int = 64, adjust: (inout ModelConfig) -> Void = { _ in }
    ) throws {
        let fixture = try ModelFixture(architecture, backend: backend, adjust: adjust)
        defer { fixture.remove() }
        let reference = try fixture.reference(prompt: prompt, steps: steps)
        let pool = try fixture.pool(tokens: prompt.count + steps)
        let table = ModelFixture.blockTable(index: 0, tokens: prompt.count + steps)
        var logits = try fixture.model.forward(
            ForwardBatch([ForwardSequence(tokens: prompt, startPosition: 0, blockTable: table)]), kv: pool)[0]
        let error = relativeError(logits, reference.logits)
        XCTAssertLessThan(error, 1e-4, "\(architecture): prompt logits differ from NumPy by \(error)")
        var generated: [Int] = []
        for step in 0..<steps {
            let next = Sampler.argmax(logits)
            generated.append(next)
            logits = try fixture.model.forward(
                ForwardBatch([ForwardSequence(tokens: [next], startPosition: prompt.count + step, blockTable: table)]),
                kv: pool)[0]
        }
        XCTAssertEqual(generated, reference.greedy, "\(architecture): greedy tokens differ from NumPy")
    }

    func testLlamaMatchesNumPyReference() throws {
        try checkAgainstReference(.llama, backend: CPUBackend())
    }

    func testMistralMatchesNumPyReference() throws {
        try checkAgainstReference(.mistral, backend: CPUBackend())
    }

    func testQwen2MatchesNumPyReference() throws {
        try checkAgainstReference(.qwen2, backend: CPUBackend())
    }

    func testQwen3MatchesNumPyReference() throws {
        try checkAgainstReference(.qwen3, backend: CPUBackend(), steps: 24)
    }

    func testGemma3MatchesNumPyReference() throws {
        try checkAgainstReference(.gemma3, backend: CPUBackend(), steps: 24)
    }

    /// Mistral slides every layer; a window of 6 is far shorter than the 44 positions decoded.
    func testSlidingWindowMistralMatchesNumPyReference() throws {
        try checkAgainstReference(.mistral, backend: CPUBackend(), steps: 24) { config in
            config.slidingWindow = 6
            config.layerTypes = Array(repeating: .sliding, count: config.layers)
        }
    }

    /// Qwen2 slides the layers from `max_window_layers` on: here the second of two.
    func testSlidingWindowQwen2MatchesNumPyReference() throws {
        try checkAgainstReference(.qwen2, backend: CPUBackend(), steps: 24) { config in
            config.slidingWindow = 5
            config.layerTypes = [.full, .sliding]
        }
    }

    /// Qwen3 with its sliding window in use on one of two layers.
    func testSlidingWindowQwen3MatchesNumPyReference() throws {
        try checkAgainstReference(.qwen3, backend: CPUBackend(), steps: 24) { config in
            config.slidingWindow = 7
            config.layerTypes = [.sliding, .full]
        }
    }

    func testSwiftGEMMFallbackMatchesNumPyReference() throws {
        try checkAgainstReference(.llama, backend: CPUBackend(blas: nil))
    }

    func testBatchedDecodeOfFourSequencesEqualsEachDecodedAlone() throws {
        let fixture = try ModelFixture(.llama)
        defer { fixture.remove() }
        let prompts = [Array(prompt[0..<3]), Array(prompt[0..<17]), Array(prompt[2..<20]), [9]]
        let steps = 12
        // Alone: each sequence in its own pool.
        var alone: [[Int]] = []
        var aloneLogits: [[Float]] = []
        for p in prompts {
            let pool = try fixture.pool()
            let table = ModelFixture.blockTable(index: 0)
            var logits = try fixture.model.forward(ForwardBatch([ForwardSequence(tokens: p, startPosition: 0, blockTable: table)]), kv: pool)[0]
            var out: [Int] = []
            for s in 0..<steps {
                let next = Sampler.argmax(logits)
                out.append(next)
                logits = try fixture.model.forward(
                    ForwardBatch([ForwardSequence(tokens: [next], startPosition: p.count + s, blockTable: table)]), kv: pool)[0]
            }
            alone.append(out)
            aloneLogits.append(logits)
        }
        // Together: one pool, prefills batched in one step, then batched decodes.
        let pool = try fixture.pool(sequences: prompts.count)
        let tables = prompts.indices.map { ModelFixture.blockTable(index: $0) }
        var logits = try fixture.model.forward(
            ForwardBatch(
                prompts.indices.map {
                    ForwardSequence(tokens: prompts[$0], startPosition: 0, blockTable: tables[$0])
                }), kv: pool)
        var together = [[Int]](repeating: [], count: prompts.count)
        for s in 0..<steps {
            let next = logits.map(Sampler.argmax)
            for i in prompts.indices { together[i].append(next[i]) }
            logits = try fixture.model.forward(
                ForwardBatch(
                    prompts.indices.map {
                        ForwardSequence(tokens: [next[$0]], startPosition: prompts[$0].count + s, blockTable: tables[$0])
                    }), kv: pool)
        }
        XCTAssertEqual(together, alone)
        for i in prompts.indices {
            let error = relativeError(logits[i], aloneLogits[i].map(Double.init))
            XCTAssertLessThan(error, 1e-5, "sequence \(i) logits differ batched vs alone by \(error)")
        }
    }

    func testChunkedPrefillEqualsOneShotPrefill() throws {
        try checkChunkedPrefillEqualsOneShot(try ModelFixture(.qwen2))
    }

    /// Sliding windows (of 8) and two rotary bases, across chunk boundaries.
    func testChunkedPrefillEqualsOneShotPrefillForGemma3() throws {
        try checkChunkedPrefillEqualsOneShot(try ModelFixture(.gemma3))
    }

    private func checkChunkedPrefillEqualsOneShot(_ fixture: ModelFixture) throws {
        defer { fixture.remove() }
        let table = ModelFixture.blockTable(index: 0)
        let oneShotPool = try fixture.pool()
        let oneShot = try fixture.model.forward(
            ForwardBatch([ForwardSequence(tokens: prompt, startPosition: 0, blockTable: table)]), kv: oneShotPool)[0]
        let chunkedPool = try fixture.pool()
        var start = 0
        var last: [Float] = []
        for size in [7, 1, 5, 7] {
            let chunk = Array(prompt[start..<(start + size)])
            let isLast = start + size == prompt.count
            let out = try fixture.model.forward(
                ForwardBatch([ForwardSequence(tokens: chunk, startPosition: start, blockTable: table, wantsLogits: isLast)]), kv: chunkedPool)[0]
            XCTAssertEqual(out.isEmpty, !isLast)
            last = out
            start += size
        }
        XCTAssertLessThan(relativeError(last, oneShot.map(Double.init)), 1e-5)
        // The cached K/V is the same too: every block of the sequence matches byte for byte closely.
        let bytes = oneShotPool.layout.blockBytes
        var a = [Float](repeating: 0, count: bytes / 4)
        var b = a
        for block in table.prefix(2) {
            try a.withUnsafeMutableBytes { try oneShotPool.copyBlock(block, to: $0) }
            try b.withUnsafeMutableBytes { try chunkedPool.copyBlock(block, to: $0) }
            XCTAssertLessThan(relativeError(b, a.map(Double.init)), 1e-5)
        }
    }
    func testGreedyStepReturnsTheLargestLogitOnlyWhereAsked() throws {
        let fixture = try ModelFixture(.llama)
        defer { fixture.remove() }
        let tables = (0..<4).map { ModelFixture.blockTable(index: $0) }
        let sequences = [
            ForwardSequence(tokens: Array(prompt[0..<5]), startPosition: 0, blockTable: tables[0], pick: .argmax),
            ForwardSequence(tokens: Array(prompt[3..<9]), startPosition: 0, blockTable: tables[1]),
            ForwardSequence(tokens: Array(prompt[0..<4]), startPosition: 0, blockTable: tables[2], wantsLogits: false, pick: .argmax),
            ForwardSequence(tokens: Array(prompt[6..<20]), startPosition: 0, blockTable: tables[3], pick: .argmax),
        ]
        let logits = try fixture.model.forward(ForwardBatch(sequences), kv: try fixture.pool(sequences: 4))
        let outputs = try fixture.model.step(ForwardBatch(sequences), kv: try fixture.pool(sequences: 4))
        XCTAssertEqual(outputs, [.pickedToken(Sampler.argmax(logits[0])), .logits(logits[1]), .none, .pickedToken(Sampler.argmax(logits[3]))])
        // With every row greedy no logits are downloaded; the picks are the same.
        let greedyOnly = try fixture.model.step(ForwardBatch([sequences[0], sequences[3]]), kv: try fixture.pool(sequences: 4))
        XCTAssertEqual(greedyOnly, [outputs[0], outputs[3]])
    }
}
