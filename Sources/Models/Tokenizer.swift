import Foundation

/// A BPE tokenizer read from an HF `tokenizer.json`: byte-level BPE (GPT-2, Llama 3, Qwen2) or
/// SentencePiece-style BPE with byte fallback (Llama 2, Mistral, TinyLlama), plus the added and
/// special tokens, the BOS the post-processor adds, and the EOS ids of the model directory.
public final class Tokenizer: Sendable {
    /// Which of the two BPE flavours this is.
    public enum Kind: String, Sendable {
        /// Bytes mapped to printable characters, split by a regex first.
        case byteLevel
        /// Spaces as "▁", unknown characters spelled as `<0xXX>` byte tokens.
        case sentencePiece
    }

    /// An added token (special or not), matched verbatim in the input before BPE.
    public struct AddedToken: Sendable, Hashable {
        public var id: Int
        public var content: String
        public var special: Bool
    }

    public let kind: Kind
    /// Every token id's text as the vocabulary spells it.
    public let tokens: [String]
    /// Token ids by vocabulary text, compared byte for byte (`TokenText`).
    let vocabulary: [TokenText: Int32]
    let merger: BPEMerger
    let normalizer: Normalizer
    let preTokenizer: PreTokenizer
    /// Added tokens, longest first, so the longest match wins.
    public let addedTokens: [AddedToken]
    let byteFallback: Bool
    let ignoreMerges: Bool
    /// SentencePiece-style text is one piece for BPE; when no vocabulary token has a "▁" right
    /// after another character, no merge can cross a word start, so BPE may run word by word
    /// (the same tokens, without the quadratic cost on long prompts).
    let splitsAtWordStarts: Bool
    let unknownID: Int?
    /// The bytes each token id decodes to.
    let bytesOfToken: [[UInt8]]
    let specialIDs: Set<Int>
    /// Whether `decode` drops one leading space (SentencePiece's decoder does).
    let stripsLeadingSpace: Bool
    /// Which ids are byte-fallback tokens (`<0xXX>`) that the decoder's ByteFallback step joins:
    /// each run of them becomes its text when the run is valid UTF-8, else one U+FFFD per token
    /// (as HF `tokenizers` does). Empty for byte-level BPE, whose bytes are decoded all together.
    let byteFallbackTokens: [Bool]
    /// Ids the post-processor puts before every encoded text (the BOS of Llama models).
    public let prefixIDs: [Int]
    /// The BOS token id, when the model has one.
    public let bosTokenID: Int?
    /// Ids that end generation.
    public let eosTokenIDs: Set<Int>

    /// Number of ids (the largest id plus one).
    public var vocabularySize: Int { tokens.count }

    /// Reads `tokenizer.json` in `directory`, with EOS and BOS from `tokenizer_config.json`,
    /// `generation_config.json` and `config.json` when present.
    public convenience init(directory: String) throws(ModelError) {
        let path = directory + "/tokenizer.json"
        let json = try JSONFile(path: path)
        let tokenizerConfig = try? JSONFile(path: directory + "/tokenizer_config.json")
        let generation = try? JSONFile(path: directory + "/generation_config.json")
        let model = try? JSONFile(path: directory + "/config.json")
        try self.init(
            json: json.object, file: path, tokenizerConfig: tokenizerConfig?.object ?? [:],
            extraEOS: (generation?.intList("eos_token_id") ?? []) + (model?.intList("eos_token_id") ?? []))
    }

    /// A BPE merge by token ids: `left` then `right` become `merged`.
    struct MergeIDs: Equatable {
        let left: Int
        let right: Int
        let merged: Int
    }

