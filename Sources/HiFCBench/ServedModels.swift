import Foundation

/// The models an OpenAI-compatible server lists at `GET /v1/models`.
public struct ServedModels: Sendable {
    /// One model: its id and, where the server says (hifc and vLLM do), its context length.
    public struct Model: Sendable, Hashable {
        public var id: String
        public var maxModelLength: Int?
    }

    public var models: [Model]

    /// Why the list could not be had.
    public struct FetchError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Asks the server at `baseURL`.
    public static func fetch(from baseURL: BaseURL, client: StreamingHTTPClient, apiKey: String?) async throws(FetchError) -> ServedModels {
        let path = (baseURL.path.hasSuffix("/v1") ? "" : "/v1") + "/models"
        var status = 0
        var body: [UInt8] = []
        do {
            let parts = try await client.send(
                .GET, to: baseURL, path: path, headers: apiKey.map { [("Authorization", "Bearer \($0)")] } ?? [], timeout: .seconds(30))
            for try await part in parts {
                switch part {
                case .head(let code, _): status = code
                case .body(let buffer, _): body += buffer.readableBytesView
                case .end: break
                }
            }
        } catch {
            throw FetchError(message: "GET \(baseURL)\(path) failed: \(error)")
        }
        guard status == 200 else {
            throw FetchError(message: "GET \(baseURL)\(path) answered HTTP \(status): \(ServeBenchRunner.errorMessage(body))")
        }
        return try parse(body, source: "\(baseURL)\(path)")
    }

    /// The list in a `/v1/models` body.
    static func parse(_ body: [UInt8], source: String) throws(FetchError) -> ServedModels {
        struct List: Decodable {
            struct Entry: Decodable {
                var id: String
                var max_model_len: Int?
            }
            var data: [Entry]
        }
        guard let list = try? JSONDecoder().decode(List.self, from: Data(body)) else {
            throw FetchError(message: "\(source) is not a model list: \(String(decoding: body.prefix(300), as: UTF8.self))")
        }
        return ServedModels(models: list.data.map { Model(id: $0.id, maxModelLength: $0.max_model_len) })
    }
}
