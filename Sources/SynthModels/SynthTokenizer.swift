import Foundation
import Models

/// A working tokenizer for a synthetic model, in the format of its family: byte-level BPE with
/// Llama 3's or Qwen2's split regex and special tokens (Qwen3 uses Qwen2's), or SentencePiece-style
/// BPE with byte fallback, Mistral's (a "▁" prepended, decoded with one leading space stripped)
/// or Gemma's (no "▁" prepended); merges are learned from `TrainingCorpus`.
struct SynthTokenizer {
    let architecture: ModelArchitecture
    /// Vocabulary entries in id order (special tokens last, as added tokens).
    let vocabulary: [String]
    let merges: [(String, String)]
    let specialTokens: [String]
    let bosToken: String?
    let eosTokens: [String]

    /// Llama 3's pre-tokenizer pattern.
    static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// Qwen2's pre-tokenizer pattern (single digits).
    static let qwen2Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init(architecture: ModelArchitecture, merges maxMerges: Int = 700) {
        self.architecture = architecture
        var words: [[String]: Int] = [:]
        var vocabulary: [String]
        switch architecture {
        case .llama, .qwen2, .qwen3:
            let pattern = architecture == .llama ? Self.llama3Pattern : Self.qwen2Pattern
            let regex = try! NSRegularExpression(pattern: pattern)
            for piece in PreTokenizer.split(TrainingCorpus.text, regex) {
                words[ByteLevelAlphabet.encode(piece.utf8).unicodeScalars.map { String($0) }, default: 0] += 1
            }
            vocabulary = ByteLevelAlphabet.characterForByte.map { String($0) }
            specialTokens =
                architecture == .llama
                ? ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
                : ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
            bosToken = architecture == .llama ? "<|begin_of_text|>" : nil
            eosTokens = architecture == .llama ? ["<|end_of_text|>", "<|eot_id|>"] : ["<|im_end|>", "<|endoftext|>"]
        case .mistral, .gemma3:
            for word in TrainingCorpus.text.split(separator: " ", omittingEmptySubsequences: false) {
                words[("▁" + word).unicodeScalars.map { String($0) }, default: 0] += 1
            }
            let leading = architecture == .mistral ? ["<unk>", "<s>", "</s>"] : ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
            vocabulary = leading + (0..<256).map { String(format: "<0x%02X>", $0) }
            let characters = Set(("▁" + TrainingCorpus.text.replacingOccurrences(of: " ", with: "▁")).unicodeScalars.map { String($0) })
            vocabulary += characters.sorted()
            specialTokens = architecture == .mistral ? leading : leading + ["<start_of_turn>", "<end_of_turn>"]
            bosToken = architecture == .mistral ? "<s>" : "<bos>"
            eosTokens = architecture == .mistral ? ["</s>"] : ["<eos>", "<end_of_turn>"]
        }
        merges = BPETrainer.learn(words: words, maxMerges: maxMerges)
        var seen = Set(vocabulary)
        for (l, r) in merges where seen.insert(l + r).inserted { vocabulary.append(l + r) }
        vocabulary += specialTokens.filter { !seen.contains($0) }
        self.vocabulary = vocabulary
    }

    /// Whether the family's tokenizer is SentencePiece-style (spaces as "▁", byte fallback).
    private var isSentencePiece: Bool { architecture == .mistral || architecture == .gemma3 }

    var vocabularySize: Int { vocabulary.count }
    private func id(_ token: String) -> Int { vocabulary.firstIndex(of: token)! }
    var bosTokenID: Int? { bosToken.map(id) }
    var eosTokenIDs: [Int] { eosTokens.map(id) }

    /// The Jinja chat template of the family (recognized by `ChatTemplate`).
    var chatTemplate: String {
        switch architecture {
        case .llama:
            return
                "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
        case .qwen2, .qwen3:
            return
                "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
        case .mistral:
            return
                "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}"
        case .gemma3:
            return
                "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
        }
    }

