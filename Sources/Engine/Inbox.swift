import Foundation

/// Messages posted from any thread for the engine's step thread, which takes them all at once
/// and, when it has nothing else to do, waits for the next one. The step loop uses one for
/// requests from the public side and one for finished transfers from the I/O tasks.
final class Inbox<Message: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var messages: [Message] = []
    private var interrupted = false

    /// Leaves a message and wakes a waiting taker.
    func post(_ message: Message) {
        condition.withLock {
            messages.append(message)
            condition.broadcast()
        }
    }

    /// Every message left so far, without waiting.
    func drain() -> [Message] {
        condition.withLock {
            defer { messages = [] }
            return messages
        }
    }

    /// Makes the taker waiting now, or the next one to wait, return at once with whatever is
    /// there (possibly nothing).
    func interrupt() {
        condition.withLock {
            interrupted = true
            condition.broadcast()
        }
    }

    /// Waits until at least one message is there (or `timeout` passes, nil: no limit, or an
    /// `interrupt`), then takes them all.
    func wait(timeout: TimeInterval?) -> [Message] {
        condition.withLock {
            if let timeout {
                let deadline = Date(timeIntervalSinceNow: timeout)
                while messages.isEmpty, !interrupted, condition.wait(until: deadline) {}
            } else {
                while messages.isEmpty, !interrupted { condition.wait() }
            }
            interrupted = false
            defer { messages = [] }
            return messages
        }
    }
}
