import ArgumentParser
import Foundation
import HiFCBench

/// `hifc bench sampling`: the host's time to choose a token, per kind of request (`SamplingBenchmark`).
struct BenchSamplingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sampling",
        abstract: "Time choosing one token from a vocabulary's logits on the host, for each kind of sampling request.")

    @Option(help: "Logits a token (Llama 3: 128256; SmolLM2: 49152; Gemma 3: 262144).") var vocabulary: Int = 128_256
    @Option(help: "Tokens chosen per case.") var tokens: Int = 200
    @Option(help: "Also time a step of this many top-p sequences, one after another and on several threads (0: not).")
    var rows: Int = 0
    @Option(
        help:
            "A file of a model's logits, little-endian f32 (`hifc generate --logits FILE`), to sample from instead of synthetic ones; its length sets the vocabulary."
    )
    var logits: String?

    func run() throws {
        guard vocabulary >= 2, tokens >= 1, rows >= 0 else {
            throw ValidationError("--vocabulary must be at least 2, --tokens positive and --rows not negative")
        }
        let modelLogits = try logits.map(Self.readLogits)
        let bench = SamplingBenchmark(vocabulary: vocabulary, tokens: tokens, rows: rows, modelLogits: modelLogits)
        print("sampling on the host, \(bench.vocabulary) logits (\(logits ?? "synthetic")), \(tokens) tokens a case:")
        for (name, milliseconds) in bench.run() {
            let unit = name.contains("rows a step") ? "ms a step" : "ms a token"
            print("  \(name.padding(toLength: 40, withPad: " ", startingAt: 0)) \(String(format: "%8.3f", milliseconds)) \(unit)")
        }
    }

    /// The logits in `path`: little-endian f32, at least two.
    static func readLogits(_ path: String) throws -> [Float] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("--logits: cannot read \(path)") }
        guard data.count >= 8, data.count % 4 == 0 else {
            throw ValidationError("--logits: \(path) has \(data.count) bytes, not a whole number of f32 logits (at least two)")
        }
        return data.withUnsafeBytes { bytes in
            (0..<data.count / 4).map { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }
}
