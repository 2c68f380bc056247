import Foundation
import Logging
import Models

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

    /// Removes `<data-dir>/models/*.partial-<pid>` left by a first start that was killed while
    /// writing its model (the pid no longer runs); one of a start running now is left alone.
    public static func removeStalePartials(dataDirectory: String, logger: Logger) {
        let models = dataDirectory + "/models"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: models) else { return }
        for name in names {
            guard let marker = name.range(of: ".partial-", options: .backwards), let pid = Int32(name[marker.upperBound...]) else { continue }
            // kill(pid, 0) fails with ESRCH only when no such process exists.
            guard pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            do {
                try FileManager.default.removeItem(atPath: models + "/" + name)
                logger.info("removed \(models)/\(name), left by a start that was interrupted")
            } catch {
                logger.warning("cannot remove \(models)/\(name), left by an interrupted start: \(error.localizedDescription)")
            }
        }
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
