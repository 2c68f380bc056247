import Foundation

extension Tokenizer {
    /// GGUF's token types (`tokenizer.ggml.token_type`), as llama.cpp numbers them.
    enum GGUFTokenType: Int {
        case normal = 1
        case unknown, control, userDefined, unused, byte
    }

    /// Token texts that end generation when they are control tokens, beside the ids the file
    /// names (llama.cpp keeps the same list, for files that name only one EOS).
    static let endOfGenerationTexts: Set<String> = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<|end_of_text|>",
    ]

    /// Architectures whose `llama` vocabulary is Gemma's SentencePiece model (transformers'
    /// `gemma_tokenizer` in integrations/gguf/gguf_tokenizer_mapping.py picks by the same names).
    static let gemmaVocabularyArchitectures: Set<String> = ["gemma", "gemma2", "gemma3"]

    /// The tokenizer a GGUF file's metadata describes: `tokenizer.ggml.model` `gpt2` (byte-level
    /// BPE with `tokenizer.ggml.merges` and the pre-tokenizer named by `tokenizer.ggml.pre`) or
    /// `llama` (SentencePiece BPE whose merges follow `tokenizer.ggml.scores`, with byte
    /// fallback). It is the tokenizer.json HF would write for the same model, read by the same code.
    ///
    /// Gemma's vocabulary (`llama` in a `gemma*` file) is read as transformers reads it from GGUF:
    /// llama.cpp's converter stores its whitespace pieces of 2 to 31 spaces with real spaces as
    /// user-defined tokens, while HF's tokenizer has them as "▁▁"... in the vocabulary, reached by
    /// merges; and its merges follow the tokens' order in the file (the pieces' scores agree with
    /// it for normal tokens but give every user-defined and control token -1000).
    public convenience init(gguf file: GGUFFile) throws(ModelError) {
        let path = file.path
        guard let model = try file.string("tokenizer.ggml.model") else {
            throw .badConfig(key: "tokenizer.ggml.model", file: path, reason: "is missing")
        }
        let architecture = try file.string("general.architecture") ?? ""
        let gemma = model == "llama" && Self.gemmaVocabularyArchitectures.contains(architecture)
        guard let tokenValues = try file.array("tokenizer.ggml.tokens") else {
            throw .badConfig(key: "tokenizer.ggml.tokens", file: path, reason: "is missing")
        }
        var tokens: [String] = []
        tokens.reserveCapacity(tokenValues.count)
        for (i, value) in tokenValues.enumerated() {
            guard let text = value.stringValue else {
                throw .badConfig(key: "tokenizer.ggml.tokens", file: path, reason: "holds a \(value.typeName), not strings")
            }
            tokens.append(text.isEmpty ? "[EMPTY_\(i)]" : text)
        }
        // Gemma: "  " → "▁▁", a vocabulary token like any other (not an added token).
        var respelled = Set<Int>()
        if gemma {
            for (id, text) in tokens.enumerated() where text.unicodeScalars.count > 1 && text.unicodeScalars.allSatisfy({ $0 == " " }) {
                tokens[id] = String(repeating: "▁", count: text.unicodeScalars.count)
                respelled.insert(id)
            }
        }
        let types = try (file.array("tokenizer.ggml.token_type") ?? []).map { value throws(ModelError) -> GGUFTokenType in
            guard let raw = value.intValue else {
                throw .badConfig(key: "tokenizer.ggml.token_type", file: path, reason: "holds a \(value.typeName), not integers")
            }
            return GGUFTokenType(rawValue: raw) ?? .normal
        }
        guard types.isEmpty || types.count == tokens.count else {
            throw .badConfig(key: "tokenizer.ggml.token_type", file: path, reason: "has \(types.count) entries for \(tokens.count) tokens")
        }
        func type(_ id: Int) -> GGUFTokenType { types.isEmpty ? .normal : types[id] }
        func token(_ key: String) throws(ModelError) -> Int? {
            guard let id = try file.int(key) else { return nil }
            guard id >= 0, id < tokens.count else {
                throw .badConfig(key: key, file: path, reason: "is \(id), outside the \(tokens.count) tokens")
            }
            return id
        }

        var added: [[String: Any]] = []
        for (id, text) in tokens.enumerated() {
            let kind = type(id)
            if kind == .control || (kind == .userDefined && !respelled.contains(id)) {
                added.append(["id": NSNumber(value: id), "content": text, "special": kind == .control])
            }
        }

        var json: [String: Any] = ["added_tokens": added]
        // The tokens in id order (see `TokenText`); a text held twice is refused there.
        var bpe: [String: Any] = ["type": "BPE", "vocab": tokens]
        var addsBOS: Bool
        var derivedMerges: [MergeIDs]?  // a SentencePiece vocabulary's, found from the tokens themselves
        switch model {
        case "gpt2":
            guard let pre = try file.string("tokenizer.ggml.pre") else {
                throw .badConfig(key: "tokenizer.ggml.pre", file: path, reason: "is missing; HiFC needs it to split text like the model's tokenizer")
            }
            guard let entry = GGUFPreTokenizers.table[pre] else {
                throw .badConfig(
                    key: "tokenizer.ggml.pre", file: path,
                    reason:
                        "is '\(pre)', a pre-tokenizer HiFC does not know (supported: \(GGUFPreTokenizers.table.keys.sorted().joined(separator: ", ")))"
                )
            }
            guard let merges = try file.array("tokenizer.ggml.merges") else {
                throw .badConfig(key: "tokenizer.ggml.merges", file: path, reason: "is missing")
            }
            bpe["merges"] = try merges.map { value throws(ModelError) -> String in
                guard let merge = value.stringValue else {
                    throw .badConfig(key: "tokenizer.ggml.merges", file: path, reason: "holds a \(value.typeName), not strings")
                }
                return merge
            }
            bpe["ignore_merges"] = entry.ignoreMerges
            json["pre_tokenizer"] = entry.preTokenizer
            json["normalizer"] = entry.normalizer
            json["decoder"] = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true]
            addsBOS = entry.addsBOSByDefault
        case "llama":
            guard let scoreValues = try file.array("tokenizer.ggml.scores"), scoreValues.count == tokens.count else {
                throw .badConfig(key: "tokenizer.ggml.scores", file: path, reason: "is missing or does not have one score per token")
            }
            if gemma {
                derivedMerges = Self.mergesInTokenOrder(tokens: tokens)
            } else {
                let scores = scoreValues.map { Float($0.doubleValue ?? 0) }
                derivedMerges = Self.sentencePieceMerges(tokens: tokens, scores: scores, mergeable: { type($0) == .normal })
            }
            bpe["byte_fallback"] = types.contains(.byte)
            if let unknown = try token("tokenizer.ggml.unknown_token_id") ?? types.firstIndex(of: .unknown) {
                bpe["unk_token"] = tokens[unknown]
            }
            let prefixSpace = try file.bool("tokenizer.ggml.add_space_prefix") ?? true
            let replace: [String: Any] = ["type": "Replace", "pattern": ["String": " "], "content": "▁"]
            json["normalizer"] =
                prefixSpace
                ? ["type": "Sequence", "normalizers": [["type": "Prepend", "prepend": "▁"], replace]] : replace
            var decoders: [[String: Any]] = [
                ["type": "Replace", "pattern": ["String": "▁"], "content": " "], ["type": "ByteFallback"], ["type": "Fuse"],
            ]
            if prefixSpace { decoders.append(["type": "Strip", "content": " ", "start": 1, "stop": 0]) }
            json["decoder"] = ["type": "Sequence", "decoders": decoders]
            addsBOS = true
        default:
            throw .badConfig(
                key: "tokenizer.ggml.model", file: path, reason: "is '\(model)'; supported: gpt2 (byte-level BPE), llama (SentencePiece)")
        }
        json["model"] = bpe

        let bos = try token("tokenizer.ggml.bos_token_id")
        addsBOS = try file.bool("tokenizer.ggml.add_bos_token") ?? addsBOS
        var tokenizerConfig: [String: Any] = [:]
        if let bos {
            tokenizerConfig["bos_token"] = tokens[bos]
            if addsBOS {
                json["post_processor"] = [
                    "type": "TemplateProcessing",
                    "single": [["SpecialToken": ["id": tokens[bos], "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                    "special_tokens": [tokens[bos]: ["id": tokens[bos], "ids": [NSNumber(value: bos)], "tokens": [tokens[bos]]]],
                ]
            }
        }
        var eos: [Int] = []
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            if let id = try token(key) { eos.append(id) }
        }
        eos += tokens.indices.filter { type($0) == .control && Self.endOfGenerationTexts.contains(tokens[$0]) }
        try self.init(json: json, file: path, tokenizerConfig: tokenizerConfig, extraEOS: eos, merges: derivedMerges)
    }

    /// BPE merges for Gemma's vocabulary, as transformers derives them from a GGUF file
    /// (`generate_merges` with each token's position as its score): every split of any token into
    /// two vocabulary tokens, the earlier token's first, and within one token the longer left
    /// piece first.
    static func mergesInTokenOrder(tokens: [String]) -> [MergeIDs] {
        let splits = TokenSplits(tokens: tokens)
        return tokens.indices.flatMap { id in splits.splits(of: id).reversed().map { MergeIDs(left: $0.left, right: $0.right, merged: id) } }
    }

    /// BPE merges equivalent to SentencePiece's score order: every split of a mergeable token into
    /// two vocabulary tokens, highest-scoring result first (then by ids, for a stable order), as
    /// HF's converter derives them from a SentencePiece model.
    static func sentencePieceMerges(tokens: [String], scores: [Float], mergeable: (Int) -> Bool) -> [MergeIDs] {
        let splits = TokenSplits(tokens: tokens)
        var candidates: [(score: Float, merged: Int, left: Int, right: Int)] = []
        for id in tokens.indices where mergeable(id) {
            for (left, right) in splits.splits(of: id) { candidates.append((scores[id], id, left, right)) }
        }
        candidates.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.merged != b.merged { return a.merged < b.merged }
            return (a.left, a.right) < (b.left, b.right)
        }
        return candidates.map { MergeIDs(left: $0.left, right: $0.right, merged: $0.merged) }
    }
}
