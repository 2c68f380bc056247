import ArgumentParser

/// The `hifc` command: serve, generate, pull, bench, inspect, doctor.
@main
struct HiFC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hifc",
        abstract: "An LLM inference server whose KV cache overflows from GPU memory to flash.",
        subcommands: [
            ServeCommand.self,
            GenerateCommand.self,
            PullCommand.self,
            SynthModelCommand.self,
            BenchCommand.self,
            InspectCommand.self,
            DoctorCommand.self,
            CheckCommand.self,
        ]
    )
}
