import Engine

/// The generations of a request's choices, run at once and interleaved into one stream of events
/// tagged with their choice index.
///
/// `cancel()` (or dropping the stream) cancels every generation, which aborts them in the engine
/// and frees their KV blocks: this is how a client that disconnects stops its work.
struct ChoiceStreams: Sendable {
    /// Events of all choices as they come.
    let events: AsyncThrowingStream<(choice: Int, event: GenerationEvent), Error>
    private let task: Task<Void, Never>

    /// Starts generating every request of `choices` on `service`.
    init(_ choices: [GenerationRequest], service: any GenerationService) {
        let (events, continuation) = AsyncThrowingStream<(choice: Int, event: GenerationEvent), Error>.makeStream()
        task = Task {
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, request) in choices.enumerated() {
                        group.addTask {
                            for try await event in service.generate(request) {
                                continuation.yield((index, event))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        let task = self.task
        continuation.onTermination = { _ in task.cancel() }
        self.events = events
    }

    /// Stops every generation of the request.
    func cancel() { task.cancel() }
}
