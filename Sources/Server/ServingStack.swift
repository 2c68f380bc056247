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

/// One engine of the server (of several with `--data-parallel`): its device, its copy of the
/// model, its flash store and the engine.
public struct EngineReplica: Sendable {
    /// Its index: the `replica` label of its metrics.
    public let index: Int
    /// The device it computes on.
    public let device: DeviceSelection
    /// The model on that device.
    public let model: LoadedModel
    /// Its flash store: its own region file on each flash path (nil when preemption never writes
    /// to flash).
    public let flashStore: FlashStore?
    /// The engine.
    public let engine: LLMEngine
}

/// Everything `hifc serve` runs, built from one `ServerConfiguration`: the model on its backend,
/// the flash store and the engine, once per replica (`--data-parallel N`, behind a
/// `DataParallelService` when N > 1), and the HTTP routes.
public final class ServingStack: Sendable {
    /// The configuration it was built from.
    public let configuration: ServerConfiguration
    /// The engine replicas, in order.
    public let replicas: [EngineReplica]
    /// What the routes generate with: the one engine, or the router over the replicas.
    public let service: any GenerationService
    /// The HTTP API over the service.
    public let routes: OpenAIRoutes

    /// Loads (or, with no `model`, first writes) the model, opens the flash stores and starts the
    /// engines: one per replica, replica `i` on the CPU or on GPU `cuda:(N + i)` for `--device cuda:N`.
    /// `backend` makes the backend for a device other than the CPU (the command line passes the
    /// CUDA one; without it such a device is refused); `deviceSwapper` may give an engine a
    /// backend's direct device<->flash swapper for its KV pool and flash store.
    public init(
        configuration: ServerConfiguration, logger: Logger,
        backend: ((DeviceSelection) throws -> any ComputeBackend)? = nil,
        deviceSwapper: ((any KVCachePool, FlashStore) throws -> (any DeviceKVSwapper)?)? = nil
    ) throws {
        ServerMetrics.bootstrap()  // before the engines make their instruments
        self.configuration = configuration
        // Every device is opened before anything is written, so a bad one leaves nothing behind.
        let backends = try (0..<configuration.dataParallel).map { index in
            let device = configuration.device(ofReplica: index)
            if device == .cpu { return CPUBackend() as any ComputeBackend }
            guard let backend else {
                throw ServingStackError.deviceUnavailable(device, reason: "serving runs on the CPU backend in this build; use --device cpu")
            }
            do { return try backend(device) } catch { throw ServingStackError.deviceUnavailable(device, reason: "\(error)") }
        }
        let directory = try configuration.model ?? DefaultModel.provision(dataDirectory: configuration.dataDirectory, logger: logger)
        // Flash holds swapped sequences and the prefix cache's second level.
        let usesFlash = configuration.preemption == .swapFlash || configuration.preemption == .auto || configuration.prefixCache
        if usesFlash {
            for path in configuration.effectiveFlashPaths {
                if path.hasPrefix("/dev/") {
                    guard configuration.dataParallel == 1 else {
                        throw ServingStackError.flashPathUnusable(
                            path,
                            reason:
                                "a block device holds one region, and --data-parallel \(configuration.dataParallel) needs one per replica; give directories"
                        )
                    }
                    continue
                }
                do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                    throw ServingStackError.flashPathUnusable(path, reason: error.localizedDescription)
                }
            }
        }
        var replicas: [EngineReplica] = []
        do {
            for (index, compute) in backends.enumerated() {
                replicas.append(
                    try Self.startReplica(
                        index, on: compute, configuration: configuration, modelDirectory: directory, usesFlash: usesFlash, logger: logger,
                        deviceSwapper: deviceSwapper))
            }
        } catch {
            for replica in replicas {
                replica.engine.shutdown()
                replica.flashStore?.close()
            }
            throw error
        }
        self.replicas = replicas
        service =
            replicas.count == 1
            ? replicas[0].engine
            : DataParallelService(
                // Prefix affinity pays only where the engines keep prefixes (the prefix cache).
                replicas: replicas.map(\.engine), blockTokens: configuration.blockSize, prefixAffinity: configuration.prefixCache)
        let stores = replicas.compactMap(\.flashStore)
        routes = OpenAIRoutes(
            service: service, servedModelName: configuration.servedModelName, maxBodyBytes: Int(configuration.maxBodySize.bytes),
            logger: logger, beforeMetricsRender: { stores.forEach(Self.recordFlashGauges) })
    }

    /// Makes replica `index` on `compute`: its model, flash store and engine.
    private static func startReplica(
        _ index: Int, on compute: any ComputeBackend, configuration: ServerConfiguration, modelDirectory: String, usesFlash: Bool,
        logger: Logger, deviceSwapper: ((any KVCachePool, FlashStore) throws -> (any DeviceKVSwapper)?)?
    ) throws -> EngineReplica {
        let model = try LoadedModel(directory: modelDirectory, backend: compute, logger: logger)
        let flashStore = usesFlash ? try FlashStore(configuration: configuration.flashStoreConfiguration(replica: index)) : nil
        do {
            let engine = try LLMEngine(
                loaded: model, configuration: configuration.engineConfiguration(replica: index),
                flashTier: flashStore.map { FlashTier(store: $0) },
                deviceSwapper: { pool in try flashStore.flatMap { try deviceSwapper?(pool, $0) } })
            return EngineReplica(
                index: index, device: configuration.device(ofReplica: index), model: model, flashStore: flashStore, engine: engine)
        } catch {
            flashStore?.close()
            throw error
        }
    }

    /// The flash store's wear figures as gauges, refreshed at each scrape of `/metrics`.
    private static func recordFlashGauges(_ store: FlashStore) {
        for path in store.stats.paths {
            let dimensions = [("path", path.path), ("region", path.regionFile)]
            Gauge(label: "hifc_flash_live_bytes", dimensions: dimensions).record(path.liveBytes)
            Gauge(label: "hifc_flash_bytes_written_since_creation", dimensions: dimensions).record(path.bytesWrittenSinceCreation)
            Gauge(label: "hifc_flash_write_bytes_per_day", dimensions: dimensions).record(path.bytesPerDay)
            if let years = path.lifetimeYears, years.isFinite {
                Gauge(label: "hifc_flash_predicted_lifetime_years", dimensions: dimensions).record(years)
            }
        }
    }

    /// Stops the engines and closes the flash stores.
    public func shutdown() {
        for replica in replicas {
            replica.engine.shutdown()
            replica.flashStore?.close()
        }
    }
}

