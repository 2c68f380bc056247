import Foundation
import Synchronization

/// A progress bar on standard error: tokens generated of those expected, redrawn at most ten
/// times a second.
public final class BenchProgress: Sendable {
    private let label: String
    private let total: Int
    private let enabled: Bool
    private let state = Mutex((done: 0, drawn: ContinuousClock.now))
    private let started = ContinuousClock.now

    /// A bar labelled `label` for `total` tokens; nothing is drawn unless `enabled`.
    public init(label: String, total: Int, enabled: Bool) {
        self.label = label
        self.total = max(total, 1)
        self.enabled = enabled
    }

    /// Counts `count` more tokens.
    public func advance(by count: Int) {
        let line: String? = state.withLock { state in
            state.done += count
            guard enabled, ContinuousClock.now - state.drawn > .milliseconds(100) else { return nil }
            state.drawn = ContinuousClock.now
            return render(state.done)
        }
        if let line { FileHandle.standardError.write(Data(line.utf8)) }
    }

    /// Draws the full bar and ends its line.
    public func finish() {
        guard enabled else { return }
        let done = state.withLock { $0.done }
        FileHandle.standardError.write(Data((render(done) + "\n").utf8))
    }

    private func render(_ done: Int) -> String {
        let width = 30
        let filled = min(width, done * width / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        let elapsed = Self.seconds(since: started)
        return "\r\(label.padding(toLength: 11, withPad: " ", startingAt: 0)) [\(bar)] \(done)/\(total) tokens, "
            + String(format: "%.0f s", elapsed)
    }

    /// Seconds since `start`.
    public static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = (ContinuousClock.now - start).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
    }
}
