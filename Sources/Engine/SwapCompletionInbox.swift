import Foundation

/// Where the swapper's I/O threads leave finished swaps for the step loop, which takes them at
/// the start of a step or waits for one when nothing can compute without it.
final class SwapCompletionInbox: @unchecked Sendable {
    private let condition = NSCondition()
    private var completions: [SwapCompletion] = []

    /// Leaves a completion and wakes a waiting step loop.
    func post(_ completion: SwapCompletion) {
        condition.withLock {
            completions.append(completion)
            condition.broadcast()
        }
    }

    /// Every completion left so far.
    func drain() -> [SwapCompletion] {
        condition.withLock {
            defer { completions = [] }
            return completions
        }
    }

    /// Waits until at least one completion is there (or `timeout` passes), then takes them all.
    func wait(timeout: TimeInterval) -> [SwapCompletion] {
        condition.withLock {
            let deadline = Date(timeIntervalSinceNow: timeout)
            while completions.isEmpty, condition.wait(until: deadline) {}
            defer { completions = [] }
            return completions
        }
    }
}
