import ArgumentParser
import CUDA
import Foundation
import Hummingbird
import Logging
import Server

/// `hifc serve`: the OpenAI-compatible HTTP server over the engine.
///
/// Settings come from flags, `HIFC_*` variables and a YAML file through one schema
/// (`ConfigurationSchema`); with none at all it serves the embedded default: a synthetic model on
/// the CPU backend, a small KV budget and a flash region under `./hifc-data`.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model over the OpenAI API (completions, chat completions, models, health, metrics).",
        discussion: ConfigurationSchema.helpText
    )

    @Argument(parsing: .allUnrecognized, help: .hidden)
    var settings: [String] = []

    func run() async throws {
        MallocTuning.keepFreedBlocksMapped()
        let configuration: ServerConfiguration
        do {
            configuration = try ConfigurationLoader.load(arguments: settings)
        } catch {
            throw ValidationError(error.description)
        }
        let logger = Logger(label: "hifc.serve")
        let stack: ServingStack
        do {
            stack = try ServingStack(
                configuration: configuration, logger: logger,
                backend: { try BackendChoice.make($0.description, logger: logger) },
                deviceSwapper: { pool, store in (pool as? CUDAKVCachePool)?.makeFlashSwapper(store: store) })
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        defer { stack.shutdown() }
        let first = stack.replicas[0]
        let flash =
            first.flashStore.map { _ in
                configuration.effectiveFlashPaths.joined(separator: ", ") + " (\(configuration.flashPlacement.rawValue) placement)"
            } ?? "off"
        let devices = stack.replicas.map(\.device.description).joined(separator: ", ")
        logger.info(
            "model \(stack.routes.servedModelName) (\(first.model.directory)), \(stack.replicas.count == 1 ? "device" : "\(stack.replicas.count) replicas on") \(devices), KV budget \(configuration.kvBudget) each, context \(stack.service.maxContextTokens) tokens, preemption \(configuration.preemption.rawValue), flash \(flash)"
        )
        let app = stack.routes.application(address: .hostname(configuration.host, port: configuration.port)) {
            logger.info(
                "listening on http://\(configuration.host):\(configuration.port) (POST /v1/completions, /v1/chat/completions; GET /v1/models, /health, /metrics)"
            )
        }
        try await app.runService()
    }
}
