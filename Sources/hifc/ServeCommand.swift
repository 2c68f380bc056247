import ArgumentParser
import Backend
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
        if MallocTuning.keepFreedBlocksMapped() {
            // Lowered during bursts of request bodies or connections, so their memory goes back.
            HeapTrimmer.shared.setSteadyTrimThreshold(Int32(MallocTuning.trimThreshold))
        }
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
                deviceSwapper: { pool, store in (pool as? CUDAKVCachePool)?.makeFlashSwapper(store: store) },
                flashFaults: ChaosFlashFaults.fromEnvironment(logger: logger))
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        defer { Self.shutDown(stack, logger: logger) }
        let first = stack.replicas[0]
        let flash =
            first.flashStore.map { _ in
                configuration.effectiveFlashPaths.joined(separator: ", ") + " (\(configuration.flashPlacement.rawValue) placement)"
            } ?? "off"
        let devices = stack.replicas.map { "\($0.device) (\($0.model.model.backend.name))" }.joined(separator: ", ")
        logger.info(
            "model \(stack.routes.servedModelName) (\(first.model.directory)), \(stack.replicas.count == 1 ? "device" : "\(stack.replicas.count) replicas on") \(devices), KV budget \(configuration.kvBudget)\(stack.replicas.count == 1 ? "" : " each"), context \(stack.service.maxContextTokens) tokens, preemption \(configuration.preemption.rawValue), flash \(flash)"
        )
        // SIGTERM or SIGINT: graceful shutdown (see `HTTPServerService`); a second one exits at once.
        let signals = ShutdownSignals(logger: logger) { await stack.beginShutdown() }
        let scheme = configuration.tlsCertificate == nil ? "http" : "https"
        try await stack.serve(
            address: .hostname(configuration.host, port: configuration.port),
            eventLoopThreads: stack.replicas[0].model.model.backend is CPUBackend ? 1 : nil
        ) { port in
            logger.info(
                "listening on \(scheme)://\(configuration.host):\(port ?? configuration.port) (POST /v1/completions, /v1/chat/completions; GET /v1/models, /health, /metrics)\(configuration.apiKeys.isEmpty ? "" : "; API key required")"
            )
        }
        withExtendedLifetime(signals) { logger.info("the HTTP server has stopped (no connections left)") }
    }

    /// Stops the engines and closes the flash stores, saying what was left and what was saved.
    static func shutDown(_ stack: ServingStack, logger: Logger) {
        for replica in stack.replicas {
            let stats = replica.engine.stats()
            let unfinished = stats.waiting + stats.running + stats.swapped
            let engine = stack.replicas.count == 1 ? "the engine" : "engine replica \(replica.index)"
            logger.info("stopping \(engine): \(stats.finishedRequests) requests served, \(unfinished) unfinished generations stopped")
        }
        stack.shutdown()
        let regions = stack.replicas.compactMap(\.flashStore).flatMap { store in
            store.stats.paths.map { "\($0.regionFile) (\($0.liveSlots) cached blocks kept)" }
        }
        if !regions.isEmpty {
            logger.info("flash state saved: wear record written and region closed: \(regions.joined(separator: ", "))")
        }
        logger.info("hifc serve stopped")
    }
}
