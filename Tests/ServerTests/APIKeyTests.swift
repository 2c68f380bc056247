import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

/// With `--api-key`, every route but `/health` needs `Authorization: Bearer KEY`.
final class APIKeyTests: XCTestCase {
    private static let completion = #"{"model":"scripted","prompt":"hi","max_tokens":1}"#

    private static func post(_ client: any TestClientProtocol, key: String?) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let key { headers[.authorization] = key }
        return try await client.execute(uri: "/v1/completions", method: .post, headers: headers, body: ByteBuffer(string: completion))
    }

    func testRequestsWithoutOneOfTheKeysAreRefusedWith401() async throws {
        let service = ScriptedGenerationService()
        try await withServer(service, configure: { $0.apiKeys = ["first-key", "second-key"] }) { client in
            for key in [nil, "Bearer wrong", "Bearer first-ke", "Bearer first-key2", "first-key", "Basic Zmlyc3Qta2V5"] {
                let response = try await Self.post(client, key: key)
                XCTAssertEqual(response.status, .unauthorized, "\(key ?? "no header")")
                XCTAssertEqual(try response.error["code"] as? String, "invalid_api_key")
                XCTAssertEqual(response.headers[.wwwAuthenticate], "Bearer")
            }
            for key in ["Bearer first-key", "Bearer second-key", "bearer second-key"] {
                let response = try await Self.post(client, key: key)
                XCTAssertEqual(response.status, .ok, key)
            }
            let models = try await client.execute(uri: "/v1/models", method: .get)
            XCTAssertEqual(models.status, .unauthorized)
            let unknown = try await client.execute(uri: "/v1/embeddings", method: .post)
            XCTAssertEqual(unknown.status, .unauthorized, "routes are not revealed without a key")
            let health = try await client.execute(uri: "/health", method: .get)
            XCTAssertEqual(health.status, .ok, "health checks need no key")
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertEqual(metrics.status, .unauthorized, "metrics are keyed unless --public-metrics")
        }
        XCTAssertEqual(service.requests.count, 3, "only the keyed requests reached the engine")
    }

    func testPublicMetricsLeavesOnlyMetricsOpen() async throws {
        try await withServer(
            ScriptedGenerationService(),
            configure: {
                $0.apiKeys = ["k"]
                $0.publicMetrics = true
            }
        ) { client in
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertEqual(metrics.status, .ok)
            let models = try await client.execute(uri: "/v1/models", method: .get)
            XCTAssertEqual(models.status, .unauthorized)
        }
    }

    func testComparisonLooksAtEveryByteOfTheKey() {
        XCTAssertTrue(APIKeyMiddleware.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        XCTAssertFalse(APIKeyMiddleware.constantTimeEqual(Array("abd".utf8), Array("abc".utf8)))
        XCTAssertFalse(APIKeyMiddleware.constantTimeEqual(Array("ab".utf8), Array("abc".utf8)))
        XCTAssertFalse(APIKeyMiddleware.constantTimeEqual(Array("abc\0".utf8), Array("abc".utf8)))
        XCTAssertFalse(APIKeyMiddleware.constantTimeEqual([], Array("abc".utf8)))
    }
}
