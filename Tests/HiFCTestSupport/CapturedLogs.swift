import Foundation
import Logging
import Synchronization
import XCTest

/// Keeps the logs of the test run out of its output: every log line a test's code writes is held
/// in memory and printed only when that test fails, so the warnings the fault-injection tests
/// provoke on purpose ("No space left on device", "Input/output error") do not bury a real
/// failure. `HIFC_TEST_LOGS=1` prints every line as it is logged instead.
///
/// Call `CapturedLogs.install()` from the `setUp` of a test class whose code logs; the first call
/// in the process installs the log handler and the test observer (one bootstrap per process, which
/// is why this lives in a target every test target can share).
public enum CapturedLogs {
    private static let lines = Mutex<[String]>([])
    private static let installed = Mutex(false)

    /// Routes all logging through the capture (once per process; later calls do nothing).
    public static func install() {
        let first = installed.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        if ProcessInfo.processInfo.environment["HIFC_TEST_LOGS"] == "1" { return }
        LoggingSystem.bootstrap { label in CapturingLogHandler(label: label) }
        XCTestObservationCenter.shared.addTestObserver(FailureReporter())
    }

    /// The lines logged since the current test started.
    public static var current: [String] { lines.withLock { $0 } }

    fileprivate static func append(_ line: String) { lines.withLock { $0.append(line) } }
    fileprivate static func take() -> [String] {
        lines.withLock { held in
            defer { held.removeAll() }
            return held
        }
    }

    /// Clears the lines at each test's start and prints them when it fails.
    private final class FailureReporter: NSObject, XCTestObservation {
        func testCaseWillStart(_ testCase: XCTestCase) { _ = CapturedLogs.take() }

        func testCaseDidFinish(_ testCase: XCTestCase) {
            let held = CapturedLogs.take()
            guard let run = testCase.testRun, !run.hasSucceeded, !held.isEmpty else { return }
            print("--- the \(held.count) log lines of \(testCase.name), which failed:")
            for line in held { print(line) }
            print("---")
        }
    }
}

/// A log handler that hands each line to `CapturedLogs`, formatted as swift-log's stream handler
/// formats it (level info and above, as without a bootstrap).
private struct CapturingLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: " ")
        CapturedLogs.append("\(event.level) \(label):\(fields) [\(event.source)] \(event.message)")
    }
}
