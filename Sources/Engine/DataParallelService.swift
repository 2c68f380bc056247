import HiFCCore
import Metrics
import Synchronization

/// Several engine replicas (one per device, or per share of the CPU cores) behind one
/// `GenerationService` (`--data-parallel N`): each request goes to the replica that
/// `ReplicaRouter` picks from the work each one holds and, when `prefixAffinity` is on, from which
/// replica recently got the request's leading prompt blocks (a `PrefixAffinityTable`: the router's
/// own memory, no engine is asked).
///
/// The router counts each replica's work itself: a request's prompt tokens until its first output
/// token, and its output tokens still to come, until its stream ends. Cancelling the consumer of a
/// stream cancels the replica's stream, which aborts the request there.
///
/// Metrics: `hifc_router_requests_total`, `hifc_router_prefix_routed_total` (requests sent to a
/// replica that had some of their prefix), `hifc_router_outstanding_requests` and
/// `hifc_router_outstanding_tokens`, each with a `replica` label.
public final class DataParallelService: GenerationService {
    /// The replicas, in order; their index is their `replica` label.
    public let replicas: [any GenerationService]
    public let modelID: String
    public let maxContextTokens: Int
    private let router: ReplicaRouter
    private let state: Mutex<State>
    private let metrics: [ReplicaMetrics]

    private struct State {
        var loads: [ReplicaLoad]
        var routed: [Int]
        var affinity: PrefixAffinityTable?
        var rotation = 0
    }

    private struct ReplicaMetrics: Sendable {
        let requests: Counter
        let prefixRouted: Counter
        let outstandingRequests: Gauge
        let outstandingTokens: Gauge

        init(replica: Int) {
            let dimensions = [("replica", String(replica))]
            requests = Counter(label: "hifc_router_requests_total", dimensions: dimensions)
            prefixRouted = Counter(label: "hifc_router_prefix_routed_total", dimensions: dimensions)
            outstandingRequests = Gauge(label: "hifc_router_outstanding_requests", dimensions: dimensions)
            outstandingTokens = Gauge(label: "hifc_router_outstanding_tokens", dimensions: dimensions)
        }
    }

    /// A router over `replicas` (at least one, all serving the same model), whose KV blocks hold
    /// `blockTokens` tokens. With `prefixAffinity`, it remembers the leading blocks of up to
    /// `affinityCapacity` routed blocks and prefers the replica that got a request's prefix.
    public init(replicas: [any GenerationService], blockTokens: Int, prefixAffinity: Bool, affinityCapacity: Int = 65_536) {
        precondition(!replicas.isEmpty, "a data-parallel service needs at least one replica")
        precondition(replicas.count <= PrefixAffinityTable.maxReplicas, "at most \(PrefixAffinityTable.maxReplicas) replicas")
        self.replicas = replicas
        modelID = replicas[0].modelID
        maxContextTokens = replicas.map(\.maxContextTokens).min()!
        router = ReplicaRouter(blockTokens: blockTokens)
        state = Mutex(
            State(
                loads: Array(repeating: ReplicaLoad(), count: replicas.count), routed: Array(repeating: 0, count: replicas.count),
                affinity: prefixAffinity ? PrefixAffinityTable(blockTokens: blockTokens, capacity: affinityCapacity) : nil))
        metrics = replicas.indices.map { ReplicaMetrics(replica: $0) }
    }

    public func encode(_ text: String) throws -> [Int] { try replicas[0].encode(text) }

    public func decode(_ tokens: [Int]) -> String { replicas[0].decode(tokens) }

    public func encodeChat(_ messages: [ChatMessage]) throws -> [Int] { try replicas[0].encodeChat(messages) }

    /// Forgets every replica's cached prefixes, and the router's record of where prefixes went.
    /// The replicas' backlogs added up (the server's admission limits count every replica).
    public var backlog: Int { replicas.reduce(0) { $0 + $1.backlog } }

    public func resetPrefixCache(flash: Bool) async -> (device: Int, flash: Int) {
        var total = (device: 0, flash: 0)
        for replica in replicas {
            let forgotten = await replica.resetPrefixCache(flash: flash)
            total = (total.device + forgotten.device, total.flash + forgotten.flash)
        }
        state.withLock { state in
            if let table = state.affinity {
                state.affinity = PrefixAffinityTable(blockTokens: table.blockTokens, capacity: table.capacity, maxBlocks: table.maxBlocks)
            }
        }
        return total
    }

    /// Each replica's outstanding work now.
    public var loads: [ReplicaLoad] { state.withLock { $0.loads } }

    /// Requests routed to each replica since start.
    public var routedRequests: [Int] { state.withLock { $0.routed } }

    public func generate(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error> {
        let asked = ReplicaRouter.Request(promptTokens: request.promptTokens.count, maxTokens: request.sampling.maxTokens)
        let (replica, prefill) = route(request.promptTokens, salt: request.cacheSalt, asked)
        let upstream = replicas[replica].generate(request)
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerationEvent.self, throwing: Error.self)
        let task = Task { [self] in
            var prefillLeft = prefill
            var outputLeft = asked.maxTokens
            do {
                for try await event in upstream {
                    if case .delta(let tokens, _, _) = event {
                        let done = prefillLeft + min(tokens.count, outputLeft)
                        outputLeft -= min(tokens.count, outputLeft)
                        prefillLeft = 0
                        release(replica, requests: 0, tokens: done)
                    }
                    continuation.yield(event)
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
            release(replica, requests: 1, tokens: prefillLeft + outputLeft)
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// Picks the replica and counts the request's work there; returns it and the request's
    /// prefill tokens as counted (the prompt, less the blocks the replica is believed to hold).
    private func route(_ prompt: [Int], salt: String?, _ asked: ReplicaRouter.Request) -> (replica: Int, prefill: Int) {
        let (replica, prefill, hadPrefix) = state.withLock { state in
            let affinity = state.affinity?.affinity(of: prompt, salt: salt, replicas: replicas.count)
            let replica = router.choose(asked, loads: state.loads, affinityBlocks: affinity, rotation: state.rotation)
            state.rotation &+= 1
            state.affinity?.record(prompt, salt: salt, replica: replica)
            let prefill = router.cost(of: asked, affinityBlocks: affinity?[replica] ?? 0) - asked.maxTokens
            state.loads[replica].requests += 1
            state.loads[replica].tokens += prefill + asked.maxTokens
            state.routed[replica] += 1
            publish(replica, state.loads[replica])
            return (replica, prefill, (affinity?[replica] ?? 0) > 0)
        }
        metrics[replica].requests.increment()
        if hadPrefix { metrics[replica].prefixRouted.increment() }
        return (replica, prefill)
    }

    private func release(_ replica: Int, requests: Int, tokens: Int) {
        guard requests > 0 || tokens > 0 else { return }
        state.withLock { state in
            state.loads[replica].requests -= requests
            state.loads[replica].tokens -= tokens
            publish(replica, state.loads[replica])
        }
    }

    private func publish(_ replica: Int, _ load: ReplicaLoad) {
        metrics[replica].outstandingRequests.record(load.requests)
        metrics[replica].outstandingTokens.record(load.tokens)
    }
}
