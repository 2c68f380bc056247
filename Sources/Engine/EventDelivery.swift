import Foundation
import HiFCCore

/// Feeds the requests' streams on a thread of its own, in the order the step thread sends its
/// messages, so that the step thread goes straight on to plan and launch the next step.
///
/// Each `yield` takes its stream's lock and may resume the task waiting on it: at 64 concurrent
/// streams that was a few percent of the step thread under perf on the CPU, and on a GPU it is
/// host time between two steps that the GPU waits through.
final class EventDelivery: @unchecked Sendable {
    typealias Stream = AsyncThrowingStream<GenerationEvent, Error>.Continuation

    private enum Message: Sendable {
        case open(SequenceID, Stream)
        case events([(SequenceID, GenerationEvent)])
        case end(SequenceID, last: GenerationEvent?)
        case failAll(GenerationError)
        case stop
    }

    private let inbox = Inbox<Message>()
    private let stopped = DispatchSemaphore(value: 0)
    // Touched only on the delivery thread.
    private var streams: [SequenceID: Stream] = [:]

    /// Starts the delivery thread.
    init() {
        let thread = Thread { [self] in run() }
        thread.name = "hifc-delivery"
        thread.start()
    }

    /// Makes `stream` the one that `id`'s events go to.
    func open(_ id: SequenceID, _ stream: Stream) { inbox.post(.open(id, stream)) }

    /// Hands each event to its request's stream; a `.finished` event ends that stream.
    func deliver(_ events: [(SequenceID, GenerationEvent)]) {
        guard !events.isEmpty else { return }
        inbox.post(.events(events))
    }

    /// Ends `id`'s stream, after `last` when given (an aborted request's final event).
    func end(_ id: SequenceID, last: GenerationEvent?) { inbox.post(.end(id, last: last)) }

    /// Ends every open stream with `error`.
    func failAll(_ error: GenerationError) { inbox.post(.failAll(error)) }

    /// Returns once everything sent before has been delivered, and stops the thread.
    func stop() {
        inbox.post(.stop)
        stopped.wait()
    }

    private func run() {
        while true {
            for message in inbox.wait(timeout: nil) {
                switch message {
                case .open(let id, let stream):
                    streams[id] = stream
                case .events(let events):
                    for (id, event) in events {
                        guard let stream = streams[id] else { continue }
                        stream.yield(event)
                        if case .finished = event {
                            stream.finish()
                            streams[id] = nil
                        }
                    }
                case .end(let id, let last):
                    guard let stream = streams.removeValue(forKey: id) else { continue }
                    if let last { stream.yield(last) }
                    stream.finish()
                case .failAll(let error):
                    for stream in streams.values { stream.finish(throwing: error) }
                    streams = [:]
                case .stop:
                    stopped.signal()
                    return
                }
            }
        }
    }
}
