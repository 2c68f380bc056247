import Foundation

/// How text is cut into pieces before BPE, as a tokenizer.json states it.
package struct PreTokenizer: @unchecked Sendable {
    /// One step of the pipeline.
    enum Step {
        /// Cut at regex matches; `behavior` says where each match goes.
        case split(NSRegularExpression, SplitBehavior)
        /// Byte-level: optionally the GPT-2 regex split, optionally a leading space added.
        case byteLevel(addPrefixSpace: Bool, regex: NSRegularExpression?)
        /// SentencePiece's Metaspace: spaces become "▁", a "▁" prepended (to the input's first
        /// segment, or with `everySegment` to every segment between added tokens), optionally a
        /// cut before each "▁".
        case metaspace(prepend: Bool, everySegment: Bool, split: Bool)
        /// Each digit its own piece.
        case digits
    }

    /// Where a `Split` step puts the text its pattern matches (tokenizers' `SplitDelimiterBehavior`).
    package enum SplitBehavior: String {
        /// A piece of its own.
        case isolated = "Isolated"
        /// Dropped.
        case removed = "Removed"
        /// Joined to the piece before it.
        case mergedWithPrevious = "MergedWithPrevious"
        /// Joined to the piece after it.
        case mergedWithNext = "MergedWithNext"
    }

    let steps: [Step]

    /// GPT-2's pattern, used by ByteLevel with `use_regex`.
    static let gpt2Pattern =
        #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// Reads the `pre_tokenizer` object of tokenizer.json (nil: no pre-tokenizer).
    init(json: [String: Any]?, file: String) throws(ModelError) {
        var steps: [Step] = []
        try Self.parse(json, into: &steps, file: file)
        self.steps = steps
    }

    private static func regex(_ pattern: String, file: String) throws(ModelError) -> NSRegularExpression {
        do { return try NSRegularExpression(pattern: pattern) } catch {
            throw .unsupportedTokenizer(file, reason: "the split pattern \(pattern) does not compile: \(error)")
        }
    }

    private static func parse(_ json: [String: Any]?, into steps: inout [Step], file: String) throws(ModelError) {
        guard let json else { return }
        let type = json["type"] as? String ?? ""
        switch type {
        case "Sequence":
            for item in json["pretokenizers"] as? [[String: Any]] ?? [] { try parse(item, into: &steps, file: file) }
        case "Split":
            let pattern = json["pattern"] as? [String: Any]
            let name = json["behavior"] as? String ?? "Isolated"
            guard let behavior = SplitBehavior(rawValue: name), (json["invert"] as? Bool ?? false) == false else {
                throw .unsupportedTokenizer(
                    file, reason: "Split with behavior \(name)\((json["invert"] as? Bool ?? false) ? ", inverted," : "") is not supported")
            }
            if let text = pattern?["Regex"] as? String {
                steps.append(.split(try regex(text, file: file), behavior))
            } else if let text = pattern?["String"] as? String {
                steps.append(.split(try regex(NSRegularExpression.escapedPattern(for: text), file: file), behavior))
            } else {
                throw .unsupportedTokenizer(file, reason: "Split without a pattern")
            }
        case "ByteLevel":
            let useRegex = json["use_regex"] as? Bool ?? true
            steps.append(
                .byteLevel(
                    addPrefixSpace: json["add_prefix_space"] as? Bool ?? false,
                    regex: useRegex ? try regex(gpt2Pattern, file: file) : nil))
        case "Metaspace":
            let scheme = json["prepend_scheme"] as? String ?? ((json["add_prefix_space"] as? Bool ?? true) ? "always" : "never")
            steps.append(.metaspace(prepend: scheme != "never", everySegment: scheme == "always", split: json["split"] as? Bool ?? true))
        case "Digits":
            guard json["individual_digits"] as? Bool ?? false else {
                throw .unsupportedTokenizer(file, reason: "Digits without individual_digits is not supported")
            }
            steps.append(.digits)
        default:
            throw .unsupportedTokenizer(file, reason: "pre_tokenizer type '\(type)' is not supported")
        }
    }

    /// Whether a ByteLevel step maps pieces to the byte alphabet.
    var isByteLevel: Bool {
        steps.contains { if case .byteLevel = $0 { return true } else { return false } }
    }

    /// Cuts `text` (one segment between added tokens; `first` when it starts the input).
    func pieces(_ text: String, first: Bool) -> [String] {
        var pieces = [text]
        for step in steps {
            switch step {
            case .split(let regex, let behavior):
                pieces = pieces.flatMap { Self.split($0, regex, behavior: behavior) }
            case .byteLevel(let addPrefixSpace, let regex):
                if addPrefixSpace, let head = pieces.first, !head.startsLiterally(with: " ") { pieces[0] = " " + head }
                if let regex { pieces = pieces.flatMap { Self.split($0, regex) } }
            case .metaspace(let prepend, let everySegment, let split):
                pieces = pieces.map { $0.replacingLiterally(" ", with: "▁") }
                if prepend, first || everySegment, let head = pieces.first, !head.startsLiterally(with: "▁") { pieces[0] = "▁" + head }
                if split { pieces = pieces.flatMap(Self.splitBeforeMetaspace) }
            case .digits:
                pieces = pieces.flatMap(Self.splitDigits)
            }
        }
        return pieces.filter { !$0.isEmpty }
    }

    package static func split(_ text: String, _ regex: NSRegularExpression, behavior: SplitBehavior = .isolated) -> [String] {
        let ns = text as NSString
        var result: [String] = []
        var last = 0
        // With mergedWithNext, a match waits here for the text after it.
        var carried = ""
        for match in regex.matches(in: text, range: NSRange(location: 0, length: ns.length)) where match.range.length > 0 {
            let between = match.range.location > last ? ns.substring(with: NSRange(location: last, length: match.range.location - last)) : ""
            let matched = ns.substring(with: match.range)
            switch behavior {
            case .isolated:
                if !between.isEmpty { result.append(between) }
                result.append(matched)
            case .removed:
                if !between.isEmpty { result.append(between) }
            case .mergedWithPrevious:
                result.append(between + matched)
            case .mergedWithNext:
                if !(carried + between).isEmpty { result.append(carried + between) }
                carried = matched
            }
            last = match.range.location + match.range.length
        }
        let tail = last < ns.length ? ns.substring(from: last) : ""
        if !(carried + tail).isEmpty { result.append(carried + tail) }
        return result
    }

    // Both cut between Unicode scalars, as tokenizers does between Rust chars: a combining mark
    // after "▁" or a digit is its own scalar, though Swift joins the two into one Character.
    private static func splitBeforeMetaspace(_ text: String) -> [String] {
        var result: [String] = []
        var current = String.UnicodeScalarView()
        for c in text.unicodeScalars {
            if c == "▁", !current.isEmpty {
                result.append(String(current))
                current = String.UnicodeScalarView()
            }
            current.append(c)
        }
        if !current.isEmpty { result.append(String(current)) }
        return result
    }

    /// Rust's `char::is_numeric`: general categories Nd, Nl and No (so "½" and "Ⅻ" too).
    static func isNumeric(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    private static func splitDigits(_ text: String) -> [String] {
        var result: [String] = []
        var current = String.UnicodeScalarView()
        for c in text.unicodeScalars {
            if isNumeric(c) {
                if !current.isEmpty {
                    result.append(String(current))
                    current = String.UnicodeScalarView()
                }
                result.append(String(c))
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { result.append(String(current)) }
        return result
    }
}
