import Foundation

/// One line of `hifc check gpu`: an op run on the GPU against a float64 host reference.
public struct GPUCheckResult: Sendable, CustomStringConvertible {
    /// What was checked ("rmsnorm 17x4096").
    public var name: String
    /// ‖gpu − ref‖ / ‖ref‖, or mismatching elements for exact checks.
    public var error: Double
    /// The largest error that passes.
    public var tolerance: Double
    /// A failure's cause, when the check could not run.
    public var failure: String?

    /// A result; `failure` says why the check could not run.
    public init(name: String, error: Double, tolerance: Double, failure: String? = nil) {
        self.name = name
        self.error = error
        self.tolerance = tolerance
        self.failure = failure
    }

    /// Whether the check passed.
    public var passed: Bool { failure == nil && error <= tolerance && !error.isNaN }

    public var description: String {
        let status = passed ? "ok  " : "FAIL"
        if let failure { return "\(status) \(name): \(failure)" }
        return "\(status) \(name): error \(String(format: "%.3e", error)) (tolerance \(String(format: "%.0e", tolerance)))"
    }
}
