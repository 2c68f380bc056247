import Foundation
import Hummingbird

/// Reads a request's JSON body within the size limit and decodes it, turning every way it can be
/// wrong (too large, not JSON, a missing field, a wrong type) into an `OpenAIError` that names the
/// parameter.
struct RequestBodyDecoder: Sendable {
    /// Largest body accepted, in bytes.
    var maxBodyBytes: Int

    /// The decoded body, or an `OpenAIError` (413 when too large, 400 otherwise).
    func decode<Body: Decodable>(_ type: Body.Type, from request: Request) async throws -> Body {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > maxBodyBytes {
            throw OpenAIError.bodyTooLarge(limit: maxBodyBytes)
        }
        var bytes = Data()
        for try await chunk in request.body {
            guard bytes.count + chunk.readableBytes <= maxBodyBytes else { throw OpenAIError.bodyTooLarge(limit: maxBodyBytes) }
            bytes.append(contentsOf: chunk.readableBytesView)
        }
        guard !bytes.isEmpty else {
            throw OpenAIError.invalidRequest("The request body is empty; send a JSON object.", code: "invalid_json")
        }
        do {
            return try JSONDecoder().decode(Body.self, from: bytes)
        } catch let error as DecodingError {
            throw Self.openAIError(error)
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
