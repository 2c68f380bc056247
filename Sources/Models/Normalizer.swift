import Foundation

/// Text rewriting applied to each segment before pre-tokenization, as tokenizer.json's
/// `normalizer` states it: NFC/NFKC, Prepend and Replace (what Llama 2 and Qwen2 use).
struct Normalizer: Sendable {
    enum Step: Sendable {
        case nfc, nfkc
        case prepend(String)
        case replace(String, with: String)
    }

    let steps: [Step]

    init(json: [String: Any]?, file: String) throws(ModelError) {
        var steps: [Step] = []
        try Self.parse(json, into: &steps, file: file)
        self.steps = steps
    }

    private static func parse(_ json: [String: Any]?, into steps: inout [Step], file: String) throws(ModelError) {
        guard let json else { return }
        let type = json["type"] as? String ?? ""
        switch type {
        case "Sequence":
            for item in json["normalizers"] as? [[String: Any]] ?? [] { try parse(item, into: &steps, file: file) }
        case "NFC": steps.append(.nfc)
        case "NFKC": steps.append(.nfkc)
        case "Prepend": steps.append(.prepend(json["prepend"] as? String ?? ""))
        case "Replace":
            guard let pattern = (json["pattern"] as? [String: Any])?["String"] as? String else {
                throw .unsupportedTokenizer(file, reason: "Replace normalizer with a regex pattern is not supported")
            }
            steps.append(.replace(pattern, with: json["content"] as? String ?? ""))
        default:
            throw .unsupportedTokenizer(file, reason: "normalizer type '\(type)' is not supported")
        }
    }

    /// Whether the pipeline puts SentencePiece's "▁" in place of spaces.
    var usesMetaspace: Bool {
        steps.contains { if case .replace(" ", "▁") = $0 { return true } else { return false } }
    }

    func apply(_ text: String) -> String {
        var s = text
        for step in steps {
            switch step {
            case .nfc: s = s.precomposedStringWithCanonicalMapping
            case .nfkc: s = s.precomposedStringWithCompatibilityMapping
            case .prepend(let prefix): if !s.isEmpty { s = prefix + s }
            case .replace(let pattern, let content): s = s.replacingLiterally(pattern, with: content)
            }
        }
        return s
    }
}
