import Foundation
import HiFCCore
import Synchronization

/// Progress on standard error: items done (tokens generated, requests answered) of those
/// expected. On a terminal a bar redrawn in place at most ten times a second; anywhere else (a log
/// file, a pipe) a plain line every few seconds, so a log holds a handful of lines rather than
/// thousands of carriage-return frames.
public final class BenchProgress: Sendable {
    private let label: String
    private let total: Int
    private let unit: String
    private let enabled: Bool
    private let isTerminal: Bool
    private let interval: Duration
    private let state = Mutex((done: 0, note: "", drawn: ContinuousClock.now))
    private let started = ContinuousClock.now

    /// A progress display for `total` `unit`; `lineInterval` spaces the plain lines written when
    /// standard error is not a terminal.
    public init(label: String, total: Int, unit: String = "tokens", enabled: Bool, lineInterval: Duration = .seconds(5)) {
        self.label = label
        self.total = max(total, 1)
        self.unit = unit
        self.enabled = enabled
        self.isTerminal = isatty(STDERR_FILENO) != 0
        self.interval = isTerminal ? .milliseconds(100) : lineInterval
    }

    /// Counts `count` more; `note` (errors so far, say) is shown after the count.
    public func advance(by count: Int, note: String? = nil) {
        let line: String? = state.withLock { state in
            state.done += count
            if let note { state.note = note }
            guard enabled, ContinuousClock.now - state.drawn > interval else { return nil }
            state.drawn = ContinuousClock.now
            return render(state.done, note: state.note)
        }
        if let line { write(line, final: false) }
    }

    /// Draws the final state and ends its line.
    public func finish() {
        guard enabled else { return }
        let (done, note) = state.withLock { ($0.done, $0.note) }
        write(render(done, note: note), final: true)
    }

    private func write(_ line: String, final: Bool) {
        // On a terminal the line is redrawn in place and cleared to its end (ESC [K).
        let text = isTerminal ? "\r" + line + "\u{1B}[K" + (final ? "\n" : "") : line + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }

    private func render(_ done: Int, note: String) -> String {
        let elapsed = String(format: "%.0f s", Self.seconds(since: started))
        let suffix = note.isEmpty ? "" : ", \(note)"
        let name = label.padding(toLength: 11, withPad: " ", startingAt: 0)
        guard isTerminal else {
            let percent = min(100, done * 100 / total)
            return "\(name) \(done)/\(total) \(unit) (\(percent)%)\(suffix), \(elapsed)"
        }
        let width = 30
        let filled = min(width, done * width / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        return "\(name) [\(bar)] \(done)/\(total) \(unit)\(suffix), \(elapsed)"
    }

    /// Seconds since `start`.
    public static func seconds(since start: ContinuousClock.Instant) -> Double {
        (ContinuousClock.now - start).inSeconds
    }
}
