import Foundation

/// Messages posted from any thread for the engine's step thread, which takes them all at once
/// and, when it has nothing else to do, waits for the next one. The step loop uses one for
/// requests from the public side and one for finished transfers from the I/O tasks.
final class Inbox<Message: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var messages: [Message] = []

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

    /// Waits until at least one message is there (or `timeout` passes; nil: no limit), then
    /// takes them all.
    func wait(timeout: TimeInterval?) -> [Message] {
        condition.withLock {
            if let timeout {
                let deadline = Date(timeIntervalSinceNow: timeout)
                while messages.isEmpty, condition.wait(until: deadline) {}
            } else {
                while messages.isEmpty { condition.wait() }
            }
            defer { messages = [] }
            return messages
        }
    }
}
