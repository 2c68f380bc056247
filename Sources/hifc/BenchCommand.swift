import ArgumentParser

/// `hifc bench`: the benchmarks, one subcommand each (`bench flash`, `bench model`, ...).
/// Results worth keeping go to bench/results/ with their command, machine and date.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run a benchmark and print its figures.",
        subcommands: [
            BenchFlashCommand.self, BenchModelCommand.self, BenchPlacementCommand.self, BenchServeCommand.self, BenchSwapCommand.self,
            BenchPrefixCommand.self, BenchKVDTypeCommand.self, BenchSamplingCommand.self,
        ]
    )
}
