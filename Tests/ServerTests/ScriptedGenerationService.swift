import Engine
import Foundation
import HiFCCore
import Synchronization

/// A small deterministic `GenerationService` for testing the HTTP layer alone: text is tokenized
/// as its UTF-8 bytes, and choice tokens are `100 + i`, spelled " t<i>". A prompt containing
/// "FAIL" fails after its first token, one containing "REFUSE" before any; every request records
/// how its stream ended.
final class ScriptedGenerationService: GenerationService {
    let modelID = "scripted"
    let maxContextTokens: Int
    /// Pause between tokens, so that a test can disconnect in the middle of a generation.
    let tokenDelay: Duration

    private let log = Mutex<(requests: [GenerationRequest], terminated: [String: Bool])>(([], [:]))

    init(maxContextTokens: Int = 64, tokenDelay: Duration = .zero) {
        self.maxContextTokens = maxContextTokens
        self.tokenDelay = tokenDelay
    }

    /// Requests generated so far.
    var requests: [GenerationRequest] { log.withLock { $0.requests } }
    /// Ids of requests whose stream ended, and whether it ended by cancellation.
    var terminations: [String: Bool] { log.withLock { $0.terminated } }

    func encode(_ text: String) throws -> [Int] { Array(text.utf8).map(Int.init) }

    func encodeChat(_ messages: [ChatMessage]) throws -> [Int] {
        try encode(messages.map { "<\($0.role)>\($0.content)" }.joined() + "<assistant>")
    }

    func decode(_ tokens: [Int]) -> String { String(decoding: tokens.map(UInt8.init(truncatingIfNeeded:)), as: UTF8.self) }

    /// Choice token i's log probabilities: -i/10, its alternatives `200 + j` (" a<j>") at -(j+1).
    static func logprobs(of i: Int, top: Int) -> GeneratedLogprobs {
        GeneratedLogprobs(
            chosen: .init(token: 100 + i, bytes: Array(" t\(i)".utf8), logprob: -Float(i) / 10),
            top: (0..<top).map { j in .init(token: 200 + j, bytes: Array(" a\(j)".utf8), logprob: -Float(j + 1)) })
    }

    func generate(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error> {
        log.withLock { $0.requests.append(request) }
        let prompt = String(decoding: request.promptTokens.map(UInt8.init(truncatingIfNeeded:)), as: UTF8.self)
        let fails = prompt.contains("FAIL")
        let refuses = prompt.contains("REFUSE")
        let delay = tokenDelay
        let (stream, continuation) = AsyncThrowingStream<GenerationEvent, Error>.makeStream()
        let task = Task {
            if refuses {
                continuation.finish(throwing: GenerationError.invalidParameter(parameter: "prompt", reason: "scripted refusal"))
                return
            }
            for i in 0..<request.sampling.maxTokens {
                if delay > .zero { try? await Task.sleep(for: delay) }
                if Task.isCancelled { return }
                let logprobs = request.sampling.logprobs.map { [Self.logprobs(of: i, top: $0)] } ?? []
                continuation.yield(.delta(tokenIDs: [100 + i], text: " t\(i)", logprobs: logprobs))
                if fails {
                    continuation.finish(throwing: GenerationError.invalidParameter(parameter: "prompt", reason: "scripted failure"))
                    return
                }
            }
            let usage = TokenUsage(promptTokens: request.promptTokens.count, completionTokens: request.sampling.maxTokens)
            continuation.yield(.finished(.length, usage))
            continuation.finish()
        }
        let id = request.id
        continuation.onTermination = { [self] termination in
            task.cancel()
            let cancelled: Bool
            if case .cancelled = termination { cancelled = true } else { cancelled = false }
            log.withLock { $0.terminated[id] = cancelled }
        }
        return stream
    }
}
