import Backend
import Foundation
import HiFCCore
import Models
import SynthModels
import XCTest

/// A synthetic model written to a temporary directory and loaded on the CPU backend.
struct ModelFixture {
    let directory: String
    let loaded: LoadedModel

    /// The tiny preset of `architecture`, its config first changed by `adjust` (a sliding window).
    init(
        _ architecture: ModelArchitecture, dtype: TensorDType = .float32, seed: UInt64 = 7,
        backend: any ComputeBackend = CPUBackend(), adjust: (inout ModelConfig) -> Void = { _ in }
    ) throws {
        directory = NSTemporaryDirectory() + "hifc-models-\(architecture.modelType)-\(dtype.rawValue)-\(UUID().uuidString)"
        var synth = SynthModel(architecture: architecture, preset: .tiny, dtype: dtype, seed: seed)
        adjust(&synth.config)
        try synth.write(to: directory)
        loaded = try LoadedModel(directory: directory, backend: backend)
    }

    /// A model directory already written to `directory`, loaded on `backend`.
    init(directory: String, backend: any ComputeBackend = CPUBackend()) throws {
        self.directory = directory
        loaded = try LoadedModel(directory: directory, backend: backend)
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    var model: any CausalLanguageModel { loaded.model }

    /// A pool with room for `sequences` sequences of `tokens` tokens.
    func pool(blockTokens: Int = 16, sequences: Int = 1, tokens: Int = 256) throws -> any KVCachePool {
        try model.makeKVCachePool(blockTokens: blockTokens, blocks: sequences * ((tokens + blockTokens - 1) / blockTokens))
    }

    /// Block table of sequence `index` in a pool laid out as consecutive runs of blocks.
    static func blockTable(index: Int, blockTokens: Int = 16, tokens: Int = 256) -> [Int] {
        let per = (tokens + blockTokens - 1) / blockTokens
        return Array((index * per)..<((index + 1) * per))
    }

    /// The reference (NumPy) logits of `prompt`'s last position and `steps` greedy tokens after it.
    func reference(prompt: [Int], steps: Int) throws -> (logits: [Double], greedy: [Int]) {
        try run(script: "reference_forward.py", python: "python3", prompt: prompt, steps: steps)
    }

    /// The same answers from `Reference/<script>` run by `python` (a name on the PATH or a path).
    func run(script name: String, python: String, prompt: [Int], steps: Int) throws -> (logits: [Double], greedy: [Int]) {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Reference/" + name).path
        let request = directory + "/request.json"
        try JSONSerialization.data(withJSONObject: ["prompt": prompt, "steps": steps])
            .write(to: URL(fileURLWithPath: request))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script, directory, request]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "\(name) failed")
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let logits = try XCTUnwrap(json["logits"] as? [NSNumber]).map(\.doubleValue)
        let greedy = try XCTUnwrap(json["greedy"] as? [NSNumber]).map(\.intValue)
        return (logits, greedy)
    }
}

/// Largest absolute difference relative to the largest magnitude of `reference`.
func relativeError(_ actual: [Float], _ reference: [Double]) -> Double {
    precondition(actual.count == reference.count)
    let scale = reference.map(abs).max() ?? 1
    return zip(actual, reference).map { abs(Double($0) - $1) }.max()! / max(scale, 1e-30)
}
