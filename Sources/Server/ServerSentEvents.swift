import Foundation
import Hummingbird

/// Server-sent events as the OpenAI streaming API frames them: each event is one `data:` line
/// holding a JSON object, then a blank line; the stream ends with `data: [DONE]`.
enum ServerSentEvents {
    /// Headers of a streaming response.
    static let headers: HTTPFields = [
        .contentType: "text/event-stream",
        .cacheControl: "no-cache",
    ]

    /// The event carrying `value` as JSON.
    static func event(_ value: some Encodable) -> ByteBuffer {
        let json = (try? JSONEncoder().encode(value)) ?? Data("{}".utf8)
        var buffer = ByteBuffer()
        buffer.writeString("data: ")
        buffer.writeBytes(json)
        buffer.writeString("\n\n")
        return buffer
    }

    /// The event carrying an error, sent when generation fails after the stream has begun.
    static func event(_ error: OpenAIError) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("data: ")
        buffer.writeBytes(error.jsonBody)
        buffer.writeString("\n\n")
        return buffer
    }

    /// The last event of every stream.
    static var done: ByteBuffer { ByteBuffer(string: "data: [DONE]\n\n") }
}
