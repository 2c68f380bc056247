import Foundation
import Models
import SynthModels
import XCTest

@testable import HiFCBench

/// The requests `bench serve` sends: lengths, sessions, shared documents and request bodies.
final class ServeWorkloadTests: XCTestCase {
    /// The synthetic model's tokenizer (the embedded default's), written once.
    private static let tokenizer: Tokenizer = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hifc-bench-tokenizer-\(getpid())").path
        _ = try! SynthModel(architecture: .llama, preset: .tiny).write(to: directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try! Tokenizer(directory: directory)
    }()

    func testPromptsFitTheTokenizersCountExactly() {
        let prompts = SyntheticPrompt(tokenizer: Self.tokenizer)
        var random = SeededGenerator(seed: 3)
        for length in [1, 7, 64, 300] {
            let piece = prompts.piece(tokens: length, using: &random)
            XCTAssertEqual(piece.tokenIDs?.count, length)
            XCTAssertEqual(Self.tokenizer.encode(piece.text, addSpecialTokens: false), piece.tokenIDs, "the text is what the ids spell")
        }
    }

    func testWordsAreCloseToOneTokenEachWithoutATokenizer() {
        // The estimate used when no tokenizer is given, checked against a real BPE tokenizer.
        var random = SeededGenerator(seed: 5)
        let piece = SyntheticPrompt(tokenizer: nil).piece(tokens: 1_000, using: &random)
        XCTAssertNil(piece.tokenIDs)
        let counted = Self.tokenizer.encode(piece.text, addSpecialTokens: false).count
        XCTAssertEqual(Double(counted), 1_000, accuracy: 20, "1000 words are \(counted) tokens")
    }

    func testSessionsRepeatForASeedWithTheirTurnsAndDocuments() {
        let shape = ServeWorkload.Shape(
            requests: 7, inputLengths: .uniform(10...20), outputLengths: .fixed(5), turns: 3, sharedPrefixTokens: 40, prefixGroups: 2)
        let prompts = SyntheticPrompt(tokenizer: Self.tokenizer)
        let workload = ServeWorkload(shape: shape, seed: 9, prompts: prompts)
        XCTAssertEqual(workload.sessions.map(\.turns.count), [3, 3, 1], "7 requests in sessions of 3")
        XCTAssertEqual(workload.sessions.map(\.turns), ServeWorkload(shape: shape, seed: 9, prompts: prompts).sessions.map(\.turns))
        XCTAssertEqual(workload.sessions[0].sharedPrefix, workload.sessions[2].sharedPrefix, "sessions 0 and 2 share document 0")
        XCTAssertNotEqual(workload.sessions[0].sharedPrefix, workload.sessions[1].sharedPrefix)
        XCTAssertEqual(workload.sessions[0].sharedPrefix?.tokenIDs?.count, 40)
        let lengths = workload.sessions.flatMap(\.turns).map(\.message.tokens)
        XCTAssertTrue(lengths.allSatisfy { (10...20).contains($0) }, "\(lengths)")
        XCTAssertEqual(Set(workload.sessions.flatMap(\.turns).map(\.message.text)).count, 7, "every message differs")
        XCTAssertEqual(shape.longestPromptTokens, 40 + 3 * 20 + 2 * 5)
    }

    func testBodiesResendTheConversationWithTheDocumentFirst() throws {
        let prompts = SyntheticPrompt(tokenizer: Self.tokenizer)
        var random = SeededGenerator(seed: 1)
        let document = prompts.piece(tokens: 12, using: &random)
        let first = prompts.piece(tokens: 4, using: &random)
        let second = prompts.piece(tokens: 5, using: &random)
        var conversation = Conversation()
        conversation.addUser(first, after: document)
        conversation.addAssistant("a reply", tokenIDs: prompts.tokenIDs(of: "a reply"))
        conversation.addUser(second)

        let options = Conversation.Options(temperature: 0, ignoreEOS: true, tokenIDPrompts: true)
        let ids = try Self.object(conversation.body(endpoint: .completions, model: "m", maxTokens: 8, options: options))
        XCTAssertEqual(
            ids["prompt"] as? [Int],
            document.tokenIDs! + first.tokenIDs! + Self.tokenizer.encode("a reply", addSpecialTokens: false) + second.tokenIDs!)
        XCTAssertEqual(ids["max_tokens"] as? Int, 8)
        XCTAssertEqual(ids["ignore_eos"] as? Bool, true)
        XCTAssertEqual(ids["stream"] as? Bool, true)
        XCTAssertEqual((ids["stream_options"] as? [String: Bool])?["include_usage"], true)

        let chat = try Self.object(conversation.body(endpoint: .chat, model: "m", maxTokens: 8, options: .init(ignoreEOS: false)))
        let messages = try XCTUnwrap(chat["messages"] as? [[String: String]])
        XCTAssertEqual(messages.map { $0["role"] }, ["user", "assistant", "user"])
        XCTAssertEqual(messages[0]["content"], document.text + "\n\n" + first.text)
        XCTAssertNil(chat["ignore_eos"])
        XCTAssertNil(chat["top_p"] ?? chat["top_k"] ?? chat["min_p"], "unset sampling fields are not sent")
        let sampled = try Self.object(
            conversation.body(endpoint: .chat, model: "m", maxTokens: 8, options: .init(temperature: 0.7, topP: 0.9, topK: 40, minP: 0.05)))
        XCTAssertEqual(sampled["top_p"] as? Double, 0.9)
        XCTAssertEqual(sampled["top_k"] as? Int, 40)
        XCTAssertEqual(sampled["min_p"] as? Double, 0.05)

        let text = try Self.object(conversation.body(endpoint: .completions, model: "m", maxTokens: 8, options: .init()))
        XCTAssertEqual(text["prompt"] as? String, [document.text + "\n\n" + first.text, "a reply", second.text].joined(separator: "\n\n"))
    }

    private static func object(_ bytes: [UInt8]) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }
}
