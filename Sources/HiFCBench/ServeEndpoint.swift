/// Which OpenAI API a `bench serve` run drives.
public enum ServeEndpoint: String, Sendable, CaseIterable, Codable {
    /// `POST /v1/completions`: a prompt (text, or token ids where the server takes them).
    case completions
    /// `POST /v1/chat/completions`: messages, rendered by the server's chat template.
    case chat

    /// `completions` or `chat`, or the API path as `vllm bench serve --endpoint` names it
    /// (`/v1/completions`, `/v1/chat/completions`); nil for anything else.
    public init?(naming text: String) {
        switch text.hasPrefix("/v1/") ? String(text.dropFirst(4)) : text {
        case "completions": self = .completions
        case "chat", "chat/completions": self = .chat
        default: return nil
        }
    }

    /// The path under a base URL that ends with `/v1` (OpenAI clients' convention) or does not.
    public func path(under base: BaseURL) -> String {
        let api = base.path.hasSuffix("/v1") ? "" : "/v1"
        return api + (self == .completions ? "/completions" : "/chat/completions")
    }
}
