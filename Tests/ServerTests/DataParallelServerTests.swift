import Backend
import Engine
import FlashStore
import Foundation
import HiFCCore
import Hummingbird
import HummingbirdTesting
import Logging
import XCTest

@testable import Server

/// `--data-parallel 2` end to end on the CPU backend: two engine replicas of the tiny synthetic
/// model behind the router, each with its own flash region.
final class DataParallelServerTests: XCTestCase {
    private func withStack(
        flashPaths: Int, placement: FlashPlacementPolicy, _ body: (ServingStack, [String]) async throws -> Void
    ) async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("hifc-dp-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: data) }
        var configuration = ServerConfiguration()
        configuration.model = DefaultModel.syntheticName
        configuration.dataDirectory = data
        configuration.dataParallel = 2
        configuration.device = .cpu
        configuration.threads = 2  // split: one thread per replica
        configuration.flashCapacity = .mib(64)
        configuration.kvBudget = .blocks(16)  // about one request's KV: concurrent ones swap
        configuration.flashPlacement = placement
        configuration.flashPaths = (0..<flashPaths).map { "\(data)/ssd\($0)" }
        let stack = try ServingStack(configuration: configuration, logger: Logger(label: "test"))
        defer { stack.shutdown() }
        try await body(stack, configuration.flashPaths)
    }

    /// Sends `count` greedy completions at once; returns their texts.
    private func complete(_ stack: ServingStack, count: Int, prompt: @escaping @Sendable (Int) -> String) async throws -> [String] {
        let model = stack.routes.servedModelName
        return try await stack.routes.application(address: .hostname("127.0.0.1", port: 0)).test(.router) { client in
            try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for i in 0..<count {
                    group.addTask {
                        let response = try await client.post(
                            "/v1/completions", #"{"model":"\#(model)","prompt":"\#(prompt(i))","max_tokens":150,"temperature":0}"#)
                        XCTAssertEqual(response.status, .ok, String(buffer: response.body))
                        let text = (try response.json["choices"] as? [[String: Any]])?.first?["text"] as? String
                        return (i, text ?? "")
                    }
                }
                var texts = [String](repeating: "", count: count)
                for try await (i, text) in group { texts[i] = text }
                return texts
            }
        }
    }

    func testTwoReplicasShareTheLoadAnswerAlikeAndEachSwapsToItsOwnRegion() async throws {
        try await withStack(flashPaths: 1, placement: .affinity) { stack, paths in
            XCTAssertEqual(stack.replicas.count, 2)
            XCTAssertEqual(stack.replicas.map { ($0.model.model.backend as? CPUBackend)?.pool.threads }, [1, 1], "CPU replicas split --threads")
            let router = try XCTUnwrap(stack.service as? DataParallelService)
            // The same prompt six times at once: the replicas split them, and greedy text does
            // not depend on which replica (or whether it swapped) produced it.
            let texts = try await complete(stack, count: 6) { _ in String(repeating: "story 0 ", count: 20) }
            XCTAssertEqual(Set(texts).count, 1, "\(texts)")
            XCTAssertEqual(router.routedRequests.reduce(0, +), 6)
            XCTAssertGreaterThan(router.routedRequests.min()!, 0, "\(router.routedRequests)")
            for _ in 0..<100 where router.loads != [ReplicaLoad(), ReplicaLoad()] { try await Task.sleep(for: .milliseconds(10)) }
            XCTAssertEqual(router.loads, [ReplicaLoad(), ReplicaLoad()], "each request's work is released when its stream ends")
            for replica in stack.replicas {
                XCTAssertGreaterThan(replica.engine.stats().swapOuts, 0, "replica \(replica.index) should swap under 256 KiB of KV")
                XCTAssertEqual(
                    replica.flashStore?.stats.paths.map(\.regionFile),
                    ["\(paths[0])/\(FlashStoreConfiguration.regionFileName(instance: replica.index + 1))"])
            }
            // N:1: one path, one region per replica, each half of the path's capacity.
            XCTAssertEqual(stack.replicas.compactMap { $0.flashStore?.geometry.capacity }, [32 << 20, 32 << 20])
            let metrics = ServerMetrics.render()
            for replica in 0..<2 {
                XCTAssertTrue(metrics.contains(#"hifc_router_requests_total{replica="\#(replica)"}"#), metrics)
                XCTAssertTrue(metrics.contains(#"hifc_swap_outs_total{replica="\#(replica)"}"#), metrics)
            }
        }
    }

    func testUnderAffinityEachReplicaWritesOnlyItsOwnPathOneToOne() async throws {
        try await withStack(flashPaths: 2, placement: .affinity) { stack, _ in
            _ = try await complete(stack, count: 6) { String(repeating: "story \($0) ", count: 20) }
            for replica in stack.replicas {
                let read = try XCTUnwrap(replica.flashStore).copyStats.bytesReadPerPath
                let own = replica.index
                XCTAssertGreaterThan(replica.engine.stats().swapIns, 0)
                XCTAssertGreaterThan(read[own], 0, "replica \(own) read nothing back from its path: \(read)")
                XCTAssertEqual(read[1 - own], 0, "replica \(own) swapped through the other replica's path: \(read)")
            }
        }
    }
}
