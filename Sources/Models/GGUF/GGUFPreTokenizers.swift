/// The pre-tokenizers that GGUF names in `tokenizer.ggml.pre`, as the tokenizer.json pieces HF
/// writes for the same models. Each name stands for one regex split in llama.cpp
/// (`llm_tokenizer_bpe` in llama-vocab.cpp); the patterns here are the HF originals that
/// llama.cpp's adapt. A name missing from the table is refused by name.
enum GGUFPreTokenizers {
    /// What one name sets in tokenizer.json (constant JSON values, never mutated).
    struct Entry: @unchecked Sendable {
        /// The `pre_tokenizer` object.
        let preTokenizer: [String: Any]
        /// The `normalizer` object, if any.
        let normalizer: [String: Any]?
        /// `model.ignore_merges`: whole words found in the vocabulary skip BPE (Llama 3).
        let ignoreMerges: Bool
        /// Whether llama.cpp puts BOS first when the file does not say (`add_bos_token`).
        let addsBOSByDefault: Bool
    }

    /// Llama 3's split: contractions, letters with one leading non-letter, 1-3 digits, ...
    static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// Qwen2's split: Llama 3's with single digits.
    static let qwen2Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    private static func split(_ pattern: String) -> [String: Any] {
        ["type": "Split", "pattern": ["Regex": pattern], "behavior": "Isolated", "invert": false]
    }

    private static func byteLevel(useRegex: Bool) -> [String: Any] {
        ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": useRegex]
    }

    /// The entries by `tokenizer.ggml.pre` value.
    static let table: [String: Entry] = [
        "llama-bpe": Entry(
            preTokenizer: ["type": "Sequence", "pretokenizers": [split(llama3Pattern), byteLevel(useRegex: false)]],
            normalizer: nil, ignoreMerges: true, addsBOSByDefault: true),
        "qwen2": Entry(
            preTokenizer: ["type": "Sequence", "pretokenizers": [split(qwen2Pattern), byteLevel(useRegex: false)]],
            normalizer: ["type": "NFC"], ignoreMerges: false, addsBOSByDefault: false),
        // SmolLM: each digit alone, then GPT-2's split.
        "smollm": Entry(
            preTokenizer: [
                "type": "Sequence",
                "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel(useRegex: true)],
            ],
            normalizer: nil, ignoreMerges: false, addsBOSByDefault: false),
        "gpt-2": Entry(preTokenizer: byteLevel(useRegex: true), normalizer: nil, ignoreMerges: false, addsBOSByDefault: false),
    ]
}
