import Backend
import Engine
import FlashStore
import Foundation
import HiFCChecks
import HiFCCore
import Models
import SynthModels
import XCTest

/// A tiny synthetic model on the CPU backend, written once for all engine tests, and helpers to
/// run a set of requests through an `EngineCore` to the end.
enum EngineFixture {
    /// Everything the engine tests write (the model, every flash region they make), removed when
    /// the test process exits: a flash region preallocates its whole capacity, and hundreds of
    /// them left behind fill a disk.
    static let scratch: String = {
        let root = NSTemporaryDirectory() + "hifc-engine-tests-\(getpid())"
        try? FileManager.default.removeItem(atPath: root)
        try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "hifc-engine-tests-\(getpid())") }
        return root
    }()
    static let directory = scratch + "/model"
    static let loaded: LoadedModel = {
        try! SynthModel(architecture: .llama, preset: .tiny, dtype: .float32, seed: 11).write(to: directory)
        return try! LoadedModel(directory: directory, backend: CPUBackend())
    }()

    /// The configuration of the engine tests: `blocks` KV blocks of 16 tokens, 8 sequences.
    static func configuration(
        blocks: Int, mode: PreemptionMode, maxStepTokens: Int = 48, prefixCaching: Bool = false,
        prefixCacheWrite: PrefixWritePolicy = .onEvict
    ) -> EngineConfiguration {
        EngineConfiguration(
            kvBudget: .blocks(blocks), blockTokens: 16, maxStepTokens: maxStepTokens, maxRunning: 8,
            preemption: mode, prefetchDepth: 2, hostSwapCapacity: .mib(64), prefixCaching: prefixCaching,
            prefixCacheWrite: prefixCacheWrite)
    }

    /// Runs greedy requests for `prompts` (each generating `maxTokens`) through an engine with
    /// `blocks` KV blocks of 16 tokens, to the end.
    static func run(
        _ prompts: [[Int]], maxTokens: Int, blocks: Int, mode: PreemptionMode,
        flashTier: (any KVTierStore)? = nil, maxStepTokens: Int = 48, prefixCaching: Bool = false
    ) throws -> GreedyRun {
        let configuration = configuration(blocks: blocks, mode: mode, maxStepTokens: maxStepTokens, prefixCaching: prefixCaching)
        let core = try EngineCore(loaded: loaded, configuration: configuration, flashTier: flashTier)
        return try GreedyRun.run(prompts, maxTokens: maxTokens, through: core)
    }

    /// A flash store in `path` (a fresh directory when nil).
    static func flashStore(
        capacity: ByteSize = .mib(64), segment: ByteSize = .mib(1), faults: (any IOFaultInjector)? = nil, path: String? = nil,
        shared: Bool = false
    ) throws -> FlashStore {
        let path = path ?? scratch + "/flash-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        var configuration = FlashStoreConfiguration(paths: [path], capacityPerPath: capacity, segmentSize: segment)
        configuration.sharedDirectory = shared
        return try FlashStore(configuration: configuration, faultInjector: faults)
    }
}
