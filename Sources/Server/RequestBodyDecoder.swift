import Foundation
import Hummingbird

/// Reads a request's JSON body within the size limits and decodes it, turning every way it can be
/// wrong (too large, not UTF-8, not JSON, a missing field, a wrong type) into an `OpenAIError` that
/// names the parameter.
///
/// The bytes of the body are counted against `budget` while they are read and decoded, so that
/// many large bodies at once get 503s rather than the server's memory.
struct RequestBodyDecoder: Sendable {
    /// Largest body accepted, in bytes.
    var maxBodyBytes: Int
    /// Bytes of bodies held at once over all requests.
    var budget: BodyMemoryBudget

    /// The decoded body, or an `OpenAIError` (413 when too large, 503 when the budget is spent,
    /// 400 otherwise).
    func decode<Body: Decodable>(_ type: Body.Type, from request: Request) async throws -> Body {
        let declared = request.headers[.contentLength].flatMap(Int.init)
        if let declared, declared > maxBodyBytes {
            throw OpenAIError.bodyTooLarge(limit: maxBodyBytes)
        }
        var reserved = 0
        defer { budget.release(reserved) }
        var bytes = Data()
        if let declared, declared > 0 {
            guard budget.reserve(declared) else { throw OpenAIError.bodiesBusy(limit: budget.limit) }
            reserved = declared
            bytes.reserveCapacity(declared)
        }
        do {
            for try await chunk in request.body {
                let total = bytes.count + chunk.readableBytes
                guard total <= maxBodyBytes else { throw OpenAIError.bodyTooLarge(limit: maxBodyBytes) }
                if total > reserved {
                    guard budget.reserve(total - reserved) else { throw OpenAIError.bodiesBusy(limit: budget.limit) }
                    reserved = total
                }
                bytes.append(contentsOf: chunk.readableBytesView)
            }
        } catch let error as OpenAIError {
            throw error
        } catch {
            // The body stopped arriving: the connection closed (or was cut by the read timeout).
            throw OpenAIError.clientClosedRequest
        }
        guard !bytes.isEmpty else {
            throw OpenAIError.invalidRequest("The request body is empty; send a JSON object.", code: "invalid_json")
        }
        if let offset = Self.firstInvalidUTF8Offset(bytes) {
            throw OpenAIError.invalidRequest(
                "The request body is not valid UTF-8 (the first invalid byte is at offset \(offset)); JSON must be sent as UTF-8.",
                code: "invalid_encoding")
        }
        do {
            return try JSONDecoder().decode(Body.self, from: bytes)
        } catch let error as DecodingError {
            throw Self.openAIError(error)
        }
    }

    /// Where `bytes` stop being UTF-8, or nil when they all are.
    static func firstInvalidUTF8Offset(_ bytes: Data) -> Int? {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    /// The OpenAI error for a decoding failure: the path of the field at fault is the `param`.
    static func openAIError(_ error: DecodingError) -> OpenAIError {
        func path(_ keys: [any CodingKey]) -> String? {
            keys.isEmpty ? nil : keys.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let name = path(context.codingPath + [key]) ?? key.stringValue
            return .invalidRequest("Missing required parameter: '\(name)'.", param: name, code: "missing_required_parameter")
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            guard let name = path(context.codingPath) else {
                return .invalidRequest("The request body must be a JSON object.", code: "invalid_json")
            }
            return .invalidRequest(
                "Invalid type for '\(name)': expected \(typeName(type)). \(context.debugDescription)",
                param: name, code: "invalid_type")
        case .dataCorrupted(let context):
            guard let name = path(context.codingPath) else {
                return .invalidRequest(
                    "We could not parse the JSON body of your request: \(context.underlyingError.map { "\($0.localizedDescription)" } ?? context.debugDescription)",
                    code: "invalid_json")
            }
            return .invalidRequest("Invalid value for '\(name)': \(context.debugDescription)", param: name, code: "invalid_value")
        @unknown default:
            return .invalidRequest("The request body is not valid: \(error)", code: "invalid_json")
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "a boolean"
        default: return "\(type)"
        }
    }
}
