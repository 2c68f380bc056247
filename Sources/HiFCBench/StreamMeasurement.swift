import Foundation
import HiFCCore

/// What one streamed completion delivered and when: built from its SSE events as they arrive.
///
/// A token arrival is an event whose choice carries non-empty text (`text` for completions,
/// `delta.content` for chat); its time is when its bytes were read. The first is the time to
/// first token, the gaps between them the inter-token latencies. The output token count is the
/// server's `usage.completion_tokens` when it sends usage, else the number of arrivals.
public struct StreamMeasurement: Sendable {
    /// When the request was sent.
    public let start: ContinuousClock.Instant
    /// Arrival times of the events that carried text.
    public private(set) var arrivals: [ContinuousClock.Instant] = []
    /// The text generated.
    public private(set) var text = ""
    /// `usage` of the stream, if the server sent it.
    public private(set) var promptTokens: Int?
    public private(set) var completionTokens: Int?
    /// Prompt tokens the server's prefix cache supplied (`usage.prompt_tokens_details.cached_tokens`).
    public private(set) var cachedPromptTokens: Int?
    /// Whether `data: [DONE]` arrived.
    public private(set) var done = false
    /// When the last event arrived.
    public private(set) var last: ContinuousClock.Instant

    public init(start: ContinuousClock.Instant) {
        self.start = start
        last = start
    }

    /// Why a stream event ends the request as a failure.
    public struct StreamError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public var description: String { message }
    }

    private struct Chunk: Decodable {
        struct Choice: Decodable {
            struct Delta: Decodable { var content: String? }
            var text: String?
            var delta: Delta?
        }
        struct Usage: Decodable {
            struct PromptDetails: Decodable { var cached_tokens: Int? }
            var prompt_tokens: Int?
            var completion_tokens: Int?
            var prompt_tokens_details: PromptDetails?
        }
        struct Failure: Decodable { var message: String? }
        var choices: [Choice]?
        var usage: Usage?
        var error: Failure?
    }

    /// Takes one event's data, read at `time`.
    public mutating func receive(_ data: String, at time: ContinuousClock.Instant) throws(StreamError) {
        last = time
        if data == "[DONE]" {
            done = true
            return
        }
        let chunk: Chunk
        do { chunk = try JSONDecoder().decode(Chunk.self, from: Data(data.utf8)) } catch {
            throw StreamError(message: "an event is not a completion chunk: \(data.prefix(200))")
        }
        if let failure = chunk.error { throw StreamError(message: "the server sent an error event: \(failure.message ?? data)") }
        if let usage = chunk.usage {
            promptTokens = usage.prompt_tokens ?? promptTokens
            completionTokens = usage.completion_tokens ?? completionTokens
            cachedPromptTokens = usage.prompt_tokens_details?.cached_tokens ?? cachedPromptTokens
        }
        let piece = (chunk.choices ?? []).map { $0.text ?? $0.delta?.content ?? "" }.joined()
        if !piece.isEmpty {
            arrivals.append(time)
            text += piece
        }
    }

    /// Output tokens: the server's count, else one per arrival.
    public var outputTokens: Int { completionTokens ?? arrivals.count }

    /// Seconds to the first token.
    public var ttft: Double? { arrivals.first.map { ($0 - start).inSeconds } }

    /// Seconds from sending to the last event.
    public var latency: Double { (last - start).inSeconds }

    /// Seconds between successive arrivals.
    public var interTokenLatencies: [Double] {
        zip(arrivals.dropFirst(), arrivals).map { ($0 - $1).inSeconds }
    }
}
