import Foundation
import Models
import SynthModels
import XCTest

/// Every tokenizer kind HiFC reads against HF `tokenizers` on a few hundred seeded random strings
/// (whitespace runs, CR/LF, tabs, emoji, mixed scripts, combining marks, special-token spellings)
/// and id sequences (byte tokens among them, so decoding meets invalid UTF-8): the same ids from
/// `encode`, the same text from `decode`.
final class TokenizerParityTests: XCTestCase {
    /// Strings and id sequences per tokenizer.
    static let cases = 300

    /// A synthetic model directory's tokenizer.json, optionally rewritten by `rewrite`.
    private func tokenizerDirectory(_ architecture: ModelArchitecture, rewrite: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        let directory = NSTemporaryDirectory() + "hifc-tokenizer-parity-\(architecture.modelType)-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        try SynthModel(architecture: architecture, preset: .tiny, dtype: .float32).write(to: directory)
        let path = directory + "/tokenizer.json"
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        rewrite(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        return directory
    }

    private func checkParity(_ name: String, directory: String, seed: Int) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Reference/tokenizer_fuzz.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, directory + "/tokenizer.json", String(seed), String(Self.cases)]
        let out = Pipe()
        let errors = Pipe()
        process.standardOutput = out
        process.standardError = errors
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if message.contains("No module named 'tokenizers'") {
            throw XCTSkip("the Python 'tokenizers' package is not installed (scripts/test.sh installs it)")
        }
        XCTAssertEqual(process.terminationStatus, 0, "tokenizer_fuzz.py failed: \(message)")
        let reference = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let tokenizer = try Tokenizer(directory: directory)
        var failures = 0
        for case let item as [String: Any] in try XCTUnwrap(reference["encodings"] as? [Any]) {
            let text = try XCTUnwrap(item["text"] as? String)
            let ids = try XCTUnwrap(item["ids"] as? [NSNumber]).map(\.intValue)
            let withSpecials = try XCTUnwrap(item["ids_special"] as? [NSNumber]).map(\.intValue)
            let ours = tokenizer.encode(text, addSpecialTokens: false)
            if ours != ids, failures < 10 {
                XCTFail("\(name): encode(\(text.debugDescription)) = \(ours), tokenizers: \(ids)")
            }
            let oursWithSpecials = tokenizer.encode(text, addSpecialTokens: true)
            if oursWithSpecials != withSpecials, failures < 10 {
                XCTFail("\(name): encode(\(text.debugDescription), specials) = \(oursWithSpecials), tokenizers: \(withSpecials)")
            }
            if ours != ids || oursWithSpecials != withSpecials { failures += 1 }
        }
        for case let item as [String: Any] in try XCTUnwrap(reference["decodings"] as? [Any]) {
            let ids = try XCTUnwrap(item["ids"] as? [NSNumber]).map(\.intValue)
            let text = try XCTUnwrap(item["text"] as? String)
            let withSpecials = try XCTUnwrap(item["text_special"] as? String)
            let ours = tokenizer.decode(ids)
            let oursWithSpecials = tokenizer.decode(ids, skipSpecialTokens: false)
            // Streamed, the same text (a continuation keeps the leading space a decode strips).
            var detokenizer = IncrementalDetokenizer(tokenizer: tokenizer)
            let streamed = ids.map { detokenizer.append($0) }.joined() + detokenizer.flush()
            if streamed != text && streamed != " " + text {
                if failures < 10 { XCTFail("\(name): streaming \(ids) gave \(streamed.debugDescription), tokenizers: \(text.debugDescription)") }
                failures += 1
            }
            if ours != text || oursWithSpecials != withSpecials {
                if failures < 10 {
                    XCTFail(
                        "\(name): decode(\(ids)) = \(ours.debugDescription) / \(oursWithSpecials.debugDescription), tokenizers: \(text.debugDescription) / \(withSpecials.debugDescription)"
                    )
                }
                failures += 1
            }
        }
        XCTAssertEqual(failures, 0, "\(name): \(failures) of \(2 * Self.cases) cases differ from tokenizers")
    }

    func testByteLevelLlama3MatchesTokenizersOnFuzzedText() throws {
        try checkParity("llama 3 byte-level BPE", directory: try tokenizerDirectory(.llama), seed: 1)
    }

    func testByteLevelQwen2MatchesTokenizersOnFuzzedText() throws {
        try checkParity("qwen2 byte-level BPE", directory: try tokenizerDirectory(.qwen2), seed: 2)
    }

    /// Mistral's and Llama 2's tokenizer.json: Prepend and Replace normalizers, a Strip decoder.
    func testSentencePieceMistralMatchesTokenizersOnFuzzedText() throws {
        try checkParity("mistral SentencePiece BPE", directory: try tokenizerDirectory(.mistral), seed: 3)
    }

    /// The same vocabulary as transformers 5's LlamaTokenizer writes it: no normalizer, a
    /// Metaspace pre-tokenizer that prepends "▁" to the input's first segment only.
    func testSentencePieceMetaspaceMatchesTokenizersOnFuzzedText() throws {
        let directory = try tokenizerDirectory(.mistral) { json in
            json["normalizer"] = NSNull()
            json["pre_tokenizer"] = ["type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false]
        }
        try checkParity("mistral SentencePiece BPE, Metaspace pre-tokenizer", directory: directory, seed: 4)
    }

    /// Gemma's: spaces replaced by "▁", none prepended, nothing stripped when decoding.
    func testSentencePieceGemmaMatchesTokenizersOnFuzzedText() throws {
        try checkParity("gemma SentencePiece BPE", directory: try tokenizerDirectory(.gemma3), seed: 5)
    }
}
