import Foundation
import Logging
import Models
import SynthModels

/// The model `hifc serve` uses when none is given: a synthetic Llama (`SynthModel`, random
/// weights, a working tokenizer and chat template) written under the data directory on first use
/// and reused afterwards. No package this project can install ships a small Llama-family model as
/// safetensors, so the embedded default generates one; its answers are fluent-looking noise.
public enum DefaultModel {
    /// The synthetic model's preset.
    public static let preset = SynthModel.Preset.tiny

    /// Where the synthetic model lives under `dataDirectory`.
    public static func directory(dataDirectory: String) -> String {
        dataDirectory + "/models/synth-llama-\(preset.rawValue)"
    }

    /// The synthetic model's directory, written first if it is not there yet.
    public static func provision(dataDirectory: String, logger: Logger) throws -> String {
        let directory = directory(dataDirectory: dataDirectory)
        if FileManager.default.fileExists(atPath: directory + "/model.safetensors") { return directory }
        logger.info("no --model given: writing a synthetic Llama model (preset \(preset.rawValue), random weights) to \(directory)")
        // Written aside and renamed, so that an interrupted first run leaves no half model behind.
        let staging = directory + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        try SynthModel(architecture: .llama, preset: preset).write(to: staging)
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.moveItem(atPath: staging, toPath: directory)
        return directory
    }
}
