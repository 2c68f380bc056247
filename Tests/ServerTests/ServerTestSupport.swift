import Foundation
import HiFCCore
import Hummingbird
import HummingbirdTesting
import Logging
import Server
import XCTest

/// Runs `body` against an in-process server on `service`, with `configure`'s changes to the
/// default settings.
func withServer(
    _ service: ScriptedGenerationService, maxBodyBytes: Int = 1 << 20, setup: TestingSetup = .router,
    configure: (inout ServerConfiguration) -> Void = { _ in },
    _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
) async throws {
    var configuration = ServerConfiguration()
    configuration.maxBodySize = ByteSize(Int64(maxBodyBytes))
    configure(&configuration)
    let routes = OpenAIRoutes(service: service, configuration: configuration, logger: Logger(label: "test"))
    try await routes.application(address: .hostname("127.0.0.1", port: 0)).test(setup) { client in try await body(client) }
}

/// Waits until `condition` holds (or 5 s pass).
func eventually(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(5)
    while !condition(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
}

extension TestClientProtocol {
    /// POSTs `json` (sent as written) to `uri`.
    func post(_ uri: String, _ json: String) async throws -> TestResponse {
        try await execute(uri: uri, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: json))
    }
}

extension TestResponse {
    /// The body as a JSON object.
    var json: [String: Any] {
        get throws {
            let data = Data(body.readableBytesView)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], String(decoding: data, as: UTF8.self))
        }
    }

    /// The `error` object of an OpenAI error body.
    var error: [String: Any] {
        get throws { try XCTUnwrap(json["error"] as? [String: Any]) }
    }

    /// The `data:` payloads of a server-sent event stream, in order.
    var events: [String] {
        String(buffer: body).components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { event in
            XCTAssertTrue(event.hasPrefix("data: "), "not an SSE data line: \(event)")
            return String(event.dropFirst(6))
        }
    }
}

/// Parses a JSON object of an event.
func jsonObject(_ text: String) throws -> [String: Any] {
    try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

/// A response's `usage` as counts: its whole-number fields, with
/// `prompt_tokens_details.cached_tokens` as `cached_tokens`; nil when it is not an object.
func usageCounts(_ usage: Any?) -> [String: Int]? {
    guard let object = usage as? [String: Any] else { return nil }
    var counts = object.compactMapValues { $0 as? Int }
    if let cached = (object["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int { counts["cached_tokens"] = cached }
    return counts
}
