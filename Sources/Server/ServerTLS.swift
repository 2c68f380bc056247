import NIOSSL

/// Why the TLS settings cannot be used.
public enum ServerTLSError: Error, CustomStringConvertible {
    /// One of `tls.cert` and `tls.key` is set without the other.
    case incomplete(missing: String)
    /// A PEM file cannot be read or holds no usable certificate or key.
    case unreadable(setting: String, path: String, reason: String)

    public var description: String {
        switch self {
        case .incomplete(let missing):
            return "Setting '\(missing)' is needed too: HTTPS takes both --tls-cert and --tls-key."
        case .unreadable(let setting, let path, let reason):
            return "Setting '\(setting)': cannot use \(path): \(reason)"
        }
    }
}

/// The HTTPS configuration made from `--tls-cert` and `--tls-key`.
enum ServerTLS {
    /// nil when neither is set; the server configuration for both; an error naming the setting
    /// and file otherwise.
    static func configuration(certificate: String?, key: String?) throws(ServerTLSError) -> TLSConfiguration? {
        switch (certificate, key) {
        case (nil, nil): return nil
        case (_?, nil): throw .incomplete(missing: "tls.key")
        case (nil, _?): throw .incomplete(missing: "tls.cert")
        case (let certificate?, let key?):
            let chain: [NIOSSLCertificate]
            do { chain = try NIOSSLCertificate.fromPEMFile(certificate) } catch {
                throw .unreadable(setting: "tls.cert", path: certificate, reason: "\(error)")
            }
            guard !chain.isEmpty else { throw .unreadable(setting: "tls.cert", path: certificate, reason: "it holds no PEM certificate") }
            let privateKey: NIOSSLPrivateKey
            do { privateKey = try NIOSSLPrivateKey(file: key, format: .pem) } catch {
                throw .unreadable(setting: "tls.key", path: key, reason: "\(error)")
            }
            return .makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        }
    }
}
