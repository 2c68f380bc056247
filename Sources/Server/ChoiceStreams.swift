import Engine

/// The generations of one request's choices as the `AdmissionController` runs them: one stream of
/// events tagged with their choice index, the choices interleaved as the engine produces them.
///
/// `cancel()` (or dropping the stream) ends the request at once: its choices still waiting are
/// dropped and those in the engine are aborted, which frees their KV blocks. This is how a client
/// that disconnects stops its work.
struct ChoiceStreams: Sendable {
    /// Events of all choices as they come; the stream ends when every choice has finished, or
    /// throws the first failure of any of them.
    let events: AsyncThrowingStream<(choice: Int, event: GenerationEvent), Error>
    /// Ends the request.
    let cancel: @Sendable () -> Void
}
