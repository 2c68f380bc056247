import ArgumentParser

/// `hifc bench`: the benchmark commands, one subcommand per experiment.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks (results go to bench/results/).",
        subcommands: [BenchModelCommand.self])
}
