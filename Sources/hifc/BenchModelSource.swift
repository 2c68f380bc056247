import ArgumentParser
import Backend
import Foundation
import Models
import SynthModels

/// The model a benchmark runs: a model directory, or `synth:PRESET` for a synthetic Llama written
/// to a temporary directory first (reused by later runs).
enum BenchModelSource {
    /// Loads `spec` onto `device`'s backend. A synthetic model is written with room for at least
    /// `context` positions (its presets' own limits are short), so long-context benchmarks fit.
    /// `cpuThreads` gives a CPU model its own pool of that many threads (the replicas of a
    /// data-parallel run split the cores); nil: the process's shared pool.
    static func load(_ spec: String, device: String, context: Int = 0, cpuThreads: Int? = nil) throws -> LoadedModel {
        var directory = spec
        if spec.hasPrefix("synth:") {
            guard let preset = SynthModel.Preset(rawValue: String(spec.dropFirst(6))) else {
                throw ValidationError("unknown synthetic model '\(spec)'; use synth:tiny, synth:small, synth:1b or synth:8b")
            }
            var synth = SynthModel(architecture: .llama, preset: preset)
            synth.config.maxPositions = max(synth.config.maxPositions, context)
            directory = NSTemporaryDirectory() + "hifc-synth-\(preset.rawValue)-\(synth.config.maxPositions)"
            if !FileManager.default.fileExists(atPath: directory + "/model.safetensors") { try synth.write(to: directory) }
        }
        return try LoadedModel(
            directory: directory,
            backend: device == "cpu" ? CPUBackend(pool: cpuThreads.map { CPUThreadPool(threads: $0) } ?? .shared) : try BackendChoice.make(device))
    }
}