    /// A tokenizer from parsed tokenizer.json and tokenizer_config.json objects; `merges`, in rank
    /// order, stand for the model's merge list where they were derived as ids (a GGUF
    /// SentencePiece vocabulary: hundreds of thousands, which as strings would be looked up again).
    init(json: [String: Any], file: String, tokenizerConfig: [String: Any], extraEOS: [Int], merges derived: [MergeIDs]? = nil)
        throws(ModelError)
    {
        guard let model = json["model"] as? [String: Any] else { throw .badJSON(file, reason: "has no 'model'") }
        let modelType = model["type"] as? String ?? "BPE"
        guard modelType == "BPE" else {
            throw .unsupportedTokenizer(file, reason: "model type '\(modelType)' (only BPE is supported)")
        }
        var vocabulary: [TokenText: Int32] = [:]
        var maxID = -1
        if let vocab = model["vocab"] as? [String: Any] {
            for (text, value) in vocab {
                guard let id = (value as? NSNumber)?.intValue, id >= 0 else {
                    throw .badJSON(file, reason: "vocabulary entry '\(text)' has no integer id")
                }
                vocabulary[TokenText(text)] = Int32(id)
                maxID = max(maxID, id)
            }
        } else if let texts = model["vocab"] as? [String] {
            // Tokens in id order (a GGUF file's list): canonically equivalent spellings stay apart,
            // which a Swift dictionary keyed by String would merge.
            vocabulary.reserveCapacity(texts.count)
            for (id, text) in texts.enumerated() {
                guard vocabulary.updateValue(Int32(id), forKey: TokenText(text)) == nil else {
                    throw .badJSON(file, reason: "the vocabulary holds '\(text)' twice")
                }
            }
            maxID = texts.count - 1
        } else {
            throw .badJSON(file, reason: "has no model.vocab")
        }
        var added: [AddedToken] = []
        for item in json["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = (item["id"] as? NSNumber)?.intValue, let content = item["content"] as? String else { continue }
            added.append(AddedToken(id: id, content: content, special: item["special"] as? Bool ?? false))
            vocabulary[TokenText(content)] = Int32(id)
            maxID = max(maxID, id)
        }
        var tokens = [String](repeating: "", count: maxID + 1)
        for (text, id) in vocabulary { tokens[Int(id)] = text.string }

        var merges: [BPEMerger.Pair: (rank: Int32, merged: Int32)] = [:]
        let mergeList = derived == nil ? model["merges"] as? [Any] ?? [] : []
        merges.reserveCapacity(derived?.count ?? mergeList.count)
        for (rank, merge) in (derived ?? []).enumerated() {
            merges[BPEMerger.Pair(left: Int32(merge.left), right: Int32(merge.right))] = (Int32(rank), Int32(merge.merged))
        }
        for (rank, item) in mergeList.enumerated() {
            let parts: [String]
            if let text = item as? String {
                parts = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            } else if let pair = item as? [String] {
                parts = pair
            } else {
                throw .badJSON(file, reason: "merge \(rank) is neither \"a b\" nor [a, b]")
            }
            guard parts.count == 2, let l = vocabulary[TokenText(parts[0])], let r = vocabulary[TokenText(parts[1])],
                let m = vocabulary[TokenText(parts[0] + parts[1])]
            else {
                throw .badJSON(file, reason: "merge \(rank) (\(parts)) names tokens that are not in the vocabulary")
            }
            merges[BPEMerger.Pair(left: l, right: r)] = (Int32(rank), m)
        }

        let normalizer = try Normalizer(json: json["normalizer"] as? [String: Any], file: file)
        let preTokenizer = try PreTokenizer(json: json["pre_tokenizer"] as? [String: Any], file: file)
        let decoder = json["decoder"] as? [String: Any]
        let decoderTypes = Self.decoderTypes(decoder)
        let kind: Kind
        if preTokenizer.isByteLevel || decoderTypes.contains("ByteLevel") {
            kind = .byteLevel
        } else if normalizer.usesMetaspace || decoderTypes.contains("Metaspace")
            || decoderTypes.contains("ByteFallback") || model["byte_fallback"] as? Bool == true
        {
            kind = .sentencePiece
        } else {
            throw .unsupportedTokenizer(file, reason: "neither byte-level nor SentencePiece-style BPE (decoder \(decoderTypes))")
        }

        let specialIDs = Set(added.filter(\.special).map(\.id))
        let addedIDs = Set(added.map(\.id))
        var bytes = [[UInt8]](repeating: [], count: tokens.count)
        for (id, text) in tokens.enumerated() {
            if addedIDs.contains(id) {
                bytes[id] = Array(text.utf8)
            } else if kind == .byteLevel {
                bytes[id] = ByteLevelAlphabet.decode(text) ?? Array(text.utf8)
            } else if let byte = Self.byteFallbackValue(text) {
                bytes[id] = [byte]
            } else {
                bytes[id] = Array(text.replacingLiterally("▁", with: " ").utf8)
            }
        }

        func idOf(_ setting: Any?) -> Int? {
            let name = (setting as? String) ?? ((setting as? [String: Any])?["content"] as? String)
            return name.flatMap { vocabulary[TokenText($0)] }.map(Int.init)
        }
        var prefix = Self.postProcessorPrefix(json["post_processor"] as? [String: Any], vocabulary: vocabulary)
        let bos = idOf(tokenizerConfig["bos_token"]) ?? prefix.first
        if prefix.isEmpty, tokenizerConfig["add_bos_token"] as? Bool == true, let bos { prefix = [bos] }
        var eos = Set(extraEOS)
        if let id = idOf(tokenizerConfig["eos_token"]) { eos.insert(id) }

        self.kind = kind
        self.tokens = tokens
        self.vocabulary = vocabulary
        self.merger = BPEMerger(merges: merges)
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.addedTokens = added.sorted { $0.content.utf8.count > $1.content.utf8.count }
        self.byteFallback = model["byte_fallback"] as? Bool ?? false
        self.ignoreMerges = model["ignore_merges"] as? Bool ?? false
        self.splitsAtWordStarts =
            kind == .sentencePiece
            && !tokens.contains { token in
                var previous: Unicode.Scalar?
                for c in token.unicodeScalars {
                    if c == "▁", let p = previous, p != "▁" { return true }
                    previous = c
                }
                return false
            }
        self.unknownID = (model["unk_token"] as? String).flatMap { vocabulary[TokenText($0)] }.map(Int.init)
        self.bytesOfToken = bytes
        self.specialIDs = specialIDs
        self.stripsLeadingSpace =
            kind == .sentencePiece
            && (decoderTypes.contains("Strip") || decoderTypes.contains("Metaspace"))
        self.byteFallbackTokens =
            kind == .sentencePiece && decoderTypes.contains("ByteFallback")
            ? tokens.enumerated().map { id, text in !addedIDs.contains(id) && Self.byteFallbackValue(text) != nil } : []
        self.prefixIDs = prefix
        self.bosTokenID = bos
        self.eosTokenIDs = eos
    }

