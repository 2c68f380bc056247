import Backend
import Foundation
import HiFCCore
import Logging
import Models
import Synchronization

/// The engine as the server and the CLI use it: requests in, an `AsyncThrowingStream` of events
/// out per request, the step loop (`EngineCore`) running on its own thread.
///
/// Cancelling the task that consumes a request's stream aborts the request and frees its KV
/// blocks. `stats()` returns a snapshot of the counters; the same figures go to swift-metrics
/// under `hifc_` names.
public final class LLMEngine: GenerationService {
    public let modelID: String
    public let maxContextTokens: Int
    private let loaded: LoadedModel
    private let inbox = Inbox<EngineCommand>()
    private let commands: CommandPost
    /// Signalled once when the step thread has returned.
    private let stopped = DispatchSemaphore(value: 0)
    private let latestStats = LatestStats()
    private let nextID = Atomic<UInt64>(1)
    private let logger = Logger(label: "hifc.engine")

    /// Starts an engine for `loaded` and its step thread. The KV pool is sized by
    /// `configuration.kvBudget`; `flashTier` (a `FlashTier` over the `FlashStore`) is needed by
    /// `swap-flash` and `auto`; `deviceSwapper` may supply a backend's direct device<->flash path
    /// for it (see `EngineCore.init`). `modelID` defaults to the model directory's name.
    public init(
        loaded: LoadedModel, configuration: EngineConfiguration, flashTier: (any KVTierStore)? = nil,
        deviceSwapper: ((any KVCachePool) throws -> (any DeviceKVSwapper)?)? = nil
    ) throws {
        let core = try EngineCore(loaded: loaded, configuration: configuration, flashTier: flashTier, deviceSwapper: deviceSwapper)
        modelID = configuration.modelID ?? loaded.name
        maxContextTokens = core.maxSequenceTokens
        commands = CommandPost(inbox: inbox, waker: core.waker)
        self.loaded = loaded
        // The step thread takes the only lasting reference to the core, so that the core, and
        // with it the KV pool, the swappers and their handles on the flash store, are released
        // on that thread before `shutdown` returns: never later, under a caller that closes the
        // store or lets the process exit (a GPU pool or a cuFile handle released by this thread
        // while the CUDA driver and cuFile tear themselves down at exit can crash the process).
        let handoff = CoreHandoff(core)
        let inbox = self.inbox
        let stats = latestStats
        let logger = self.logger
        let stopped = self.stopped
        let thread = Thread {
            StepLoop(core: handoff.take(), inbox: inbox, stats: stats, logger: logger).run()
            stopped.signal()
        }
        thread.name = "hifc-engine"
        thread.stackSize = 8 << 20
        thread.start()
    }

    deinit { commands.post(.shutdown) }

    public func encode(_ text: String) throws -> [Int] { loaded.tokenizer.encode(text) }

    public func decode(_ tokens: [Int]) -> String { loaded.tokenizer.decode(tokens, skipSpecialTokens: false) }

    public func encodeChat(_ messages: [ChatMessage]) throws -> [Int] {
        loaded.encodeChat(messages.map { ChatTurn(role: $0.role, content: $0.content) })
    }

    public func generate(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerationEvent.self, throwing: Error.self)
        let id = nextID.add(1, ordering: .relaxed).oldValue
        let commands = self.commands
        continuation.onTermination = { termination in
            guard case .cancelled = termination else { return }
            commands.post(.abort(id))
        }
        commands.post(.add(id, request, continuation))
        return stream
    }

    /// A snapshot of the engine's counters after its latest step.
    public func stats() -> EngineStats { latestStats.value.withLock { $0 } }

    /// Forgets the device's cached prefixes and, with `flash`, the prefix blocks this instance
    /// keeps on flash (vLLM's `POST /reset_prefix_cache`). Requests running keep their KV.
    /// Returns the numbers of device and flash blocks forgotten.
    public func resetPrefixCache(flash: Bool) async -> (device: Int, flash: Int) {
        await withCheckedContinuation { continuation in
            commands.post(.resetPrefixCache(flash: flash, continuation))
        }
    }

    /// Stops the step loop and returns once it has stopped, its transfers in flight have finished,
    /// the device's cached prefixes are saved to flash and the engine's KV pool and swappers are
    /// released (so the flash store may be closed and the process may exit next); requests still
    /// running end with `GenerationError.engineStopped`. Later calls return at once.
    public func shutdown() {
        commands.post(.shutdown)
        stopped.wait()
        stopped.signal()
    }
}