    /// The tokenizer.json document.
    var tokenizerJSON: [String: Any] {
        var vocab: [String: Int] = [:]
        for (i, t) in vocabulary.enumerated() where !(!isSentencePiece && specialTokens.contains(t)) { vocab[t] = i }
        let added: [[String: Any]] = specialTokens.map {
            [
                "id": id($0), "content": $0, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true,
            ]
        }
        var model: [String: Any] = [
            "type": "BPE", "dropout": NSNull(), "continuing_subword_prefix": NSNull(),
            "end_of_word_suffix": NSNull(), "vocab": vocab, "merges": merges.map { "\($0.0) \($0.1)" },
        ]
        var document: [String: Any] = ["version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added]
        let bosProcessor: [String: Any]? = bosToken.map { bos in
            [
                "type": "TemplateProcessing",
                "single": [["SpecialToken": ["id": bos, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                "pair": [
                    ["SpecialToken": ["id": bos, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                    ["SpecialToken": ["id": bos, "type_id": 1]], ["Sequence": ["id": "B", "type_id": 1]],
                ],
                "special_tokens": [bos: ["id": bos, "ids": [id(bos)], "tokens": [bos]]],
            ]
        }
        switch architecture {
        case .llama, .qwen2, .qwen3:
            let pattern = architecture == .llama ? Self.llama3Pattern : Self.qwen2Pattern
            model["unk_token"] = NSNull()
            model["fuse_unk"] = false
            model["byte_fallback"] = false
            model["ignore_merges"] = architecture == .llama
            document["normalizer"] = architecture == .llama ? NSNull() : ["type": "NFC"]
            document["pre_tokenizer"] = [
                "type": "Sequence",
                "pretokenizers": [
                    ["type": "Split", "pattern": ["Regex": pattern], "behavior": "Isolated", "invert": false],
                    ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
                ],
            ]
            document["post_processor"] =
                bosProcessor
                ?? ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false]
            document["decoder"] = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true]
        case .mistral:
            model["unk_token"] = "<unk>"
            model["fuse_unk"] = true
            model["byte_fallback"] = true
            model["ignore_merges"] = false
            document["normalizer"] = [
                "type": "Sequence",
                "normalizers": [
                    ["type": "Prepend", "prepend": "▁"],
                    ["type": "Replace", "pattern": ["String": " "], "content": "▁"],
                ],
            ]
            document["pre_tokenizer"] = NSNull()
            document["post_processor"] = bosProcessor
            document["decoder"] = [
                "type": "Sequence",
                "decoders": [
                    ["type": "Replace", "pattern": ["String": "▁"], "content": " "],
                    ["type": "ByteFallback"], ["type": "Fuse"],
                    ["type": "Strip", "content": " ", "start": 1, "stop": 0],
                ],
            ]
        case .gemma3:
            model["unk_token"] = "<unk>"
            model["fuse_unk"] = true
            model["byte_fallback"] = true
            model["ignore_merges"] = false
            document["normalizer"] = ["type": "Replace", "pattern": ["String": " "], "content": "▁"]
            document["pre_tokenizer"] = ["type": "Split", "pattern": ["String": " "], "behavior": "MergedWithPrevious", "invert": false]
            document["post_processor"] = bosProcessor
            document["decoder"] = [
                "type": "Sequence",
                "decoders": [
                    ["type": "Replace", "pattern": ["String": "▁"], "content": " "], ["type": "ByteFallback"], ["type": "Fuse"],
                ],
            ]
        }
        document["model"] = model
        return document
    }

    /// Writes tokenizer.json and tokenizer_config.json into `directory`.
    func write(to directory: String) throws(ModelError) {
        try writeJSON(tokenizerJSON, to: directory + "/tokenizer.json")
        var config: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": chatTemplate,
            "eos_token": eosTokens[0], "model_max_length": 131_072, "clean_up_tokenization_spaces": false,
        ]
        config["bos_token"] = bosToken ?? NSNull()
        config["add_bos_token"] = bosToken != nil
        if isSentencePiece { config["unk_token"] = "<unk>" }
        try writeJSON(config, to: directory + "/tokenizer_config.json")
    }
}
