import Backend
import CUDA
import Foundation
import Models
import SynthModels

/// The forward pass of a synthetic model on the CUDA backend against the CPU backend: logits of
/// a prefill and of each greedy decode step (relative error), whether the greedy tokens agree, and
/// whether the GPU's own greedy pick (`CausalLanguageModel.step`, argmax on the device) is the argmax of
/// the logits it downloads.
public struct GPUModelCheck {
    let cuda: CUDABackend

    /// A check of `cuda` against the CPU backend.
    public init(cuda: CUDABackend) { self.cuda = cuda }

    /// The sliding window given to Mistral and Qwen2 models (every layer, and Qwen2's second half
    /// of its layers): shorter than the prompt, so the windowed kernels decide the logits.
    static let slidingWindow = 16

    /// A model of `--models`: `PRESET` (Llama) or `ARCH:PRESET` (`qwen3:tiny`, `gemma3:1b`,
    /// `mistral:tiny` ...).
    public static func parse(_ entry: String) -> (ModelArchitecture, SynthModel.Preset)? {
        let parts = entry.split(separator: ":").map(String.init)
        guard parts.count <= 2, let preset = SynthModel.Preset(rawValue: parts.last ?? "") else { return nil }
        guard parts.count == 2 else { return (.llama, preset) }
        guard let architecture = ModelArchitecture.allCases.first(where: { $0.name == parts[0].lowercased() }) else { return nil }
        return (architecture, preset)
    }

