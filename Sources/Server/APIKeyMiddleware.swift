import Hummingbird

/// Requires `Authorization: Bearer KEY` with one of the server's keys (`--api-key`) on every
/// route but `/health` (and `/metrics` when `--public-metrics` is set); answers 401 with an
/// OpenAI error body otherwise, as vLLM's `--api-key` does.
///
/// Keys are compared in time that depends only on the keys' lengths, never on how much of a
/// guess is right, and every key is tried, so timing tells an attacker nothing about them.
struct APIKeyMiddleware: RouterMiddleware {
    typealias Context = ServerRequestContext

    private let keys: [[UInt8]]
    private let openPaths: Set<String>

    /// A middleware accepting `keys`; `publicMetrics` leaves `/metrics` open.
    init(keys: [String], publicMetrics: Bool) {
        self.keys = keys.map { Array($0.utf8) }
        openPaths = publicMetrics ? ["/health", "/metrics"] : ["/health"]
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard openPaths.contains(request.uri.path) || accepts(request.headers[.authorization]) else {
            throw OpenAIError.invalidAPIKey
        }
        return try await next(request, context)
    }

    /// Whether `authorization` is `Bearer` and one of the keys.
    func accepts(_ authorization: String?) -> Bool {
        guard let authorization, authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else { return false }
        let presented = Array(authorization.utf8.dropFirst(7))
        var matched = false
        for key in keys { matched = Self.constantTimeEqual(presented, key) || matched }
        return matched
    }

    /// Whether `a` equals `key`, looking at every byte of `key` whatever `a` holds.
    static func constantTimeEqual(_ a: [UInt8], _ key: [UInt8]) -> Bool {
        var difference = UInt8(a.count == key.count ? 0 : 1)
        for i in key.indices {
            difference |= key[i] ^ (i < a.count ? a[i] : 0)
        }
        return difference == 0
    }
}
