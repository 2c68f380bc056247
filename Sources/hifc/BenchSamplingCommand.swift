import ArgumentParser
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

    func run() throws {
        guard vocabulary >= 2, tokens >= 1, rows >= 0 else {
            throw ValidationError("--vocabulary must be at least 2, --tokens positive and --rows not negative")
        }
        print("sampling on the host, \(vocabulary) logits, \(tokens) tokens a case:")
        for (name, milliseconds) in SamplingBenchmark(vocabulary: vocabulary, tokens: tokens, rows: rows).run() {
            let unit = name.contains("rows a step") ? "ms a step" : "ms a token"
            print("  \(name.padding(toLength: 40, withPad: " ", startingAt: 0)) \(String(format: "%8.3f", milliseconds)) \(unit)")
        }
    }
}
