import Backend
import CUDA
import Engine
import FlashStore
import Foundation
import HiFCCore
import Models
import SynthModels

/// The engine on the CUDA backend under a KV budget that forces dozens of preemptions: greedy
/// requests swapped to flash through cuFile and through the O_DIRECT staging ring, and to pinned
/// host memory, against the same requests with a budget that never runs out. A swap is lossless
/// when every block comes back (each read-back block's GPU CRC32C must match the one taken
/// before it was written, or the swap fails) and the requests' tokens are those of the
/// unstarved run. The tokens also catch a block read or written before the compute stream was
/// done with it, which a checksum taken at the same moment would not. The reference runs one
/// step at a time; every other run launches greedy decode steps behind the step before them,
/// their tokens fed on the device (`StepOverlap`), and one unstarved run checks that alone.
///
/// Steps hold at most 8 tokens, so that a row's arithmetic does not depend on the rest of its
/// batch and equal tokens can be asked for: every product then takes the skinny kernel's m <= 8
/// launch, which depends on n alone (larger steps go to other launches or to cuBLAS, whose sums
/// may round differently), and the tiny model's attention (head dim 16, contexts under 128
/// tokens) runs the general kernel with one split.
public struct GPUEngineSwapCheck {
    /// The CUDA backend (any backend runs it, but only CUDA's pool swaps straight to flash).
    let backend: any ComputeBackend

    /// A check of the engine on `backend`.
    public init(backend: any ComputeBackend) { self.backend = backend }

    private let promptCount = 24
    private let maxTokens = 64
    private let starvedBlocks = 8
    private let minimumSwapOuts = 12

