import HiFCCore
import Models

/// The requests of `hifc bench swap`: prompt lengths drawn around a named data set's mean (the
/// paper's workloads) or fixed, outputs of a fixed length, token ids drawn at random, all from a
/// seed so every mode of one run sees the same requests. `hifc bench serve` takes the same names
/// for its length distributions (`promptLengths(scale:)`, `outputLengths(scale:)`).
public struct BenchWorkload: Sendable, Hashable, CustomStringConvertible {
    /// Mean prompt tokens (before scaling).
    public var meanPromptTokens: Int
    /// Output tokens per request (before scaling).
    public var outputTokens: Int
    /// Relative spread of prompt lengths (0: all the same).
    public var spread: Double
    /// The name it was given.
    public var name: String

    /// Why a workload name was not understood.
    public struct ParseError: Error, CustomStringConvertible {
        /// The text that was not understood.
        public var text: String
        public var description: String {
            "unknown workload '\(text)'; use qasper, govreport, narrativeqa or IN:OUT (for example 2048:512)"
        }
    }

    /// Qasper (about 3.6K prompt tokens), GovReport (8.7K), NarrativeQA (18.4K), with 1K output
    /// tokens as in the paper; or `IN:OUT`, fixed lengths.
    public init(parsing text: String) throws(ParseError) {
        switch text.lowercased() {
        case "qasper": self.init(name: "qasper", meanPromptTokens: 3_600, outputTokens: 1_024, spread: 0.25)
        case "govreport": self.init(name: "govreport", meanPromptTokens: 8_700, outputTokens: 1_024, spread: 0.25)
        case "narrativeqa": self.init(name: "narrativeqa", meanPromptTokens: 18_400, outputTokens: 1_024, spread: 0.25)
        default:
            let parts = text.split(separator: ":")
            guard parts.count == 2, let input = Int(parts[0]), let output = Int(parts[1]), input > 0, output > 0 else {
                throw ParseError(text: text)
            }
            self.init(name: text, meanPromptTokens: input, outputTokens: output, spread: 0)
        }
    }

    /// A workload of fixed mean lengths.
    public init(name: String, meanPromptTokens: Int, outputTokens: Int, spread: Double) {
        self.name = name
        self.meanPromptTokens = meanPromptTokens
        self.outputTokens = outputTokens
        self.spread = spread
    }

    public var description: String { name }

    /// One generated request.
    public struct Request: Sendable, Hashable {
        /// The prompt's token ids.
        public var prompt: [Int]
        /// Tokens to generate.
        public var maxTokens: Int
    }

    /// Prompt lengths multiplied by `scale`: uniform in mean * (1 ± spread), as `requests` draws them.
    public func promptLengths(scale: Double) -> LengthDistribution {
        let mean = Double(meanPromptTokens) * scale
        let low = max(1, Int((mean * (1 - spread)).rounded()))
        let high = max(low, Int((mean * (1 + spread)).rounded()))
        return low == high ? .fixed(low) : .uniform(low...high)
    }

    /// Output lengths multiplied by `scale` (fixed).
    public func outputLengths(scale: Double) -> LengthDistribution {
        .fixed(max(1, Int((Double(outputTokens) * scale).rounded())))
    }

    /// `count` requests with lengths multiplied by `scale`, token ids below `vocabulary`.
    public func requests(count: Int, scale: Double, vocabulary: Int, seed: UInt64 = 42) -> [Request] {
        var random = SeededGenerator(seed: seed)
        let output = max(1, Int((Double(outputTokens) * scale).rounded()))
        return (0..<count).map { _ in
            // Uniform in mean * (1 ± spread): the mean is kept, lengths differ between requests.
            let factor = 1 + spread * (2 * Double.random(in: 0..<1, using: &random) - 1)
            let length = max(1, Int((Double(meanPromptTokens) * scale * factor).rounded()))
            let prompt = (0..<length).map { _ in Int(random.next() % UInt64(vocabulary)) }
            return Request(prompt: prompt, maxTokens: output)
        }
    }
}