/// Hands the engine's core to the step thread, keeping no reference once taken.
private final class CoreHandoff: @unchecked Sendable {
    // Written once by the creating thread, taken once by the step thread that it then starts.
    private var core: EngineCore?

    init(_ core: EngineCore) { self.core = core }

    func take() -> EngineCore {
        defer { core = nil }
        return core!
    }
}

/// The counters after the latest step, written by the step thread, read by anyone.
final class LatestStats: Sendable {
    let value = Mutex(EngineStats())
}

/// What the public side asks of the step loop.
enum EngineCommand: Sendable {
    case add(SequenceID, GenerationRequest, AsyncThrowingStream<GenerationEvent, Error>.Continuation)
    case abort(SequenceID)
    case resetPrefixCache(flash: Bool, CheckedContinuation<(device: Int, flash: Int), Never>)
    case shutdown
}

/// Hands the step thread a command, which it takes before its next step, and wakes it from a
/// wait for transfers (`StepWaker`) so that it takes it now.
private struct CommandPost: Sendable {
    let inbox: Inbox<EngineCommand>
    let waker: StepWaker

    func post(_ command: EngineCommand) {
        inbox.post(command)
        waker.wake()
    }
}

/// The step thread: applies commands, runs `EngineCore.step`, and sends the events to the
/// requests' streams through `EventDelivery`, which feeds them on its own thread.
private final class StepLoop: @unchecked Sendable {
    // Touched only on the step thread.
    private let core: EngineCore
    /// Requests whose streams are open.
    private var open: Set<SequenceID> = []
    private let delivery = EventDelivery()
    private let inbox: Inbox<EngineCommand>
    private let stats: LatestStats
    private let logger: Logger

    init(core: EngineCore, inbox: Inbox<EngineCommand>, stats: LatestStats, logger: Logger) {
        self.core = core
        self.inbox = inbox
        self.stats = stats
        self.logger = logger
    }

    func run() {
        while true {
            // The step thread blocks here only while it has nothing to run.
            for command in core.isIdle ? inbox.wait(timeout: nil) : inbox.drain() {
                switch command {
                case .add(let id, let request, let continuation):
                    do {
                        try core.add(id: id, request)
                        open.insert(id)
                        delivery.open(id, continuation)
                    } catch {
                        continuation.finish(throwing: error)
                    }
                case .abort(let id):
                    let last = core.abort(id: id)
                    if open.remove(id) != nil { delivery.end(id, last: last) }
                case .resetPrefixCache(let flash, let reply):
                    reply.resume(returning: core.resetPrefixCache(flash: flash))
                case .shutdown:
                    stopAll(because: "the engine was shut down")
                    core.finishTransfersInFlight()
                    core.saveCachedPrefixes()
                    publish()
                    delivery.stop()
                    return
                }
            }
            guard !core.isIdle else {
                publish()
                continue
            }
            do {
                let events = try core.step()
                // Published before the events, so a consumer that sees its request finish also
                // sees it counted.
                publish()
                for (id, event) in events {
                    if case .finished = event { open.remove(id) }
                }
                delivery.deliver(events)
            } catch {
                logger.error("a step failed, every running request is stopped: \(error)")
                stopAll(because: "a step failed: \(error)")
                publish()
            }
        }
    }

    private func publish() {
        let snapshot = core.snapshot()
        stats.value.withLock { $0 = snapshot }
    }

    private func stopAll(because reason: String) {
        for id in open { core.abort(id: id) }
        open = []
        delivery.failAll(GenerationError.engineStopped(reason))
    }
}
