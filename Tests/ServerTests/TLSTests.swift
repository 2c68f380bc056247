import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import Server

/// `--tls-cert` and `--tls-key` serve HTTPS; a half-given or unreadable pair is refused naming it.
final class TLSTests: XCTestCase {
    /// A self-signed certificate and key for localhost, made with the `openssl` command.
    private func makeCertificate() throws -> (certificate: String, key: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hifc-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let certificate = directory + "/cert.pem"
        let key = directory + "/key.pem"
        let status = Process.exitStatus(
            of: "/usr/bin/env",
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                "/CN=localhost", "-keyout", key, "-out", certificate,
            ])
        guard status == 0 else { throw XCTSkip("the openssl command is missing or failed (status \(status))") }
        return (certificate, key)
    }

    func testHTTPSServesWithTheGivenCertificate() async throws {
        let files = try makeCertificate()
        try await withServer(
            ScriptedGenerationService(), setup: .ahc(.https),
            configure: {
                $0.tlsCertificate = files.certificate
                $0.tlsKey = files.key
            }
        ) { client in
            let health = try await client.execute(uri: "/health", method: .get)
            XCTAssertEqual(health.status, .ok)
            let completion = try await client.post("/v1/completions", #"{"model":"scripted","prompt":"hi","max_tokens":2}"#)
            XCTAssertEqual(completion.status, .ok)
        }
    }

    func testAHalfGivenOrUnreadablePairIsRefusedNamingIt() throws {
        XCTAssertThrowsError(try ServerTLS.configuration(certificate: "/c.pem", key: nil)) { error in
            XCTAssertTrue("\(error)".contains("'tls.key'"), "\(error)")
        }
        XCTAssertThrowsError(try ServerTLS.configuration(certificate: "/no/such/cert.pem", key: "/no/such/key.pem")) { error in
            XCTAssertTrue("\(error)".contains("/no/such/cert.pem"), "\(error)")
        }
        XCTAssertNil(try ServerTLS.configuration(certificate: nil, key: nil))
    }
}
