import ArgumentParser
import Backend
import CPUKernels
import CUDA
import Foundation
import HiFCBench
import HiFCChecks
import HiFCCore
import Models
import Server
import SynthModels

/// `hifc check`: self-checks of the parts that need special hardware.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Self-checks of hardware-dependent parts.",
        subcommands: [CheckGPUCommand.self, CheckCPUKernelsCommand.self]
    )
}

/// `hifc check cpu-kernels`: the CPU backend's quantized products on this CPU's AVX-512 and AMX
/// kernels and its attention on every vector instruction set, against the portable ones, with
/// timings and whether AMX was found and taken; exits non-zero when a result is off or AMX was
/// found but not taken.
struct CheckCPUKernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cpu-kernels",
        abstract: "Check and time the quantized CPU products (AVX-512, AMX) and attention against the portable kernels, and time the thread pool."
    )

    @Option(help: "Threads of the timed runs (each product is also timed on one thread); default: the physical cores.")
    var threads: Int?

    @Option(help: "Timed runs per product (the best is reported).")
    var repetitions: Int = 5

    func run() throws {
        // As in the commands that run a model: each attention call's scratch is then reused heap
        // memory, not fresh pages that every timed run faults in again.
        MallocTuning.keepFreedBlocksMapped()
        for line in CPUKernelCheck.environmentLines() { print(line) }
        fflush(nil)
        let check = CPUKernelCheck(threads: threads ?? CPUThreadPool.physicalCores, repetitions: repetitions)
        let results = check.run {
            print($0)
            fflush(nil)  // each line as it comes, through a pipe too
        }
        let attention = try CPUAttentionCheck(threads: check.threads, repetitions: repetitions).run {
            print($0)
            fflush(nil)
        }
        _ = CPUPoolTiming(threads: check.threads).run {
            print($0)
            fflush(nil)
        }
        let failed = results.filter { !$0.passed }.count + attention.filter { !$0.passed }.count
        let amxExpected = results.filter { $0.isa == "amx" && $0.expectsAMX }
        let amxTaken = amxExpected.filter(\.usedAMX).count
        if !amxExpected.isEmpty { print("AMX tiles taken by \(amxTaken) of \(amxExpected.count) products large enough for them") }
        print(failed == 0 && amxTaken == amxExpected.count ? "cpu-kernels: PASS" : "cpu-kernels: FAIL (\(failed) products or attention steps off)")
        if failed > 0 || amxTaken != amxExpected.count { throw ExitCode(1) }
    }
}

/// `hifc check gpu`: every CUDA kernel and the cuBLAS product against float64 references on
/// fresh random inputs, then (optionally) swap losslessness and timings, the engine's swaps
/// under a starved KV budget, and synthetic models' logits; exits non-zero when any check fails.
struct CheckGPUCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu",
        abstract: "Run every CUDA kernel against a float64 host reference on random inputs."
    )

    @Option(help: "The GPU to check (cuda or cuda:N).")
    var device: String = "cuda:0"

    @Option(
        help:
            "A directory on the flash device: probe cuFile there, check swaps through a file in it, and run the engine under a starved KV budget swapping there."
    )
    var swapDir: String?

    @Option(help: "KV blocks (8 MiB, an 8B Llama's 64-token block) in the swap check.")
    var swapBlocks: Int = 128

    @Flag(help: "Also time GEMMs, attention and copies against the device's ceilings.")
    var bench = false

    @Option(
        help:
            "Synthetic models whose logits to compare with the CPU backend (comma-separated PRESET for Llama or ARCH:PRESET, ARCH one of llama, mistral, qwen2, qwen3, gemma3 and PRESET one of tiny, small, 1b, 8b; Mistral and Qwen2 get a 16-token sliding window; empty for none)."
    )
    var models: String = "tiny"

    @Option(
        name: .customLong("fp8-models"),
        help:
            "Synthetic models (as --models) run with fp8 KV: their logits on the GPU against the CPU backend's fp8 KV and against bf16 KV on the GPU, beside fp8 against f32 on the CPU (empty for none)."
    )
    var fp8Models: String = ""

    @Option(
        name: .customLong("graph-models"),
        help:
            "Synthetic models (as --models) whose decode steps run through CUDA graphs against the same steps launched kernel by kernel, over several batch sizes and contexts (empty for none)."
    )
    var graphModels: String = "tiny"

    @Option(help: "Where the synthetic models are written (removed afterwards).")
    var workDir: String = NSTemporaryDirectory()

    @Flag(help: "Keep the synthetic models with their prompt and prefill logits, for a PyTorch comparison.")
    var keepModels = false

    func run() async throws {
        guard case .cuda(let ordinal) = DeviceSelection(parsing: device) else {
            throw ValidationError("--device \(device): expected cuda or cuda:N")
        }
        for line in CUDAProbe.run(flashPath: swapDir).lines { print(line) }
        let gpu = try CUDADevice(ordinal: ordinal)
        let started = Date()
        let check = try GPUSelfCheck(device: gpu)
        print("kernels compiled and loaded in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        var results = check.runAll()
        for r in results { print(r) }
        if let swapDir {
            let layout = KVBlockLayout(layers: 32, kvHeads: 8, headDim: 128, blockTokens: 64, dtype: .bfloat16)
            let (swap, timings) = try await GPUSwapCheck(kernels: check.kernels).run(directory: swapDir, layout: layout, blocks: swapBlocks)
            for r in swap { print(r) }
            for t in timings { print(t) }
            results += swap
        }
        func parse(_ list: String, _ flag: String) throws -> [(ModelArchitecture, SynthModel.Preset)] {
            try list.split(separator: ",").map { name in
                guard let p = GPUModelCheck.parse(String(name)) else { throw ValidationError("\(flag): unknown model \(name)") }
                return p
            }
        }
        let presets = try parse(models, "--models")
        let fp8Presets = try parse(fp8Models, "--fp8-models")
        let graphPresets = try parse(graphModels, "--graph-models")
        let needsBackend = swapDir != nil || !presets.isEmpty || !fp8Presets.isEmpty || !graphPresets.isEmpty
        let backend = needsBackend ? try CUDABackend(ordinal: gpu.info.ordinal) : nil
        if let swapDir, let backend {
            let engine = try GPUEngineSwapCheck(backend: backend).run(flashDirectory: swapDir, workDirectory: workDir)
            for r in engine { print(r) }
            results += engine
        }
        if let backend {
            for (architecture, preset) in presets {
                let model = try GPUModelCheck(cuda: backend).run(preset: preset, architecture: architecture, workDirectory: workDir, keep: keepModels)
                for r in model { print(r) }
                results += model
            }
            for (architecture, preset) in fp8Presets {
                let model = try GPUKVDTypeCheck(cuda: backend).run(preset: preset, architecture: architecture, workDirectory: workDir)
                for r in model { print(r) }
                results += model
            }
            for (architecture, preset) in graphPresets {
                let graphs = try GPUStepGraphCheck(cuda: backend).run(preset: preset, architecture: architecture, workDirectory: workDir)
                for r in graphs { print(r) }
                results += graphs
            }
        }
        if bench {
            for line in try GPUBenchmarks(kernels: check.kernels, blas: check.blas).run() { print(line) }
        }
        let failed = results.filter { !$0.passed }.count
        print("\(results.count - failed) of \(results.count) GPU checks passed")
        if failed > 0 { throw ExitCode(1) }
    }
}
