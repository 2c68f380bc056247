import Engine
import HiFCCore
import Synchronization
import XCTest

/// A replica whose requests stay open until the test emits their tokens or ends them.
private final class HeldReplica: GenerationService {
    let modelID = "held"
    let maxContextTokens: Int
    private let open = Mutex<[(id: String, continuation: AsyncThrowingStream<GenerationEvent, Error>.Continuation)]>([])
    private let cancelled = Mutex<[String]>([])

    /// What it reports held without running (`GenerationService.backlog`).
    let backlog: Int

    init(maxContextTokens: Int = 4096, backlog: Int = 0) {
        self.maxContextTokens = maxContextTokens
        self.backlog = backlog
    }

    func encode(_ text: String) throws -> [Int] { text.unicodeScalars.map { Int($0.value) } }
    func encodeChat(_ messages: [ChatMessage]) throws -> [Int] { try encode(messages.map(\.content).joined()) }
    func decode(_ tokens: [Int]) -> String { String(String.UnicodeScalarView(tokens.compactMap { Unicode.Scalar(UInt32($0)) })) }

    func generate(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerationEvent.self, throwing: Error.self)
        let id = request.id
        continuation.onTermination = { [self] termination in
            if case .cancelled = termination { cancelled.withLock { $0.append(id) } }
        }
        open.withLock { $0.append((id, continuation)) }
        return stream
    }

    /// Ids of the requests it was given.
    var ids: [String] { open.withLock { $0.map(\.id) } }
    /// Ids of the requests whose consumer went away.
    var cancelledIDs: [String] { cancelled.withLock { $0 } }

    func emit(_ id: String, tokens: Int) {
        open.withLock { _ = $0.first { $0.id == id }?.continuation.yield(.delta(tokenIDs: Array(repeating: 1, count: tokens), text: "x")) }
    }

    func finish(_ id: String) {
        open.withLock {
            $0.first { $0.id == id }?.continuation.yield(.finished(.stop, TokenUsage(promptTokens: 1, completionTokens: 1)))
            $0.first { $0.id == id }?.continuation.finish()
        }
    }
}

final class DataParallelServiceTests: XCTestCase {
    private func request(_ id: String, prompt: [Int], maxTokens: Int) -> GenerationRequest {
        GenerationRequest(id: id, promptTokens: prompt, sampling: .greedy(maxTokens: maxTokens))
    }

    /// Waits (briefly) until `condition` holds: the router updates its counts from its own task.
    private func eventually(_ condition: @autoclosure () -> Bool, _ message: String) async throws {
        for _ in 0..<200 where !condition() { try await Task.sleep(for: .milliseconds(5)) }
        XCTAssertTrue(condition(), message)
    }

    func testRequestsGoToTheLeastLoadedReplicaAndTheirWorkIsReleasedAsTheyProgress() async throws {
        let replicas = [HeldReplica(), HeldReplica()]
        let service = DataParallelService(replicas: replicas, blockTokens: 4, prefixAffinity: false)
        let a = service.generate(request("a", prompt: Array(0..<100), maxTokens: 50))
        let b = service.generate(request("b", prompt: Array(0..<10), maxTokens: 5))
        XCTAssertEqual(replicas.map(\.ids), [["a"], ["b"]])
        XCTAssertEqual(service.loads, [ReplicaLoad(requests: 1, tokens: 150), ReplicaLoad(requests: 1, tokens: 15)])
        // Replica 1 holds less work: the next request goes there too.
        let c = service.generate(request("c", prompt: Array(0..<10), maxTokens: 5))
        XCTAssertEqual(replicas[1].ids, ["b", "c"])
        // A first token ends the prefill: the prompt's tokens and that token are released.
        let drain = Task { for try await _ in a {} }
        replicas[0].emit("a", tokens: 1)
        try await eventually(service.loads[0] == ReplicaLoad(requests: 1, tokens: 49), "\(service.loads)")
        replicas[0].finish("a")
        try await drain.value
        try await eventually(service.loads[0] == ReplicaLoad(), "\(service.loads)")
        for (id, stream) in [("b", b), ("c", c)] {
            replicas[1].finish(id)
            for try await _ in stream {}
        }
        try await eventually(service.loads == [ReplicaLoad(), ReplicaLoad()], "\(service.loads)")
        XCTAssertEqual(service.routedRequests, [1, 2])
    }

    func testAConsumerThatGoesAwayCancelsTheReplicasStreamAndFreesItsLoad() async throws {
        let replica = HeldReplica()
        let service = DataParallelService(replicas: [replica, HeldReplica()], blockTokens: 4, prefixAffinity: false)
        let stream = service.generate(request("gone", prompt: [1, 2, 3], maxTokens: 8))
        let consumer = Task { for try await _ in stream {} }
        consumer.cancel()
        _ = await consumer.result
        try await eventually(replica.cancelledIDs == ["gone"], "the replica's request was not cancelled")
        try await eventually(service.loads[0] == ReplicaLoad(), "\(service.loads)")
    }

    func testWithPrefixAffinityASharedPrefixReturnsToItsReplicaWhileItsExtraLoadIsLessThanThePrefillSaved() async throws {
        let replicas = [HeldReplica(), HeldReplica()]
        let service = DataParallelService(replicas: replicas, blockTokens: 16, prefixAffinity: true)
        let system = Array(1000..<1256)  // 16 blocks shared by the requests s1...
        var streams: [AsyncThrowingStream<GenerationEvent, Error>] = []
        streams.append(service.generate(request("s1", prompt: system + [1], maxTokens: 10)))  // replica 0: 267 tokens
        streams.append(service.generate(request("other", prompt: Array(0..<40), maxTokens: 10)))  // replica 1: 50 tokens
        // Each later sharer adds 11 tokens on replica 0 (its prefix is there) against 267 on
        // replica 1: replica 0 takes them until it would hold more than 50 + 267 = 317 tokens.
        for n in 2...6 { streams.append(service.generate(request("s\(n)", prompt: system + [n], maxTokens: 10))) }
        XCTAssertEqual(replicas[0].ids, ["s1", "s2", "s3", "s4", "s5"])
        XCTAssertEqual(replicas[1].ids, ["other", "s6"])
        for replica in replicas { replica.ids.forEach(replica.finish) }
        for stream in streams { for try await _ in stream {} }
    }

    func testTheBacklogIsEveryReplicasAddedUp() {
        let service = DataParallelService(
            replicas: [HeldReplica(backlog: 3), HeldReplica(backlog: 2)], blockTokens: 16, prefixAffinity: false)
        XCTAssertEqual(service.backlog, 5, "the server's admission sees the sequences held in every replica")
    }
}
