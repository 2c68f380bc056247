import Backend
import Foundation
import HiFCCore
import SynthModels
import XCTest

@testable import Models

/// Decode steps replayed from the CPU backend's record of their ops (`CPUBackend.runStep`) must
/// give, bit for bit, what the same steps give op by op, whatever the model family, the weights'
/// format, the KV dtype, and however the batch and the contexts change between steps.
final class CPUStepReplayTests: XCTestCase {
    /// A model's weights with every matrix whose rows are whole Q8_0 blocks quantized to Q8_0
    /// (the others as they are), so that the steps take the integer kernels and the fused calls.
    private struct Q8_0Weights: WeightSource {
        let base: WeightFiles
        var origin: String { base.origin }
        func contains(_ name: String) -> Bool { base.contains(name) }
        func weight(_ name: String, shape: [Int]) throws -> WeightTensor {
            let dense = try base.tensor(name, shape: shape)
            guard shape.count == 2, shape[1] % 32 == 0, !name.contains("embed") else { return .dense(dense) }
            let values = dense.floats()
            var bytes: [UInt8] = []
            for block in stride(from: 0, to: values.count, by: 32) {
                let part = values[block..<block + 32]
                let d = (part.map(abs).max() ?? 0) / 127
                let scale = Float16(d).bitPattern
                bytes += [UInt8(scale & 0xFF), UInt8(scale >> 8)]
                bytes += part.map { UInt8(bitPattern: Int8(d == 0 ? 0 : ($0 / d).rounded())) }
            }
            let storage = Data(bytes) as NSData
            return .quantized(try QuantizedTensor(type: .q8_0, shape: shape, bytes: storage.bytes, owner: storage, name: name))
        }
    }

    private var fixtures: [ModelFixture] = []

    override func tearDown() {
        for fixture in fixtures { fixture.remove() }
    }

    /// The model of `fixture`'s directory on `backend`, its weights quantized when `quantized`.
    private func makeModel(_ fixture: ModelFixture, on backend: CPUBackend, quantized: Bool) throws -> any CausalLanguageModel {
        let files = try WeightFiles(directory: fixture.directory)
        return try fixture.loaded.config.makeModel(weights: quantized ? Q8_0Weights(base: files) : files, backend: backend)
    }

    /// Prompts of 5, 17 and 30 tokens, then greedy decode steps of all three, of the first two once
    /// the third has stopped, and of all three again (contexts cross 16-token blocks): every
    /// step's logits, run on `model`.
    private func run(_ model: any CausalLanguageModel, kvDType: KVDTypeChoice) throws -> [[[Float]]] {
        let pool = try model.makeKVCachePool(blockTokens: 16, blocks: 12, dtype: kvDType)
        let tables = (0..<3).map { Array(($0 * 4)..<($0 * 4 + 4)) }
        var contexts = [5, 17, 30]
        var next = contexts.map { length in (0..<length).map { ($0 * 7 + length) % 50 } }
        var all: [[[Float]]] = []
        for step in 0..<12 {
            let active = step >= 4 && step < 8 ? [0, 1] : [0, 1, 2]
            let batch = ForwardBatch(
                active.map { ForwardSequence(tokens: next[$0], startPosition: contexts[$0] - next[$0].count, blockTable: tables[$0]) })
            let logits = try model.forward(batch, kv: pool)
            all.append(logits)
            for (i, s) in active.enumerated() {
                next[s] = [Sampler.argmax(logits[i])]
                contexts[s] += 1
            }
        }
        return all
    }

