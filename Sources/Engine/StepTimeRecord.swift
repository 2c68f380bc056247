import Foundation
import HiFCCore

/// The step-time model an engine learned, kept in a file beside its flash region
/// (`hifc-step-time.json`, one entry per prefix-cache namespace: model, KV layout, backend).
///
/// The model prices recomputing a prefix against loading it from flash. A fresh model knows only
/// a guess (2,000 tokens a second), and a restarted server that has flash full of prefixes makes
/// its first decisions before it has run a long prefill: on a fast GPU it loads documents that it
/// would recompute in half the time, and keeps doing so while its steps are only decodes and
/// short chunks, which say little about a long prefill. What the previous run learned is the
/// better start; the model keeps learning from there.
struct StepTimeRecord {
    /// Observed steps below which a model is not worth keeping.
    static let minimumObservations = 8
    let file: URL

    /// The record in `directory`.
    init(directory: String) {
        file = URL(fileURLWithPath: directory).appendingPathComponent("hifc-step-time.json")
    }

    /// The model saved for `namespace`; nil when there is none. Throws when the file exists but
    /// cannot be read or parsed.
    func load(for namespace: PrefixNamespace) throws -> StepTimeModel? {
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        return try entries()[namespace.hex]
    }

    /// Saves `model` for `namespace` beside the other namespaces' models, replacing the file
    /// atomically (a crash leaves the old file or the new one).
    func save(_ model: StepTimeModel, for namespace: PrefixNamespace) throws {
        var all = (try? entries()) ?? [:]
        all[namespace.hex] = model
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(all).write(to: file, options: .atomic)
    }

    private func entries() throws -> [String: StepTimeModel] {
        try JSONDecoder().decode([String: StepTimeModel].self, from: Data(contentsOf: file))
    }
}
