/// How long the engine's forward pass takes, learned from the steps it runs: a step that
/// computes `tokens` new tokens, which together attend to `pairs` (query, key) pairs, takes about
/// `perStep + perToken·tokens + perPair·pairs` seconds.
///
/// The per-token term is the matrix products; the per-pair term is attention, which makes
/// recomputing a long context quadratic in its length. The fit is recursive least squares with
/// exponential forgetting, so it follows the machine as it warms up or gets busier. It predicts
/// what recomputing a range of a sequence's tokens costs, for the choices between recomputing
/// and moving KV (`KVCostModel`).
public struct StepTimeModel: Hashable, Sendable, Codable {
    // Features are scaled (tokens in thousands, pairs in millions) to keep the fit well conditioned.
    private static let tokenScale = 1e-3
    private static let pairScale = 1e-6
    /// Weight of the past against a new step (1: never forget).
    private static let forgetting = 0.99

    /// Seconds per step, per thousand tokens, per million pairs.
    private var theta: [Double]
    private var covariance: [[Double]]
    /// Steps observed.
    public private(set) var observations = 0

    /// A model that starts at `tokensPerSecond` for a token's products and nothing for the rest,
    /// until steps are observed.
    public init(tokensPerSecond: Double = 2_000) {
        theta = [0, 1 / tokensPerSecond / Self.tokenScale, 0]
        // A weak prior: the first steps observed decide the fit.
        covariance = [[1e4, 0, 0], [0, 1e4, 0], [0, 0, 1e4]]
    }

    /// (query, key) pairs of computing tokens `start ..< end` of a sequence with causal attention.
    public static func attendedPairs(from start: Int, to end: Int) -> Double {
        guard end > start else { return 0 }
        // Token p attends to p + 1 keys: sum of (p + 1) for p in start..<end.
        return Double(end - start) * Double(start + end + 1) / 2
    }

    /// Learns from a step of `tokens` tokens and `pairs` attended pairs that took `seconds`.
    public mutating func observe(tokens: Int, pairs: Double, seconds: Double) {
        guard tokens > 0, seconds.isFinite, seconds > 0 else { return }
        let x = [1, Double(tokens) * Self.tokenScale, pairs * Self.pairScale]
        let px = (0..<3).map { i in (0..<3).reduce(0.0) { $0 + covariance[i][$1] * x[$1] } }
        let denominator = Self.forgetting + (0..<3).reduce(0.0) { $0 + x[$1] * px[$1] }
        let gain = px.map { $0 / denominator }
        let error = seconds - (0..<3).reduce(0.0) { $0 + theta[$1] * x[$1] }
        for i in 0..<3 { theta[i] += gain[i] * error }
        for i in 0..<3 {
            for j in 0..<3 { covariance[i][j] = (covariance[i][j] - gain[i] * px[j]) / Self.forgetting }
        }
        observations += 1
    }

    /// Predicted seconds of one step of `tokens` tokens and `pairs` pairs (each term at least 0).
    public func stepSeconds(tokens: Int, pairs: Double) -> Double {
        max(theta[0], 0) + max(theta[1], 0) * Double(tokens) * Self.tokenScale + max(theta[2], 0) * pairs * Self.pairScale
    }

    /// Predicted seconds that `tokens` tokens attending to `pairs` pairs add to a step that runs
    /// anyway: the step's time without its fixed part.
    public func addedSeconds(tokens: Int, pairs: Double) -> Double {
        max(theta[1], 0) * Double(tokens) * Self.tokenScale + max(theta[2], 0) * pairs * Self.pairScale
    }

    /// Predicted seconds to compute tokens `start ..< end` of one sequence in chunks of at most
    /// `chunkTokens` (each chunk a step of its own).
    public func seconds(from start: Int, to end: Int, chunkTokens: Int) -> Double {
        guard end > start else { return 0 }
        var total = 0.0
        var position = start
        while position < end {
            let next = min(position + max(chunkTokens, 1), end)
            total += stepSeconds(tokens: next - position, pairs: Self.attendedPairs(from: position, to: next))
            position = next
        }
        return total
    }

    /// The fitted rate of the per-token term, tokens per second (for reports).
    public var tokensPerSecond: Double { theta[1] > 0 ? 1 / (theta[1] * Self.tokenScale) : .infinity }
}