    /// Results for the synthetic tiny model (written under `workDirectory`), its flash regions
    /// in `flashDirectory`.
    public func run(flashDirectory: String, workDirectory: String) throws -> [GPUCheckResult] {
        let dir = workDirectory + "/synth-tiny-engine-swaps-\(getpid())"
        _ = try SynthModel(architecture: .llama, preset: .tiny, seed: UInt64.random(in: 0...UInt64(UInt32.max))).write(to: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let loaded = try LoadedModel(directory: dir, backend: backend)
        let prompts = GreedyRun.distinctPrompts(promptCount)

        let unstarved = "engine on the GPU, \(promptCount) greedy requests of \(maxTokens) tokens, unstarved"
        let reference: GreedyRun
        do {
            reference = try generate(loaded, prompts, blocks: 200, mode: .recompute, overlap: .off).run
        } catch {
            return [GPUCheckResult(name: unstarved, error: .infinity, tolerance: 0, failure: "\(error)")]
        }
        var results = [GPUCheckResult(name: "\(unstarved): preemptions (none expected)", error: Double(reference.stats.preemptions), tolerance: 0)]
        let ahead = "\(unstarved), decode steps launched ahead (tokens fed on the device)"
        do {
            let run = try generate(loaded, prompts, blocks: 200, mode: .recompute).run
            results += [
                GPUCheckResult(
                    name: "\(ahead): requests whose tokens differ from the step-at-a-time run's or that did not finish, of \(promptCount)",
                    error: Double(run.differences(from: reference).count), tolerance: 0),
                GPUCheckResult(
                    name: "\(ahead): \(run.stats.stepsLaunchedAhead) of \(run.stats.steps) steps launched ahead (error = none)",
                    error: run.stats.stepsLaunchedAhead > 0 ? 0 : 1, tolerance: 0),
            ]
        } catch {
            results.append(GPUCheckResult(name: ahead, error: .infinity, tolerance: 0, failure: "\(error)"))
        }
        let cases: [(label: String, mode: PreemptionMode, useCUFile: Bool?)] = [
            ("swap-flash via cuFile", .swapFlash, true), ("swap-flash via the O_DIRECT staging ring", .swapFlash, false),
            ("swap-dram", .swapDRAM, nil), ("recompute", .recompute, nil),
        ]
        for c in cases {
            let name = "engine on the GPU under starvation (\(starvedBlocks) blocks of 16 tokens), \(c.label)"
            do {
                let (run, paths) = try generate(
                    loaded, prompts, blocks: starvedBlocks, mode: c.mode, flashDirectory: flashDirectory, useCUFile: c.useCUFile)
                // cuFile refusing the file would silently put the first case on the ring.
                let io = paths.isEmpty ? "" : " (I/O: " + paths.sorted().joined(separator: ", ") + ")"
                results += judge(run, against: reference, name: name + io, swaps: c.mode != .recompute)
            } catch {
                results.append(GPUCheckResult(name: name, error: .infinity, tolerance: 0, failure: "\(error)"))
            }
        }
        return results
    }

    /// One run through a fresh engine; for `swap-flash`, over a fresh flash store in
    /// `flashDirectory` and the CUDA pool's direct swapper (`useCUFile: false` forces the ring),
    /// whose I/O paths come back with the run.
    private func generate(
        _ loaded: LoadedModel, _ prompts: [[Int]], blocks: Int, mode: PreemptionMode,
        flashDirectory: String? = nil, useCUFile: Bool? = nil, overlap: StepOverlap = .auto
    ) throws -> (run: GreedyRun, paths: [String]) {
        var store: FlashStore?
        var regionDirectory: String?
        if mode == .swapFlash, let flashDirectory {
            let path = flashDirectory + "/hifc-engine-swap-check-\(getpid())"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            regionDirectory = path
            store = try FlashStore(configuration: FlashStoreConfiguration(paths: [path], capacityPerPath: .mib(256), segmentSize: .mib(16)))
        }
        defer {
            store?.close()
            if let regionDirectory { try? FileManager.default.removeItem(atPath: regionDirectory) }
        }
        var configuration = EngineConfiguration(
            kvBudget: .blocks(blocks), blockTokens: 16, maxStepTokens: 8, maxRunning: 8,
            preemption: mode, prefetchDepth: 2, hostSwapCapacity: .mib(64))
        configuration.stepOverlap = overlap
        let opened = store
        var swapper: CUDAFlashSwap?
        let core = try EngineCore(
            loaded: loaded, configuration: configuration, flashTier: opened.map { FlashTier(store: $0) },
            deviceSwapper: { pool in
                swapper = opened.flatMap { (pool as? CUDAKVCachePool)?.makeFlashSwapper(store: $0, useCUFile: useCUFile ?? true) }
                return swapper
            })
        let run = try GreedyRun.run(prompts, maxTokens: maxTokens, through: core)
        return (run, swapper?.pathsInUse ?? [])
    }

    private func judge(_ run: GreedyRun, against reference: GreedyRun, name: String, swaps: Bool) -> [GPUCheckResult] {
        let s = run.stats
        let differing = run.differences(from: reference)
        let divergences = differing.prefix(4).map {
            "request \($0) from token \(run.firstDivergence(of: $0, from: reference).map(String.init) ?? "-")"
        }
        var results = [
            GPUCheckResult(
                name: "\(name): requests whose tokens differ from the unstarved run's or that did not finish, of \(promptCount)"
                    + (divergences.isEmpty ? "" : " (" + divergences.joined(separator: ", ") + ")"),
                error: Double(differing.count), tolerance: 0)
        ]
        if swaps {
            results += [
                GPUCheckResult(
                    name: "\(name): \(s.swapOuts) swap-outs, at least \(minimumSwapOuts) wanted (error = too few to starve)",
                    error: s.swapOuts >= minimumSwapOuts ? 0 : 1, tolerance: 0),
                // A swapped sequence whose blocks are still in the device's prefix cache when it
                // resumes takes them from there, so not every swap-out is read back; but nothing
                // is read back that was not written, and swapping must have read something.
                GPUCheckResult(
                    name: "\(name): swap-ins beyond the swap-outs, or none at all (\(s.swapOuts) out, \(s.swapIns) in)",
                    error: s.swapIns > s.swapOuts || s.swapIns == 0 ? 1 : 0, tolerance: 0),
                GPUCheckResult(name: "\(name): swaps that failed (a checksum mismatch fails one)", error: Double(s.swapFailures), tolerance: 0),
            ]
        } else {
            results.append(
                GPUCheckResult(
                    name: "\(name): \(s.preemptions) preemptions, at least \(minimumSwapOuts) wanted (error = too few to starve)",
                    error: s.preemptions >= minimumSwapOuts ? 0 : 1, tolerance: 0))
        }
        return results
    }
}
