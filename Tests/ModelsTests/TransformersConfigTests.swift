import Backend
import Foundation
import Models
import SynthModels
import XCTest

/// config.json as transformers 5 writes it (`rope_parameters`, `dtype`, `layer_types`; the files in
/// Fixtures/transformers5 come from transformers 5.17's save_pretrained) is read with the same
/// meaning as transformers gives it, and every key that changes the arithmetic without being
/// implemented is refused by name.
final class TransformersConfigTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/transformers5").path

    private func fixture(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/\(name).json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// `object` written to a scratch config.json and read back.
    private func read(_ object: [String: Any]) throws -> ModelConfig {
        let directory = NSTemporaryDirectory() + "hifc-config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/config.json"
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        return try ModelConfig(contentsOf: path)
    }

    func testTransformers5ConfigsAreReadWithTheirRopeParametersAndWindows() throws {
        let llama = try read(try fixture("llama"))
        XCTAssertEqual(llama.ropeTheta, 500_000)
        XCTAssertEqual(llama.ropeScaling, .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 64))
        XCTAssertEqual(llama.torchDType, "float32")
        XCTAssertEqual(llama.layerTypes, [.full, .full])

        let mistral = try read(try fixture("mistral"))
        XCTAssertEqual(mistral.ropeTheta, 1_000_000)
        XCTAssertEqual(mistral.slidingWindow, 7)
        XCTAssertEqual(mistral.layerTypes, [.sliding, .sliding])

        let qwen2 = try read(try fixture("qwen2"))
        XCTAssertEqual(qwen2.ropeTheta, 1_000_000)
        XCTAssertEqual(qwen2.slidingWindow, 5)
        XCTAssertEqual(qwen2.layerTypes, [.full, .sliding])
        XCTAssertTrue(qwen2.attentionBias)
        XCTAssertTrue(qwen2.tieWordEmbeddings)

        let qwen3 = try read(try fixture("qwen3"))
        XCTAssertEqual(qwen3.headDim, 32)
        XCTAssertFalse(qwen3.attentionBias)
        XCTAssertEqual(qwen3.slidingWindow, 6)
        XCTAssertEqual(qwen3.layerTypes, [.full, .sliding, .sliding])

        let gemma = try read(try fixture("gemma3"))
        XCTAssertEqual(gemma.architecture, .gemma3)
        XCTAssertEqual(gemma.ropeTheta, 1_000_000)
        XCTAssertEqual(gemma.ropeScaling, .linear(factor: 8))
        XCTAssertEqual(gemma.localRopeTheta, 10_000)
        XCTAssertEqual(gemma.slidingWindow, 5)
        XCTAssertEqual(gemma.layerTypes, [.sliding, .full, .sliding, .full])
        XCTAssertEqual(gemma.queryPreAttentionScalar, 24)
        XCTAssertEqual(gemma.finalLogitSoftcapping, 30)
        XCTAssertEqual(gemma.hiddenActivation, .geluTanh)
        XCTAssertTrue(gemma.tieWordEmbeddings)
    }

    /// Without `rope_parameters` or `rope_theta`, each family's transformers default base; without
    /// `use_sliding_window`, Qwen attends fully whatever `layer_types` says.
    func testAbsentKeysTakeTheTransformersDefaults() throws {
        var qwen2 = try fixture("qwen2")
        qwen2["rope_parameters"] = nil
        qwen2["use_sliding_window"] = false
        let config = try read(qwen2)
        XCTAssertEqual(config.ropeTheta, 10_000)
        XCTAssertNil(config.slidingWindow)
        XCTAssertEqual(config.layerTypes, [.full, .full])
        var gemma = try fixture("gemma3")
        gemma["rope_parameters"] = nil
        gemma["layer_types"] = nil
        gemma["sliding_window_pattern"] = 3
        gemma["num_hidden_layers"] = 6
        let g = try read(gemma)
        XCTAssertEqual(g.ropeTheta, 1_000_000)
        XCTAssertEqual(g.localRopeTheta, 10_000)
        XCTAssertEqual(g.layerTypes, [.sliding, .sliding, .full, .sliding, .sliding, .full])
        var mistral = try fixture("mistral")
        mistral["sliding_window"] = nil
        XCTAssertEqual(try read(mistral).slidingWindow, 4096, "MistralConfig's default window")
    }

    func testUnimplementedKeysAreRefusedByName() throws {
        func assertRefused(_ name: String, _ change: (inout [String: Any]) -> Void, mentions key: String, line: UInt = #line) throws {
            var object = try fixture(name)
            change(&object)
            XCTAssertThrowsError(try read(object), line: line) { error in
                XCTAssertTrue("\(error)".contains(key), "'\(error)' does not name \(key)", line: line)
            }
        }
        try assertRefused(
            "llama", { $0["rope_parameters"] = ["rope_type": "yarn", "factor": 4.0, "rope_theta": 10_000.0] }, mentions: "rope_parameters.rope_type")
        try assertRefused(
            "llama",
            {
                $0["rope_parameters"] = nil
                $0["rope_scaling"] = ["type": "dynamic", "factor": 2.0]
            }, mentions: "rope_scaling.rope_type")
        try assertRefused("llama", { $0["hidden_act"] = "gelu" }, mentions: "hidden_act")
        try assertRefused("llama", { $0["mlp_bias"] = true }, mentions: "mlp_bias")
        try assertRefused("llama", { $0["quantization_config"] = ["quant_method": "awq"] }, mentions: "quantization_config")
        try assertRefused("llama", { $0["partial_rotary_factor"] = 0.5 }, mentions: "partial_rotary_factor")
        try assertRefused("llama", { $0["final_logit_softcapping"] = 30.0 }, mentions: "final_logit_softcapping")
        try assertRefused("qwen3", { $0["layer_types"] = ["full_attention", "chunked_attention", "full_attention"] }, mentions: "layer_types")
        try assertRefused("qwen3", { $0["layer_types"] = ["full_attention"] }, mentions: "layer_types")
        try assertRefused("gemma3", { $0["attn_logit_softcapping"] = 50.0 }, mentions: "attn_logit_softcapping")
        try assertRefused("gemma3", { $0["use_bidirectional_attention"] = true }, mentions: "use_bidirectional_attention")
        try assertRefused("gemma3", { $0["hidden_activation"] = "gelu" }, mentions: "hidden_activation")
        try assertRefused(
            "gemma3",
            {
                $0["rope_parameters"] = [
                    "full_attention": ["rope_type": "default", "rope_theta": 1e6],
                    "sliding_attention": ["rope_type": "linear", "factor": 2.0, "rope_theta": 1e4],
                ]
            }, mentions: "rope_parameters.sliding_attention")
        try assertRefused("mistral", { $0["sliding_window"] = 0 }, mentions: "sliding_window")
        try assertRefused("llama", { $0["architectures"] = ["Gemma3ForConditionalGeneration"] }, mentions: "Gemma3ForConditionalGeneration")
    }

    /// A tiny model of every family whose config.json is the one transformers 5 wrote (its
    /// vocabulary sized to the synthetic tokenizer) against the NumPy reference, which reads the
    /// same file.
    func testTransformers5DirectoriesMatchNumPyReference() throws {
        let prompt = [5, 17, 42, 99, 3, 250, 8, 64, 128, 7, 33, 21, 11, 200, 19, 77, 4, 90, 31, 60]
        for name in ["llama", "mistral", "qwen2", "qwen3", "gemma3"] {
            var object = try fixture(name)
            var config = try read(object)
            config.vocabSize = 0
            let directory = NSTemporaryDirectory() + "hifc-transformers5-\(name)-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let written = try SynthModel(config: config, dtype: .float32, seed: 11).write(to: directory)
            object["vocab_size"] = written.vocabSize
            object["bos_token_id"] = written.bosTokenID ?? NSNull()
            object["eos_token_id"] = written.eosTokenIDs.first ?? NSNull()
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: directory + "/config.json"))
            let fixture = try ModelFixture(directory: directory)
            XCTAssertEqual(fixture.loaded.config.layerTypes, config.layerTypes, name)
            let steps = 12
            let reference = try fixture.reference(prompt: prompt, steps: steps)
            let pool = try fixture.pool(tokens: prompt.count + steps)
            let table = ModelFixture.blockTable(index: 0, tokens: prompt.count + steps)
            var logits = try fixture.model.forward(ForwardBatch([ForwardSequence(tokens: prompt, startPosition: 0, blockTable: table)]), kv: pool)[0]
            XCTAssertLessThan(relativeError(logits, reference.logits), 1e-4, name)
            var generated: [Int] = []
            for step in 0..<steps {
                generated.append(Sampler.argmax(logits))
                logits = try fixture.model.forward(
                    ForwardBatch([ForwardSequence(tokens: [generated.last!], startPosition: prompt.count + step, blockTable: table)]), kv: pool)[0]
            }
            XCTAssertEqual(generated, reference.greedy, "\(name): greedy tokens differ from NumPy")
        }
    }
}
