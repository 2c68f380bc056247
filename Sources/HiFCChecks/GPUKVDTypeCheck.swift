import Backend
import CUDA
import Foundation
import HiFCCore
import Models
import SynthModels

/// What fp8 KV does to a synthetic model's logits on the GPU, against bf16 KV, measured against
/// what it does on the CPU backend (against f32 KV), where the fp8 path is the reference one:
/// the same prompt and the same tokens fed to all four pools, so the logits stay comparable step
/// after step. The GPU's fp8 error must be the CPU's (E4M3's own) plus at most bf16's rounding.
public struct GPUKVDTypeCheck {
    let cuda: CUDABackend

    /// A check on `cuda`.
    public init(cuda: CUDABackend) { self.cuda = cuda }

    /// Results for `preset` (a directory of random weights is written under `workDirectory`).
    public func run(
        preset: SynthModel.Preset, architecture: ModelArchitecture = .llama, workDirectory: String, promptLength: Int = 64, steps: Int = 64
    ) throws -> [GPUCheckResult] {
        let dir = workDirectory + "/synth-kvdtype-\(architecture.modelType)-\(preset.rawValue)"
        _ = try SynthModel(architecture: architecture, preset: preset, seed: UInt64.random(in: 0...UInt64(UInt32.max))).write(to: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cpu = try LoadedModel(directory: dir, backend: CPUBackend()).model
        let gpu = try LoadedModel(directory: dir, backend: cuda).model
        let blockTokens = 16
        let blocks = (promptLength + steps) / blockTokens + 2
        let table = Array(0..<blocks).shuffled()
        let pools = [
            try cpu.makeKVCachePool(blockTokens: blockTokens, blocks: blocks),
            try cpu.makeKVCachePool(blockTokens: blockTokens, blocks: blocks, dtype: .fp8),
            try gpu.makeKVCachePool(blockTokens: blockTokens, blocks: blocks),
            try gpu.makeKVCachePool(blockTokens: blockTokens, blocks: blocks, dtype: .fp8),
        ]
        let models = [cpu, cpu, gpu, gpu]
        var cpuWorst = 0.0
        var gpuWorst = 0.0
        var cpuSame = 0
        var gpuSame = 0
        var position = 0
        var chunk = (0..<promptLength).map { _ in Int.random(in: 0..<cpu.config.vocabSize) }
        for step in 0...steps {
            let batch = ForwardBatch([ForwardSequence(tokens: chunk, startPosition: position, blockTable: table)])
            let logits = try zip(models, pools).map { try $0.forward(batch, kv: $1)[0] }
            cpuWorst = max(cpuWorst, HostReference.relativeError(logits[1], logits[0].map(Double.init)))
            gpuWorst = max(gpuWorst, HostReference.relativeError(logits[3], logits[2].map(Double.init)))
            let picks = logits.map(Sampler.argmax)
            position += chunk.count
            if step == steps { break }
            if picks[0] == picks[1] { cpuSame += 1 }
            if picks[2] == picks[3] { gpuSame += 1 }
            // Every pool continues with the bf16 (GPU) reference's pick.
            chunk = [picks[2]]
        }
        let config = cpu.config
        let name = "synthetic \(preset.rawValue) \(architecture.modelType) (\(config.layers) layers, head dim \(config.headDim)), fp8 KV"
        // bf16 activations and KV put the GPU's logits some 1e-2 from the CPU's (GPUModelCheck):
        // that much again is allowed on top of E4M3's own error.
        let allowance = 1.5 * cpuWorst + (config.layers > 4 ? 2e-2 : 1e-2)
        return [
            GPUCheckResult(
                name:
                    "\(name): worst logits over a \(promptLength)-token prefill and \(steps) decode steps against bf16 KV (CUDA); the CPU's fp8 against f32 KV: \(String(format: "%.3e", cpuWorst)); greedy picks the same on \(gpuSame) of \(steps) steps (CPU \(cpuSame))",
                error: gpuWorst, tolerance: allowance)
        ]
    }
}
