import Backend
import CUDA
import Foundation
import Models
import SynthModels

/// Decode steps replayed from CUDA graphs against the same steps launched kernel by kernel: for
/// batches of several sizes (padded up to their graph's row count) over random prompts whose
/// contexts cross context classes, every step runs three ways on the same KV, in this order:
/// unpadded kernel by kernel (graphs off, today's launch), padded kernel by kernel, and through
/// the graph (captured on a shape's first step, replayed after). The padded and graph logits
/// must be identical to the bit (the same kernels with the same arguments); against the
/// unpadded launch, whose attention splits the context differently, the greedy tokens must
/// agree but for near-ties (a flip the measured difference of the two launches' logits explains)
/// and the logits stay within rounding.
public struct GPUStepGraphCheck {
    let cuda: CUDABackend

    /// A check on `cuda`; its graph mode is restored afterwards.
    public init(cuda: CUDABackend) { self.cuda = cuda }

    /// Results for `preset` (random weights written under `workDirectory`, removed afterwards):
    /// `batches` of sequences whose prompts start at random lengths in each of `prompts`, each
    /// decoded greedily for `steps` steps.
    public func run(
        preset: SynthModel.Preset, architecture: ModelArchitecture = .llama, workDirectory: String,
        batches: [Int] = [1, 3, 8, 16, 21, 64], prompts: [ClosedRange<Int>] = [1...40, 230...250, 1000...1030], steps: Int = 12
    ) throws -> [GPUCheckResult] {
        let mode = cuda.stepGraphMode
        defer { cuda.stepGraphMode = mode }
        let dir = workDirectory + "/synth-graphs-\(architecture.modelType)-\(preset.rawValue)"
        _ = try SynthModel(architecture: architecture, preset: preset, seed: UInt64.random(in: 0...UInt64(UInt32.max))).write(to: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let loaded = try LoadedModel(directory: dir, backend: cuda)
        let model = loaded.model
        let vocab = model.config.vocabSize
        let blockTokens = 16
        let name = "decode-step CUDA graphs, synthetic \(preset.rawValue) \(architecture.modelType)"
        var results: [GPUCheckResult] = []
        for batch in batches {
            for prompt in prompts {
                let lengths = (0..<batch).map { _ in Int.random(in: prompt) }
                let blocksEach = (prompt.upperBound + steps) / blockTokens + 1
                let kv = try model.makeKVCachePool(blockTokens: blockTokens, blocks: batch * blocksEach)
                // Each sequence's blocks scattered over the pool.
                let order = Array(0..<(batch * blocksEach)).shuffled()
                let tables = (0..<batch).map { Array(order[($0 * blocksEach)..<(($0 + 1) * blocksEach)]) }
                cuda.stepGraphMode = .off
                var next = try model.forward(
                    ForwardBatch(
                        (0..<batch).map { i in
                            ForwardSequence(tokens: (0..<lengths[i]).map { _ in Int.random(in: 0..<vocab) }, startPosition: 0, blockTable: tables[i])
                        }), kv: kv
                ).map { Sampler.argmax($0) }
                var positions = lengths
                var bitMismatches = 0
                var tokenMismatches = 0
                var ties = 0
                var worst = 0.0
                let before = cuda.stepGraphCounts
                for _ in 0..<steps {
                    let step = ForwardBatch(
                        (0..<batch).map { ForwardSequence(tokens: [next[$0]], startPosition: positions[$0], blockTable: tables[$0]) })
                    cuda.stepGraphMode = .off
                    let eager = try model.forward(step, kv: kv)
                    cuda.stepGraphMode = .padded
                    let padded = try model.forward(step, kv: kv)
                    cuda.stepGraphMode = .on
                    let graph = try model.forward(step, kv: kv)
                    for i in 0..<batch {
                        if !padded[i].elementsEqual(graph[i], by: { $0.bitPattern == $1.bitPattern }) { bitMismatches += 1 }
                        let (e, g) = (Sampler.argmax(eager[i]), Sampler.argmax(graph[i]))
                        if e != g {
                            // A near-tie is no fault: the unpadded launch's gap between the two
                            // picks is within what the measured difference of the two launches'
                            // logits (the attention's split count differs, so its sums round
                            // differently) can close, each pick moving by at most that much.
                            let moved = zip(eager[i], graph[i]).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
                            if eager[i][e] - eager[i][g] <= 2 * moved { ties += 1 } else { tokenMismatches += 1 }
                        }
                        worst = max(worst, HostReference.relativeError(graph[i], eager[i].map(Double.init)))
                    }
                    next = graph.map { Sampler.argmax($0) }
                    for i in 0..<batch { positions[i] += 1 }
                }
                let after = cuda.stepGraphCounts
                let label = "\(name): batch \(batch), prompts \(prompt.lowerBound)-\(prompt.upperBound) + \(steps) steps"
                let replays = after.replays - before.replays
                results.append(
                    GPUCheckResult(
                        name:
                            "\(label): graph vs padded kernel-by-kernel logits, rows not bit-identical (\(after.captures - before.captures) captures, \(replays) replays)",
                        error: Double(bitMismatches), tolerance: 0,
                        failure: replays == 0 ? "no step was replayed from a graph (captures failed, or graphs are off: HIFC_CUDA_GRAPHS)" : nil))
                results.append(
                    GPUCheckResult(
                        name: "\(label): graph vs unpadded kernel-by-kernel, greedy tokens differing beyond \(ties) near-ties",
                        error: Double(tokenMismatches), tolerance: 0))
                results.append(GPUCheckResult(name: "\(label): graph vs unpadded kernel-by-kernel logits", error: worst, tolerance: 1e-2))
            }
        }
        return results
    }
}