    private func assertReplaysMatchOpByOp(
        _ architecture: ModelArchitecture, quantized: Bool, kvDType: KVDTypeChoice, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        // An intermediate size of whole Q8_0 blocks, so that the gated MLP takes its one-call kernel.
        let fixture = try ModelFixture(architecture) { $0.intermediateSize = 192 }
        fixtures.append(fixture)
        let threads = CPUThreadPool(threads: 3)
        let opByOp = CPUBackend(blas: nil, pool: threads, stepReplay: false)
        let replaying = CPUBackend(blas: nil, pool: threads, stepReplay: true)
        let expected = try run(try makeModel(fixture, on: opByOp, quantized: quantized), kvDType: kvDType)
        let actual = try run(try makeModel(fixture, on: replaying, quantized: quantized), kvDType: kvDType)
        XCTAssertEqual(actual, expected, "\(architecture), quantized \(quantized), KV \(kvDType)", file: file, line: line)
        // 12 steps: the prefill runs op by op; batches of 3, 2, then 3 again decode.
        XCTAssertEqual(replaying.stepReplayCounts.recorded, 2, file: file, line: line)
        XCTAssertEqual(replaying.stepReplayCounts.replayed, 9, file: file, line: line)
        XCTAssertEqual(opByOp.stepReplayCounts.recorded + opByOp.stepReplayCounts.replayed, 0, file: file, line: line)
    }

    func testReplayedDecodeStepsMatchOpByOpStepsBitForBit() throws {
        for architecture in [ModelArchitecture.llama, .qwen3, .gemma3] {
            for quantized in [false, true] {
                try assertReplaysMatchOpByOp(architecture, quantized: quantized, kvDType: .auto)
            }
        }
        try assertReplaysMatchOpByOp(.llama, quantized: true, kvDType: .fp8)
    }

    func testATokenOutsideTheVocabularyIsRejectedAndTheNextStepStillReplays() throws {
        let fixture = try ModelFixture(.llama)
        fixtures.append(fixture)
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2), stepReplay: true)
        let model = try makeModel(fixture, on: backend, quantized: false)
        let opByOp = try makeModel(fixture, on: CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2), stepReplay: false), quantized: false)
        let pools = [try model.makeKVCachePool(blockTokens: 16, blocks: 4), try opByOp.makeKVCachePool(blockTokens: 16, blocks: 4)]
        let table = Array(0..<4)
        func decode(_ m: any CausalLanguageModel, _ pool: any KVCachePool, _ token: Int, at position: Int) throws -> [Float] {
            try m.forward(ForwardBatch([ForwardSequence(tokens: [token], startPosition: position, blockTable: table)]), kv: pool)[0]
        }
        for (m, pool) in zip([model, opByOp], pools) {
            _ = try m.forward(ForwardBatch([ForwardSequence(tokens: [1, 2, 3], startPosition: 0, blockTable: table)]), kv: pool)
            _ = try decode(m, pool, 4, at: 3)
        }
        let vocab = fixture.loaded.config.vocabSize
        XCTAssertThrowsError(try decode(model, pools[0], vocab, at: 4)) { error in
            XCTAssertTrue("\(error)".contains("token id \(vocab) is outside the vocabulary of \(vocab)"), "\(error)")
        }
        XCTAssertEqual(try decode(model, pools[0], 5, at: 4), try decode(opByOp, pools[1], 5, at: 4))
        XCTAssertEqual(backend.stepReplayCounts.recorded, 1)
        XCTAssertEqual(backend.stepReplayCounts.replayed, 1)
    }

    func testANewPoolOrModelIsRecordedAgain() throws {
        let fixture = try ModelFixture(.llama)
        fixtures.append(fixture)
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2), stepReplay: true)
        let table = Array(0..<4)
        var logits: [[Float]] = []
        for _ in 0..<2 {
            let model = try makeModel(fixture, on: backend, quantized: false)
            for _ in 0..<2 {
                let pool = try model.makeKVCachePool(blockTokens: 16, blocks: 4)
                for position in 0..<3 {
                    logits.append(
                        try model.forward(
                            ForwardBatch([ForwardSequence(tokens: [position + 1], startPosition: position, blockTable: table)]), kv: pool)[0])
                }
            }
        }
        // Each model and pool: one step recorded, two replayed, the same logits each time.
        XCTAssertEqual(backend.stepReplayCounts.recorded, 4)
        XCTAssertEqual(backend.stepReplayCounts.replayed, 8)
        for run in 1..<4 { XCTAssertEqual(Array(logits[(run * 3)..<(run * 3 + 3)]), Array(logits[0..<3])) }
    }
}