extension ServerConfiguration {
    /// The device of replica `index`: the CPU, or the `index`-th GPU from the configured one.
    public func device(ofReplica index: Int) -> DeviceSelection {
        switch device {
        case .cpu: return .cpu
        case .cuda(let first): return .cuda(first + index)
        }
    }

    /// Replica `index`'s engine's share of the settings.
    public func engineConfiguration(replica index: Int = 0) -> EngineConfiguration {
        EngineConfiguration(
            kvBudget: kvBudget, blockTokens: blockSize, maxStepTokens: maxBatchTokens, maxRunning: maxRunning,
            preemption: preemption, prefetchDepth: prefetchDepth, hostSwapCapacity: dramSwap,
            flashDailyWriteBudget: flashDailyWriteBudget, modelID: servedModelName, prefixCaching: prefixCache,
            prefixCacheWrite: prefixCacheWrite, prefixCacheFlashSize: prefixCacheFlashSize.map { ByteSize($0.bytes / Int64(dataParallel)) },
            replica: index)
    }

    /// Replica `index`'s flash store's share of the settings. With one replica, its region is
    /// `hifc-flash.region` on each path, of `flashCapacity`; with N, replica `i` has its own
    /// region file `hifc-flash-<i>.region` on every path, of `flashCapacity / N`, so the
    /// replicas sharing a path (N:1) split its pSLC area and never share a region. Affinity
    /// placement sends replica `i` to path `gpu % paths` (1:1 when there are as many paths as
    /// replicas); stripe and swarm use every path (N:N).
    public func flashStoreConfiguration(replica index: Int = 0) -> FlashStoreConfiguration {
        let gpu: Int
        if case .cuda(let device) = device(ofReplica: index) { gpu = device } else { gpu = index }
        return FlashStoreConfiguration(
            paths: effectiveFlashPaths, capacityPerPath: ByteSize(flashCapacity.bytes / Int64(dataParallel)), segmentSize: flashSegmentSize,
            placement: flashPlacement, gpuIndex: gpu, enduranceTBW: flashTBW, dailyWriteBudget: flashDailyWriteBudget,
            regionName: dataParallel == 1 ? FlashStoreConfiguration.regionFileName : "hifc-flash-\(index).region",
            replicationBudget: flashReplicationBudget.map { ByteSize($0.bytes / Int64(dataParallel)) })
    }
}
