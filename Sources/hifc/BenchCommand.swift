import ArgumentParser

/// `hifc bench`: the benchmarks, one subcommand each (`bench flash`, `bench swap`, ...).
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run a benchmark and print its figures.",
        subcommands: [BenchFlashCommand.self]
    )
}