    private static func decoderTypes(_ json: [String: Any]?) -> [String] {
        guard let json, let type = json["type"] as? String else { return [] }
        if type == "Sequence" { return (json["decoders"] as? [[String: Any]] ?? []).flatMap { decoderTypes($0) } }
        return [type]
    }

    /// The ids a TemplateProcessing post-processor puts before a single sequence.
    private static func postProcessorPrefix(_ json: [String: Any]?, vocabulary: [TokenText: Int32]) -> [Int] {
        guard let json, let type = json["type"] as? String else { return [] }
        if type == "Sequence" {
            for item in json["processors"] as? [[String: Any]] ?? [] {
                let prefix = postProcessorPrefix(item, vocabulary: vocabulary)
                if !prefix.isEmpty { return prefix }
            }
            return []
        }
        guard type == "TemplateProcessing", let single = json["single"] as? [[String: Any]] else { return [] }
        var prefix: [Int] = []
        for piece in single {
            guard let special = piece["SpecialToken"] as? [String: Any], let name = special["id"] as? String else { break }
            if let ids = ((json["special_tokens"] as? [String: Any])?[name] as? [String: Any])?["ids"] as? [NSNumber] {
                prefix += ids.map(\.intValue)
            } else if let id = vocabulary[TokenText(name)] {
                prefix.append(Int(id))
            }
        }
        return prefix
    }

