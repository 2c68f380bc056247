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
        discussion: """
            Every setting is a flag, an environment variable and a YAML key (each option below \
            names all three). Precedence: flag > environment variable > YAML file (--config FILE \
            or HIFC_CONFIG) > default.
            """
    )

    @OptionGroup var settings: ServeSettingsOptions

    func run() async throws {
        MallocTuning.keepFreedBlocksMapped()
        let configuration: ServerConfiguration
        do {
            configuration = try ConfigurationLoader.load(flags: settings.given, configPath: settings.config)
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
        defer { Self.shutDown(stack, logger: logger) }
        let flash = stack.flashStore.map { _ in configuration.effectiveFlashPaths.joined(separator: ", ") } ?? "off"
        logger.info(
            "model \(stack.routes.servedModelName) (\(stack.model.directory)), device \(configuration.device) (\(stack.model.model.backend.name)), KV budget \(configuration.kvBudget), context \(stack.engine.maxContextTokens) tokens, preemption \(configuration.preemption.rawValue), flash \(flash)"
        )
        let app = stack.routes.application(
            address: .hostname(configuration.host, port: configuration.port), eventLoopThreads: configuration.device == .cpu ? 1 : nil
        ) {
            logger.info(
                "listening on http://\(configuration.host):\(configuration.port) (POST /v1/completions, /v1/chat/completions; GET /v1/models, /health, /metrics)"
            )
        }
        try await app.runService()
        logger.info("stop signal received: the HTTP server stopped accepting connections and answered the requests in flight")
    }

    /// Stops the engine and closes the flash store, saying what was left and what was saved.
    static func shutDown(_ stack: ServingStack, logger: Logger) {
        let stats = stack.engine.stats()
        let unfinished = stats.waiting + stats.running + stats.swapped
        logger.info("stopping the engine: \(stats.finishedRequests) requests served, \(unfinished) unfinished generations stopped")
        stack.shutdown()
        if let store = stack.flashStore {
            let regions = store.stats.paths.map { "\($0.regionFile) (\($0.liveSlots) cached blocks kept)" }
            logger.info("flash state saved: wear record written and region closed: \(regions.joined(separator: ", "))")
        }
        logger.info("hifc serve stopped")
    }
}
