import Hummingbird
import Logging

/// Answers every failure with an OpenAI-style error body (unknown routes and methods included),
/// and counts every answered request by endpoint and status.
struct OpenAIErrorMiddleware: RouterMiddleware {
    typealias Context = ServerRequestContext

    let metrics: HTTPMetrics
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Paths other than the routes count as "other", so that a scan of random paths cannot
        // grow the metrics without bound.
        let endpoint = OpenAIRoutes.allowedMethods[request.uri.path] != nil ? request.uri.path : "other"
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            let failure = Self.openAIError(error, request: request)
            // A 503 is load or shutdown (the server refusing work it cannot take now), not a fault.
            if failure.status.code >= 500, failure.status != .serviceUnavailable {
                logger.error("\(request.method) \(request.uri.path) failed: \(failure.message)")
            } else {
                logger.info("\(request.method) \(request.uri.path) refused (\(failure.status.code)): \(failure.message)")
            }
            response = try failure.response(from: request, context: context)
        }
        metrics.recordRequest(endpoint: endpoint, status: response.status.code)
        return response
    }

    private static func openAIError(_ error: any Error, request: Request) -> OpenAIError {
        switch error {
        case let error as OpenAIError:
            return error
        case let error as HTTPError where error.status == .notFound:
            if let allowed = OpenAIRoutes.allowedMethods[request.uri.path] {
                return .methodNotAllowed(request.method, path: request.uri.path, allowed: allowed)
            }
            return OpenAIError(
                status: .notFound, message: "There is no route \(request.method) \(request.uri.path).", type: "invalid_request_error",
                code: "not_found")
        case let error as HTTPResponseError where error.status.code < 500:
            return OpenAIError(
                status: error.status, message: "\(error.status.reasonPhrase) (\(request.method) \(request.uri.path)).", type: "invalid_request_error")
        default:
            return .internalError("The server failed: \(error)")
        }
    }
}