    /// The byte of a `<0xXX>` token.
    static func byteFallbackValue(_ text: String) -> UInt8? {
        guard text.count == 6, text.hasPrefix("<0x"), text.hasSuffix(">") else { return nil }
        return UInt8(text.dropFirst(3).prefix(2), radix: 16)
    }

    /// Whether `id` is a special token (BOS, EOS, chat markers).
    public func isSpecial(_ id: Int) -> Bool { specialIDs.contains(id) }

    /// The id of a token spelled `text` in the vocabulary (or an added token's content).
    public func id(of text: String) -> Int? { vocabulary[TokenText(text)].map(Int.init) }

    // MARK: Encoding

    /// Token ids of `text`: added tokens in it are matched verbatim, the rest goes through the
    /// normalizer, pre-tokenizer and BPE. `addSpecialTokens` puts the post-processor's prefix
    /// (BOS) first.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids = addSpecialTokens ? prefixIDs : []
        var first = true
        for segment in splitOnAddedTokens(text) {
            switch segment {
            case .added(let id): ids.append(id)
            case .text(let s):
                let normalized = normalizer.apply(s)
                for piece in preTokenizer.pieces(normalized, first: first) {
                    if splitsAtWordStarts {
                        for word in Self.wordsAtMetaspace(piece) { encodePiece(word, into: &ids) }
                    } else {
                        encodePiece(piece, into: &ids)
                    }
                }
            }
            first = false
        }
        return ids
    }

    /// `text` cut before each "▁" that follows another character.
    static func wordsAtMetaspace(_ text: String) -> [String] {
        // Scalars, not Characters: a combining mark after "▁" must not hide the "▁".
        var words: [String] = []
        var current = String.UnicodeScalarView()
        var previous: Unicode.Scalar?
        for c in text.unicodeScalars {
            if c == "▁", let p = previous, p != "▁" {
                words.append(String(current))
                current = String.UnicodeScalarView()
            }
            current.append(c)
            previous = c
        }
        if !current.isEmpty { words.append(String(current)) }
        return words
    }

    private enum Segment {
        case text(String)
        case added(Int)
    }

    private func splitOnAddedTokens(_ text: String) -> [Segment] {
        guard !addedTokens.isEmpty else { return [.text(text)] }
        let bytes = Array(text.utf8)
        var segments: [Segment] = []
        var start = 0
        var i = 0
        let candidates = addedTokens.map { (Array($0.content.utf8), $0.id) }.filter { !$0.0.isEmpty }
        while i < bytes.count {
            var matched: ([UInt8], Int)?
            for candidate in candidates where candidate.0[0] == bytes[i] && i + candidate.0.count <= bytes.count {
                if bytes[i..<(i + candidate.0.count)].elementsEqual(candidate.0) {
                    matched = candidate
                    break
                }
            }
            if let (content, id) = matched {
                if i > start { segments.append(.text(String(decoding: bytes[start..<i], as: UTF8.self))) }
                segments.append(.added(id))
                i += content.count
                start = i
            } else {
                i += 1
            }
        }
        if start < bytes.count { segments.append(.text(String(decoding: bytes[start...], as: UTF8.self))) }
        return segments
    }

    private func encodePiece(_ piece: String, into ids: inout [Int]) {
        let spelled = kind == .byteLevel ? ByteLevelAlphabet.encode(piece.utf8) : piece
        if ignoreMerges, let whole = vocabulary[TokenText(spelled)] {
            ids.append(Int(whole))
            return
        }
        // Symbols: one per character; a character outside the vocabulary is kept as -1 - index
        // into `unknown` so byte fallback can spell it after merging.
        var symbols: [Int32] = []
        var unknown: [String] = []
        for scalar in spelled.unicodeScalars {
            if let id = vocabulary[TokenText(scalar)] {
                symbols.append(id)
            } else {
                unknown.append(String(scalar))
                symbols.append(Int32(-unknown.count))
            }
        }
        merger.merge(&symbols)
        var lastWasUnknown = false
        for symbol in symbols {
            if symbol >= 0 {
                ids.append(Int(symbol))
                lastWasUnknown = false
            } else if byteFallback {
                for byte in unknown[Int(-symbol) - 1].utf8 {
                    if let id = vocabulary[TokenText(String(format: "<0x%02X>", byte))] { ids.append(Int(id)) }
                }
            } else if let unknownID, !lastWasUnknown {
                ids.append(unknownID)
                lastWasUnknown = true
            }
        }
    }

    // MARK: Decoding

    /// The bytes token `id` stands for (empty for ids outside the vocabulary).
    public func bytes(of id: Int) -> [UInt8] {
        id >= 0 && id < bytesOfToken.count ? bytesOfToken[id] : []
    }

    /// Whether `id` is a byte-fallback token whose runs decode together (see `byteRunText`).
    public func isByteFallbackToken(_ id: Int) -> Bool {
        id >= 0 && id < byteFallbackTokens.count && byteFallbackTokens[id]
    }

    /// Whether runs of byte-fallback tokens decode apart from the tokens around them.
    public var decodesByteRunsApart: Bool { !byteFallbackTokens.isEmpty }

    /// The text of a run of byte-fallback tokens' bytes: itself when it is valid UTF-8, otherwise
    /// one U+FFFD per byte (HF `tokenizers`' ByteFallback decoder).
    public static func byteRunText(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        // Decoding replaced something exactly when the text no longer spells the same bytes.
        return text.utf8.elementsEqual(bytes) ? text : String(repeating: "\u{FFFD}", count: bytes.count)
    }

    /// The text of `ids`; special tokens are left out when `skipSpecialTokens`. Byte-level BPE
    /// decodes all bytes together (invalid sequences become U+FFFD); SentencePiece decodes each
    /// run of byte-fallback tokens on its own (`byteRunText`) and strips one leading space where
    /// its decoder says so.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        var text = ""
        var run: [UInt8] = []
        for id in ids where !(skipSpecialTokens && specialIDs.contains(id)) {
            if decodesByteRunsApart && !isByteFallbackToken(id) {
                if !run.isEmpty { text += Self.byteRunText(run) }
                run = []
                text += String(decoding: bytes(of: id), as: UTF8.self)
            } else {
                run += bytes(of: id)
            }
        }
        if !run.isEmpty { text += decodesByteRunsApart ? Self.byteRunText(run) : String(decoding: run, as: UTF8.self) }
        // The first scalar: a space followed by a combining mark is one Character in Swift.
        if stripsLeadingSpace, text.unicodeScalars.first == " " { text.unicodeScalars.removeFirst() }
        return text
    }
}

/// A token's text as a dictionary key that compares the UTF-8 bytes. Swift's `String` equality is
/// canonical equivalence ("Å" as U+00C5 equals U+0041 U+030A, and U+212B), while a vocabulary
/// (and HF `tokenizers`) keeps such spellings as different tokens: Gemma's 262,144 tokens hold
/// canonically equivalent pairs.
struct TokenText: Hashable, Sendable {
    let utf8: [UInt8]

    init(_ text: String) { utf8 = Array(text.utf8) }

    init(_ scalar: Unicode.Scalar) { utf8 = Array(String(scalar).utf8) }

    /// The text itself.
    var string: String { String(decoding: utf8, as: UTF8.self) }
}
