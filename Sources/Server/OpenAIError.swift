import Engine
import Foundation
import HiFCCore
import Hummingbird

/// An error as the OpenAI API reports it: an HTTP status and the body
/// `{"error": {"message", "type", "param", "code"}}`.
///
/// Every failure the server answers is one of these, so that clients (the official `openai`
/// package among them) show the message; the client's mistakes are 4xx and name the parameter.
public struct OpenAIError: Error, HTTPResponseError, Sendable, Hashable, CustomStringConvertible {
    /// HTTP status of the response.
    public var status: HTTPResponse.Status
    /// Human message naming the cause.
    public var message: String
    /// OpenAI's error type (`invalid_request_error`, `not_found_error`, `server_error`, ...).
    public var type: String
    /// The request parameter at fault, if one is.
    public var param: String?
    /// A machine-readable code (`context_length_exceeded`, `model_not_found`, ...).
    public var code: String?
    /// Headers the response carries besides its content type (`Retry-After`, `Allow`, ...).
    public var headers: HTTPFields

    /// An error with every field given.
    public init(
        status: HTTPResponse.Status, message: String, type: String, param: String? = nil, code: String? = nil, headers: HTTPFields = [:]
    ) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers
    }

    public var description: String { "\(status.code) \(type): \(message)" }

    /// HTTP 400: the request is wrong; `param` names the field at fault.
    public static func invalidRequest(_ message: String, param: String? = nil, code: String? = nil) -> OpenAIError {
        OpenAIError(status: .badRequest, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// HTTP 404: the request names a model this server does not serve.
    public static func modelNotFound(_ name: String, served: String) -> OpenAIError {
        OpenAIError(
            status: .notFound, message: "The model '\(name)' does not exist; this server serves '\(served)'.",
            type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    /// HTTP 413: the body is larger than `--max-body-size`.
    public static func bodyTooLarge(limit: Int) -> OpenAIError {
        OpenAIError(
            status: .contentTooLarge, message: "The request body is larger than the server's limit of \(limit) bytes (--max-body-size).",
            type: "invalid_request_error", code: "request_too_large")
    }

    /// HTTP 400: the request asks for more work than one request may (`--max-request-*`);
    /// `setting` names the limit's flag.
    public static func requestLimitExceeded(_ what: String, asked: Int, limit: Int, setting: String, param: String) -> OpenAIError {
        .invalidRequest(
            "The request asks for \(asked) \(what); this server allows at most \(limit) per request (\(setting)).", param: param,
            code: "request_limit_exceeded")
    }

    /// HTTP 401: no API key, or not one of the server's (`--api-key`).
    public static let invalidAPIKey = OpenAIError(
        status: .unauthorized,
        message: "Incorrect or missing API key: send one of the server's keys (--api-key) as 'Authorization: Bearer KEY'.",
        type: "invalid_request_error", code: "invalid_api_key", headers: [.wwwAuthenticate: "Bearer"])

    /// HTTP 405: the path exists for other methods, which `allowed` lists.
    public static func methodNotAllowed(_ method: HTTPRequest.Method, path: String, allowed: [HTTPRequest.Method]) -> OpenAIError {
        let list = allowed.map(\.rawValue).joined(separator: ", ")
        return OpenAIError(
            status: .methodNotAllowed, message: "\(path) does not accept \(method); use \(list).", type: "invalid_request_error",
            code: "method_not_allowed", headers: [.allow: list])
    }

    /// HTTP 429: the server's waiting queue is full (`--max-queued-sequences`,
    /// `--max-queued-tokens`); `Retry-After` says when it may have room.
    public static func queueFull(_ refusal: FairDispatchQueue<some Sendable>.Refusal, retryAfterSeconds: Int) -> OpenAIError {
        let detail: String
        switch refusal {
        case .sequences(let queued, let asked, let limit):
            detail = "\(queued) sequences are waiting and this request adds \(asked), over the limit of \(limit) (--max-queued-sequences)"
        case .tokens(let queued, let asked, let limit):
            detail = "\(queued) tokens are waiting and this request adds \(asked), over the limit of \(limit) (--max-queued-tokens)"
        }
        return OpenAIError(
            status: .tooManyRequests, message: "The server is busy: \(detail). Retry after \(retryAfterSeconds) s.", type: "rate_limit_error",
            code: "queue_full", headers: [.retryAfter: String(retryAfterSeconds)])
    }

    /// HTTP 503: too many request bodies are being read at once (`--max-body-memory`).
    public static func bodiesBusy(limit: Int) -> OpenAIError {
        OpenAIError(
            status: .serviceUnavailable,
            message: "The server is reading too many request bodies at once (\(limit) bytes in all, --max-body-memory); retry shortly.",
            type: "server_error", code: "server_busy", headers: [.retryAfter: "1"])
    }

    /// HTTP 503: the server is shutting down and takes no new work.
    public static let shuttingDown = OpenAIError(
        status: .serviceUnavailable, message: "The server is shutting down and takes no new requests.", type: "server_error",
        code: "shutting_down")

    /// HTTP 499 (nginx's "client closed request"): the client went away before its answer, which
    /// was therefore aborted; logged and counted, never seen by anyone.
    public static let clientClosedRequest = OpenAIError(
        status: HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request"),
        message: "The client closed the connection; the request was aborted.", type: "client_closed_request")

    /// HTTP 503: the engine cannot take requests.
    public static func unavailable(_ message: String) -> OpenAIError {
        OpenAIError(status: .serviceUnavailable, message: message, type: "server_error", code: "engine_unavailable")
    }

    /// HTTP 500: the server failed; never used for a client's mistake.
    public static func internalError(_ message: String) -> OpenAIError {
        OpenAIError(status: .internalServerError, message: message, type: "server_error", code: "internal_error")
    }

    /// The error a failure of generation maps to.
    public init(_ error: GenerationError) {
        switch error {
        case .contextTooLong:
            self = .invalidRequest(error.description, param: "max_tokens", code: "context_length_exceeded")
        case .emptyPrompt:
            self = .invalidRequest(error.description, param: "prompt", code: "empty_prompt")
        case .invalidParameter(let parameter, _):
            self = .invalidRequest(error.description, param: parameter, code: "invalid_value")
        case .engineStopped:
            self = .unavailable(error.description)
        }
    }

    /// The error body as JSON bytes.
    public var jsonBody: Data {
        struct Body: Encodable {
            struct Detail: Encodable {
                let message: String, type: String, param: String?, code: String?
                func encode(to encoder: any Encoder) throws {
                    var c = encoder.container(keyedBy: CodingKeys.self)
                    try c.encode(message, forKey: .message)
                    try c.encode(type, forKey: .type)
                    try c.encode(param, forKey: .param)  // null, not absent, as OpenAI sends it
                    try c.encode(code, forKey: .code)
                }
                enum CodingKeys: String, CodingKey { case message, type, param, code }
            }
            let error: Detail
        }
        let body = Body(error: .init(message: message, type: type, param: param, code: code))
        return (try? JSONEncoder().encode(body)) ?? Data(#"{"error":{"message":"error","type":"server_error","param":null,"code":null}}"#.utf8)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: jsonBody)))
    }
}
