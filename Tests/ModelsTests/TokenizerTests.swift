import Foundation
import Models
import XCTest

/// The Swift BPE tokenizers against HF `tokenizers` on the same tokenizer.json, round trips, and
/// the incremental detokenizer.
final class TokenizerTests: XCTestCase {
    static let corpus = [
        "Hello, world!",
        "The river ran past the old mill.",
        "  leading spaces, inner   runs\n\n\ttabs and\r\nCRLF  ",
        "numbers 1234567, 3.14159 and 2024-11-24",
        "émigré café naïve façade",
        "日本語のテキストと中文",
        "emoji 🎉🚀👍🏽 and a family 👨‍👩‍👧 here",
        "don't I'll we've THEY'RE",
        "MiXeD CaSe WoRdS",
        "tab\tseparated\tvalues",
        "a",
        " ",
    ]

    private func runTokenizerReference(directory: String, texts: [String]) throws -> [String: Any] {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Reference/reference_tokenize.py").path
        let request = directory + "/texts.json"
        try JSONSerialization.data(withJSONObject: texts).write(to: URL(fileURLWithPath: request))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, directory + "/tokenizer.json", request]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    private func specialsText(_ architecture: ModelArchitecture) -> String {
        switch architecture {
        case .llama: return "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
        case .qwen2, .qwen3: return "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
        case .mistral: return "[INST] Hi there [/INST] Hello</s>"
        case .gemma3: return "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n"
        }
    }

    private func checkAgainstHFTokenizers(_ architecture: ModelArchitecture) throws {
        let fixture = try ModelFixture(architecture)
        defer { fixture.remove() }
        let tokenizer = fixture.loaded.tokenizer
        let texts = Self.corpus + [specialsText(architecture)]
        let reference = try runTokenizerReference(directory: fixture.directory, texts: texts)
        guard reference["available"] as? Bool == true else {
            throw XCTSkip("the Python 'tokenizers' package is not installed (scripts/test.sh installs it)")
        }
        let ids = try XCTUnwrap(reference["ids"] as? [[NSNumber]]).map { $0.map(\.intValue) }
        let decoded = try XCTUnwrap(reference["decoded"] as? [String])
        for (i, text) in texts.enumerated() {
            let ours = tokenizer.encode(text)
            XCTAssertEqual(ours, ids[i], "\(architecture): encoding of \(text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(ours), decoded[i], "\(architecture): decoding of \(text.debugDescription)")
        }
    }

    func testByteLevelLlama3TokenizerMatchesHFTokenizers() throws { try checkAgainstHFTokenizers(.llama) }
    func testByteLevelQwen2TokenizerMatchesHFTokenizers() throws { try checkAgainstHFTokenizers(.qwen2) }
    func testSentencePieceByteFallbackTokenizerMatchesHFTokenizers() throws { try checkAgainstHFTokenizers(.mistral) }
    func testGemmaSentencePieceTokenizerMatchesHFTokenizers() throws { try checkAgainstHFTokenizers(.gemma3) }

    func testEncodeDecodeRoundTripsForEveryFamily() throws {
        for architecture in ModelArchitecture.allCases {
            let fixture = try ModelFixture(architecture)
            defer { fixture.remove() }
            let tokenizer = fixture.loaded.tokenizer
            for text in Self.corpus {
                let normalized = [.qwen2, .qwen3].contains(architecture) ? text.precomposedStringWithCanonicalMapping : text
                XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), normalized, "\(architecture): \(text.debugDescription)")
            }
        }
    }

    func testIncrementalDetokenizerStreamsWholeCharactersOnly() throws {
        let fixture = try ModelFixture(.mistral)
        defer { fixture.remove() }
        let tokenizer = fixture.loaded.tokenizer
        let text = "Grüße 🎉 日本"
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        var detokenizer = IncrementalDetokenizer(tokenizer: tokenizer)
        var deltas: [String] = []
        for id in ids { deltas.append(detokenizer.append(id)) }
        deltas.append(detokenizer.flush())
        XCTAssertFalse(deltas.joined().contains("\u{FFFD}"), "a delta split a character: \(deltas)")
        // The continuation keeps SentencePiece's leading space, which a full decode strips.
        XCTAssertEqual(deltas.joined(), " " + text)
        XCTAssertTrue(ids.count > text.count / 2, "the emoji should be spelled in byte-fallback tokens")
    }

    func testStopStringIsHeldBackAndNeverEmitted() {
        var filter = StopStringFilter(["</answer>"])
        var out = ""
        for piece in ["The answer is 4", "2.</", "ans", "wer> trailing"] { out += filter.feed(piece) }
        XCTAssertTrue(filter.stopped)
        XCTAssertEqual(out, "The answer is 42.")
        var partial = StopStringFilter(["STOP"])
        XCTAssertEqual(partial.feed("go ST"), "go ")
        XCTAssertEqual(partial.feed("ART"), "START")
        XCTAssertFalse(partial.stopped)
    }
}
