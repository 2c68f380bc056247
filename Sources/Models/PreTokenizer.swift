import Foundation

/// How text is cut into pieces before BPE, as a tokenizer.json states it.
package struct PreTokenizer: @unchecked Sendable {
    /// One step of the pipeline.
    enum Step {
        /// Cut at regex matches, keeping matches and the text between as pieces ("Isolated").
        case split(NSRegularExpression)
        /// Byte-level: optionally the GPT-2 regex split, optionally a leading space added.
        case byteLevel(addPrefixSpace: Bool, regex: NSRegularExpression?)
        /// SentencePiece's Metaspace: spaces become "▁", a "▁" prepended, optionally a cut before
        /// each "▁".
        case metaspace(prepend: Bool, split: Bool)
        /// Each digit its own piece.
        case digits
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
            let behavior = json["behavior"] as? String ?? "Isolated"
            guard behavior == "Isolated", (json["invert"] as? Bool ?? false) == false else {
                throw .unsupportedTokenizer(file, reason: "Split with behavior \(behavior) is not supported (only Isolated)")
            }
            if let text = pattern?["Regex"] as? String {
                steps.append(.split(try regex(text, file: file)))
            } else if let text = pattern?["String"] as? String {
                steps.append(.split(try regex(NSRegularExpression.escapedPattern(for: text), file: file)))
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
            steps.append(.metaspace(prepend: scheme != "never", split: json["split"] as? Bool ?? true))
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
            case .split(let regex):
                pieces = pieces.flatMap { Self.split($0, regex) }
            case .byteLevel(let addPrefixSpace, let regex):
                if addPrefixSpace, let head = pieces.first, !head.hasPrefix(" ") { pieces[0] = " " + head }
                if let regex { pieces = pieces.flatMap { Self.split($0, regex) } }
            case .metaspace(let prepend, let split):
                pieces = pieces.map { $0.replacingOccurrences(of: " ", with: "▁") }
                if prepend, first, let head = pieces.first, !head.hasPrefix("▁") { pieces[0] = "▁" + head }
                if split { pieces = pieces.flatMap(Self.splitBeforeMetaspace) }
            case .digits:
                pieces = pieces.flatMap(Self.splitDigits)
            }
        }
        return pieces.filter { !$0.isEmpty }
    }

    package static func split(_ text: String, _ regex: NSRegularExpression) -> [String] {
        let ns = text as NSString
        var result: [String] = []
        var last = 0
        for match in regex.matches(in: text, range: NSRange(location: 0, length: ns.length)) where match.range.length > 0 {
            if match.range.location > last {
                result.append(ns.substring(with: NSRange(location: last, length: match.range.location - last)))
            }
            result.append(ns.substring(with: match.range))
            last = match.range.location + match.range.length
        }
        if last < ns.length { result.append(ns.substring(from: last)) }
        return result
    }

    private static func splitBeforeMetaspace(_ text: String) -> [String] {
        var result: [String] = []
        var current = ""
        for c in text {
            if c == "▁", !current.isEmpty {
                result.append(current)
                current = ""
            }
            current.append(c)
        }
        if !current.isEmpty { result.append(current) }
        return result
    }

    private static func splitDigits(_ text: String) -> [String] {
        var result: [String] = []
        var current = ""
        for c in text {
            if c.isASCII, c.isNumber {
                if !current.isEmpty {
                    result.append(current)
                    current = ""
                }
                result.append(String(c))
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { result.append(current) }
        return result
    }
}
