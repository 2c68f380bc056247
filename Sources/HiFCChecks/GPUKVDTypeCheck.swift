import Backend
import CUDA
import Foundation
import HiFCCore
import Models
import SynthModels

/// A synthetic model with fp8 KV on the GPU against the CPU backend's fp8 path and against bf16
/// KV on the GPU, each measured by what fp8 does on the CPU (against f32 KV): the same prompt and
/// the same tokens go to all four pools (CPU f32 and fp8, GPU bf16 and fp8), so the logits stay
/// comparable step after step.
///
/// The two backends round activations differently (bf16 on the GPU), so a K or V value near an
/// E4M3 rounding boundary gets codes a step apart: the GPU's fp8 logits may differ from the CPU's
/// by up to E4M3's own effect plus what bf16 does anyway (GPUModelCheck's allowance), and from the
/// GPU's bf16 KV by about E4M3's own effect.
public struct GPUKVDTypeCheck {
    let cuda: CUDABackend

    /// A check on `cuda`.
    public init(cuda: CUDABackend) { self.cuda = cuda }

    /// Results for `preset` (a directory of random weights is written under `workDirectory`).
    public func run(
        preset: SynthModel.Preset, architecture: ModelArchitecture = .llama, workDirectory: String, promptLength: Int = 64, steps: Int = 64
    ) throws -> [GPUCheckResult] {
        let dir = workDirectory + "/synth-kvdtype-\(architecture.modelType)-\(preset.rawValue)"
        var synth = SynthModel(architecture: architecture, preset: preset, seed: UInt64.random(in: 0...UInt64(UInt32.max)))
        if architecture == .mistral || architecture == .qwen2 {
            // The windows GPUModelCheck gives them, so the fp8 windowed kernels decide the logits.
            synth.config.slidingWindow = GPUModelCheck.slidingWindow
            synth.config.layerTypes = (0..<synth.config.layers).map { architecture == .mistral || $0 >= synth.config.layers / 2 ? .sliding : .full }
        }
        _ = try synth.write(to: dir)
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
        var backendsWorst = 0.0
        var cpuSame = 0
        var gpuSame = 0
        var position = 0
        var chunk = (0..<promptLength).map { _ in Int.random(in: 0..<cpu.config.vocabSize) }
        for step in 0...steps {
            let batch = ForwardBatch([ForwardSequence(tokens: chunk, startPosition: position, blockTable: table)])
            let logits = try zip(models, pools).map { try $0.forward(batch, kv: $1)[0] }
            cpuWorst = max(cpuWorst, HostReference.relativeError(logits[1], logits[0].map(Double.init)))
            gpuWorst = max(gpuWorst, HostReference.relativeError(logits[3], logits[2].map(Double.init)))
            backendsWorst = max(backendsWorst, HostReference.relativeError(logits[3], logits[1].map(Double.init)))
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
        // bf16 activations and KV put the GPU's logits up to 1e-2 (2e-2 past 4 layers) from the
        // CPU's (GPUModelCheck); that is allowed on top of E4M3's own effect.
        let bf16Allowance = config.layers > 4 ? 2e-2 : 1e-2
        return [
            GPUCheckResult(
                name:
                    "\(name): worst logits against the CPU backend's fp8 KV; the CPU's fp8 against f32 KV: \(String(format: "%.3e", cpuWorst))",
                error: backendsWorst, tolerance: cpuWorst + bf16Allowance),
            GPUCheckResult(
                name:
                    "\(name): worst logits over a \(promptLength)-token prefill and \(steps) decode steps against bf16 KV (CUDA); the CPU's fp8 against f32 KV: \(String(format: "%.3e", cpuWorst)); greedy picks the same on \(gpuSame) of \(steps) steps (CPU \(cpuSame))",
                error: gpuWorst, tolerance: 1.5 * cpuWorst + bf16Allowance),
        ]
    }
}
