import Backend
import Foundation
import Models
import XCTest

/// The strongest check of a family: HF transformers itself (PyTorch, float32) on the same tiny
/// random model, prompt logits and greedy tokens. Needs `torch` and `transformers`, which CI does
/// not install (torch is large); set `HIFC_TRANSFORMERS_PYTHON` to a Python that has them, or the
/// tests skip.
final class TransformersComparisonTests: XCTestCase {
    let prompt = [5, 17, 42, 99, 3, 250, 8, 64, 128, 7, 33, 21, 11, 200, 19, 77, 4, 90, 31, 60]

    private var python: String { ProcessInfo.processInfo.environment["HIFC_TRANSFORMERS_PYTHON"] ?? "python3" }

    private func requireTransformers() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", "import torch, transformers"]
        process.standardError = Pipe()
        try process.run()
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            throw XCTSkip("\(python) cannot import torch and transformers (set HIFC_TRANSFORMERS_PYTHON)")
        }
    }

    private func compare(_ architecture: ModelArchitecture, adjust: (inout ModelConfig) -> Void = { _ in }) throws {
        try requireTransformers()
        let fixture = try ModelFixture(architecture, adjust: adjust)
        defer { fixture.remove() }
        let steps = 24
        let reference = try fixture.run(script: "transformers_forward.py", python: python, prompt: prompt, steps: steps)
        let pool = try fixture.pool(tokens: prompt.count + steps)
        let table = ModelFixture.blockTable(index: 0, tokens: prompt.count + steps)
        var logits = try fixture.model.forward(ForwardBatch([ForwardSequence(tokens: prompt, startPosition: 0, blockTable: table)]), kv: pool)[0]
        let error = relativeError(logits, reference.logits)
        XCTAssertLessThan(error, 1e-4, "\(architecture): prompt logits differ from transformers by \(error)")
        var generated: [Int] = []
        for step in 0..<steps {
            generated.append(Sampler.argmax(logits))
            logits = try fixture.model.forward(
                ForwardBatch([ForwardSequence(tokens: [generated.last!], startPosition: prompt.count + step, blockTable: table)]), kv: pool)[0]
        }
        XCTAssertEqual(generated, reference.greedy, "\(architecture): greedy tokens differ from transformers")
    }

    func testLlamaMatchesTransformers() throws { try compare(.llama) }

    func testQwen3MatchesTransformers() throws { try compare(.qwen3) }

    func testGemma3MatchesTransformers() throws { try compare(.gemma3) }

    func testSlidingWindowMistralMatchesTransformers() throws {
        try compare(.mistral) { config in
            config.slidingWindow = 6
            config.layerTypes = Array(repeating: .sliding, count: config.layers)
        }
    }

    func testSlidingWindowQwen2MatchesTransformers() throws {
        try compare(.qwen2) { config in
            config.slidingWindow = 5
            config.layerTypes = [.full, .sliding]
        }
    }
}
