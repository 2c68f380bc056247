import Engine
import Foundation
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

    /// An error with every field given.
    public init(status: HTTPResponse.Status, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
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
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: jsonBody)))
    }
}
