import Backend
import Foundation
import Models
import SynthModels
import XCTest

/// Bad model directories fail with errors that name the file or tensor; good ones in every dtype,
/// single or sharded, load.
final class ModelLoadingTests: XCTestCase {
    private func scratch(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "hifc-loading-\(name)-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// A tiny synthetic model in a scratch directory removed after the test.
    private func synth(_ name: String, _ architecture: ModelArchitecture, _ dtype: TensorDType, seed: UInt64 = 0) throws -> String {
        let dir = scratch(name)
        try SynthModel(architecture: architecture, preset: .tiny, dtype: dtype, seed: seed).write(to: dir)
        return dir
    }

    private func assertError(
        _ body: @autoclosure () throws -> some Any, mentions needle: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(needle), "error '\(error)' does not mention '\(needle)'", file: file, line: line)
        }
    }

    func testMissingDirectoryAndMissingFilesAreNamed() throws {
        assertError(try LoadedModel(directory: "/nonexistent/model", backend: CPUBackend()), mentions: "/nonexistent/model")
        let dir = try synth("missing", .llama, .float32)
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        assertError(try LoadedModel(directory: dir, backend: CPUBackend()), mentions: "model.safetensors")
        try FileManager.default.removeItem(atPath: dir + "/tokenizer.json")
        assertError(try LoadedModel(directory: dir, backend: CPUBackend()), mentions: "tokenizer.json")
    }

    func testTruncatedSafetensorsIsNamed() throws {
        let dir = try synth("truncated", .qwen2, .bfloat16)
        let path = dir + "/model.safetensors"
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
        try handle.truncate(atOffset: try handle.seekToEnd() - 100)
        try handle.close()
        assertError(try LoadedModel(directory: dir, backend: CPUBackend()), mentions: "model.safetensors")
    }

    func testUnsupportedArchitectureAndShapeMismatchAreNamed() throws {
        let dir = try synth("config", .mistral, .float16)
        let configPath = dir + "/config.json"
        let original = try Data(contentsOf: URL(fileURLWithPath: configPath))
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: original) as? [String: Any])
        config["architectures"] = ["GPTNeoXForCausalLM"]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        assertError(try LoadedModel(directory: dir, backend: CPUBackend()), mentions: "GPTNeoXForCausalLM")
        config["architectures"] = ["MistralForCausalLM"]
        config["intermediate_size"] = 200
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        assertError(try LoadedModel(directory: dir, backend: CPUBackend()), mentions: "mlp.gate_proj.weight")
    }

    func testUnsupportedTokenizerTypeIsNamed() throws {
        let dir = try synth("tokenizer", .llama, .float32)
        let path = dir + "/tokenizer.json"
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        var model = try XCTUnwrap(json["model"] as? [String: Any])
        model["type"] = "Unigram"
        json["model"] = model
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        assertError(try LoadedModel(directory: dir, backend: CPUBackend()), mentions: "Unigram")
    }

    func testDTypesAgreeAndShardedWeightsLoad() throws {
        let dir32 = try synth("f32", .llama, .float32, seed: 3)
        let dir16 = try synth("bf16", .llama, .bfloat16, seed: 3)
        let sharded = scratch("sharded")
        // Shard the f32 weights into two files with an index, as large checkpoints are.
        try FileManager.default.copyItem(atPath: dir32, toPath: sharded)
        let whole = try SafeTensorsFile(path: sharded + "/model.safetensors")
        let names = whole.entries.keys.sorted()
        var weightMap: [String: String] = [:]
        for (part, slice) in [names[..<(names.count / 2)], names[(names.count / 2)...]].enumerated() {
            let file = "model-0000\(part + 1)-of-00002.safetensors"
            let tensors = slice.map { name in
                let t = whole.tensor(name)!
                return SafeTensorsWriter.Tensor(name: name, shape: t.shape) { buffer, start in
                    for i in 0..<buffer.count { buffer[i] = t.float(at: start + i) }
                }
            }
            try SafeTensorsWriter.write(tensors, dtype: .float32, to: sharded + "/" + file)
            for name in slice { weightMap[name] = file }
        }
        try FileManager.default.removeItem(atPath: sharded + "/model.safetensors")
        try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": weightMap])
            .write(to: URL(fileURLWithPath: sharded + "/model.safetensors.index.json"))

        let prompt = [3, 1, 4, 1, 5, 9, 2, 6]
        func logits(_ dir: String) throws -> [Float] {
            let model = try LoadedModel(directory: dir, backend: CPUBackend()).model
            let pool = try model.makeKVCachePool(blockTokens: 4, blocks: 2)
            return try model.forward(ForwardBatch([ForwardSequence(tokens: prompt, startPosition: 0, blockTable: [0, 1])]), kv: pool)[0]
        }
        let full = try logits(dir32)
        XCTAssertEqual(try logits(sharded), full)
        // bf16 weights are the f32 ones rounded: close, not equal.
        XCTAssertLessThan(relativeError(try logits(dir16), full.map(Double.init)), 0.05)
    }
}