    /// Results for `preset` (a directory of random weights is written under `workDirectory`).
    /// With `keep`, the model directory stays and gets `reference-prompt.json` (the prompt's
    /// token ids) and `reference-logits-cpu.f32` / `-cuda.f32` (the prefill's last-token logits,
    /// raw little-endian floats), for a comparison with PyTorch (bench/cuda/torch_logits.py).
    public func run(
        preset: SynthModel.Preset, architecture: ModelArchitecture = .llama, workDirectory: String, promptLength: Int = 24, steps: Int = 32,
        keep: Bool = false
    ) throws -> [GPUCheckResult] {
        let dir = workDirectory + "/synth-\(architecture.modelType)-\(preset.rawValue)"
        let started = Date()
        var synth = SynthModel(architecture: architecture, preset: preset, seed: UInt64.random(in: 0...UInt64(UInt32.max)))
        if architecture == .mistral || architecture == .qwen2 {
            synth.config.slidingWindow = Self.slidingWindow
            synth.config.layerTypes = (0..<synth.config.layers).map { architecture == .mistral || $0 >= synth.config.layers / 2 ? .sliding : .full }
        }
        _ = try synth.write(to: dir)
        defer { if !keep { try? FileManager.default.removeItem(atPath: dir) } }
        let cpuModel = try LoadedModel(directory: dir, backend: CPUBackend())
        let gpuModel = try LoadedModel(directory: dir, backend: cuda)
        print(
            "  \(architecture.modelType) \(preset.rawValue): written and loaded on both backends in \(String(format: "%.1f", Date().timeIntervalSince(started))) s"
        )
        let config = cpuModel.config
        let blockTokens = 16
        let blocks = (promptLength + steps) / blockTokens + 2
        let cpuKV = try cpuModel.model.makeKVCachePool(blockTokens: blockTokens, blocks: blocks)
        let gpuKV = try gpuModel.model.makeKVCachePool(blockTokens: blockTokens, blocks: blocks)
        // The same shuffled block table on both sides.
        let table = Array(0..<blocks).shuffled()
        var worst = 0.0
        var first = 0.0
        var agreeSteps = 0
        var ties = 0
        var splits = 0
        var margins: [String] = []
        var devicePickMisses = 0
        var deviceDrawMisses = 0

        var position = 0
        var chunk = (0..<promptLength).map { _ in Int.random(in: 0..<config.vocabSize) }
        for step in 0...steps {
            let cpuLogits = try cpuModel.model.forward(
                ForwardBatch([ForwardSequence(tokens: chunk, startPosition: position, blockTable: table)]), kv: cpuKV)[0]
            let gpuLogits = try gpuModel.model.forward(
                ForwardBatch([ForwardSequence(tokens: chunk, startPosition: position, blockTable: table)]), kv: gpuKV)[0]
            // The same step again with the pick made on the device (it rewrites the same K/V).
            let devicePick = try gpuModel.model.step(
                ForwardBatch([ForwardSequence(tokens: chunk, startPosition: position, blockTable: table, pick: .argmax)]), kv: gpuKV)[0]
            if devicePick != .pickedToken(Sampler.argmax(gpuLogits)) { devicePickMisses += 1 }
            // And once more with a draw, which the backend makes where the logits are (on the GPU
            // unless HIFC_CUDA_DEVICE_SAMPLING=0): the host's draw from the downloaded logits.
            let draw = TokenDraw(temperature: 0.9, topK: step % 2 == 0 ? 0 : 50, topP: 0.9, uniform: Double.random(in: 0..<1))
            let deviceDraw = try gpuModel.model.step(
                ForwardBatch([ForwardSequence(tokens: chunk, startPosition: position, blockTable: table, pick: .draw(draw))]), kv: gpuKV)[0]
            if deviceDraw != .pickedToken(draw.pick(from: gpuLogits)) { deviceDrawMisses += 1 }
            let err = HostReference.relativeError(gpuLogits, cpuLogits.map(Double.init))
            if step == 0 {
                first = err
                if keep {
                    try JSONSerialization.data(withJSONObject: chunk).write(to: URL(fileURLWithPath: dir + "/reference-prompt.json"))
                    try cpuLogits.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dir + "/reference-logits-cpu.f32")) }
                    try gpuLogits.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dir + "/reference-logits-cuda.f32")) }
                }
            }
            worst = max(worst, err)
            let cpuNext = cpuLogits.indices.max { cpuLogits[$0] < cpuLogits[$1] }!
            let gpuNext = gpuLogits.indices.max { gpuLogits[$0] < gpuLogits[$1] }!
            position += chunk.count
            if step == steps { break }
            if cpuNext == gpuNext {
                agreeSteps += 1
            } else {
                // A near-tie: the CPU's own logits of the two picks lie closer together than
                // the logits' error allowance (1e-2 of their RMS, twice: once per pick). Random
                // weights give flat logits where this happens on some seeds.
                let gap = cpuLogits[cpuNext] - cpuLogits[gpuNext]
                let rms = (cpuLogits.reduce(0) { $0 + Double($1) * Double($1) } / Double(cpuLogits.count)).squareRoot()
                if Double(gap) <= 2e-2 * rms { ties += 1 } else { splits += 1 }
                margins.append(String(format: "step %d: gap %.2e vs allowance %.2e", step, gap, 2e-2 * rms))
            }
            // Both continue with the CPU's token, so the logits stay comparable after a near-tie.
            chunk = [cpuNext]
        }
        let window = config.slidingWindow.map { ", sliding window \($0) on \(config.layerTypes.filter { $0 == .sliding }.count) layers" } ?? ""
        let name =
            "synthetic \(preset.rawValue) \(architecture.modelType) (\(config.layers) layers, hidden \(config.hiddenSize), head dim \(config.headDim)\(window))"
        // bf16 weights and activations round at every layer, so the error grows with depth: on the
        // H200 the 2-4-layer models measured 3e-3 to 8e-3, the 16-28-layer 1B shapes 8.3e-3 to
        // 1.2e-2 (llama, qwen3, mistral, gemma3; bench/results/model-families.md), with greedy
        // tokens agreeing; a wrong kernel is off by far more.
        let tolerance = config.layers > 4 ? 2e-2 : 1e-2
        return [
            GPUCheckResult(name: "\(name): prefill logits of \(promptLength) tokens vs CPU backend", error: first, tolerance: tolerance),
            GPUCheckResult(name: "\(name): worst logits over \(steps) decode steps vs CPU backend", error: worst, tolerance: tolerance),
            GPUCheckResult(
                name: "\(name): greedy tokens agree on \(agreeSteps) of \(steps) steps, \(ties) near-ties"
                    + (margins.isEmpty ? "" : " (" + margins.joined(separator: "; ") + ")") + " (error = splits beyond a near-tie)",
                error: Double(splits), tolerance: 0),
            GPUCheckResult(
                name: "\(name): the device's greedy pick is the downloaded logits' argmax on \(steps + 1 - devicePickMisses) of \(steps + 1) steps",
                error: Double(devicePickMisses), tolerance: 0),
            GPUCheckResult(
                name: "\(name): the backend's draw is the host's from the downloaded logits on \(steps + 1 - deviceDrawMisses) of \(steps + 1) steps",
                error: Double(deviceDrawMisses), tolerance: 0),
        ]
    }
}
