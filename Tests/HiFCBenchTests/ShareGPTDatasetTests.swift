import Foundation
import Models
import SynthModels
import XCTest

@testable import HiFCBench

/// `bench serve --dataset-path`: ShareGPT files read, their turns sampled and filtered as vLLM
/// does, and bad files named with their cause.
final class ShareGPTDatasetTests: XCTestCase {
    /// A ShareGPT file's bytes: one record per conversation, each a list of message texts.
    private func file(_ conversations: [[String]]) -> Data {
        let records = conversations.enumerated().map { index, messages in
            ["id": "c\(index)", "conversations": messages.enumerated().map { ["from": $0.offset % 2 == 0 ? "human" : "gpt", "value": $0.element] }]
                as [String: Any]
        }
        return try! JSONSerialization.data(withJSONObject: records)
    }

    /// Text of about `tokens` tokens by the 4-bytes-a-token estimate, distinct for each `tag`.
    private func text(_ tokens: Int, _ tag: Int) -> String {
        String("m\(tag) ".padding(toLength: 4 * tokens, withPad: "abc ", startingAt: 0))
    }

    private let words = SyntheticPrompt(tokenizer: nil)

    func testTurnsAreMessagePairsAndAskForTheRecordedReplysLength() throws {
        let dataset = try ShareGPTDataset(
            data: file([[text(10, 0), text(30, 1), text(12, 2), text(40, 3), text(5, 4)], [text(8, 5)]]), path: "t.json")
        XCTAssertEqual(dataset.conversations.count, 1, "a record of one message has no turn")
        XCTAssertEqual(dataset.conversations[0].count, 2, "five messages make two turns; the unanswered last one is left out")
        let sessions = try dataset.sessions(
            requests: 2, turns: 4, outputTokens: nil, maxRequestTokens: 2048, seed: 0, prompts: words, path: "t.json")
        XCTAssertEqual(sessions.count, 1)
        XCTAssertEqual(sessions[0].turns.map(\.message.text), [text(10, 0), text(12, 2)])
        XCTAssertEqual(sessions[0].turns.map(\.message.tokens), [10, 12])
        XCTAssertEqual(sessions[0].turns.map(\.outputTokens), [30, 40], "each turn asks for its recorded reply's length")
        let fixed = try dataset.sessions(requests: 2, turns: 4, outputTokens: 7, maxRequestTokens: 2048, seed: 0, prompts: words, path: "t.json")
        XCTAssertEqual(fixed[0].turns.map(\.outputTokens), [7, 7], "--output-len N fixes every request's output")
    }

    func testTurnsOutsideVLLMsBoundsEndTheirSession() throws {
        let conversations = [
            [text(2, 0), text(50, 1)],  // prompt under 4 tokens
            [text(1100, 2), text(50, 3)],  // prompt over 1024
            [text(20, 4), text(2, 5)],  // reply under 4
            [text(20, 6), text(50, 7), text(100, 8), text(50, 9)],  // the second turn's request passes 200 tokens
            [text(20, 10), text(50, 11)],
        ]
        let dataset = try ShareGPTDataset(data: file(conversations), path: "t.json")
        let sessions = try dataset.sessions(requests: 2, turns: 2, outputTokens: nil, maxRequestTokens: 200, seed: 1, prompts: words, path: "t.json")
        XCTAssertEqual(
            Set(sessions.flatMap(\.turns).map(\.message.text)), [text(20, 6), text(20, 10)],
            "only first turns of the two usable conversations: 20 + 50 + 100 + 50 is past 200 for the second turn")
        XCTAssertEqual(sessions.map(\.index), [0, 1])
        let fixedShortReply = try dataset.sessions(
            requests: 3, turns: 1, outputTokens: 8, maxRequestTokens: 2048, seed: 1, prompts: words, path: "t.json")
        XCTAssertTrue(
            fixedShortReply.flatMap(\.turns).contains { $0.message.text == text(20, 4) }, "a fixed output length takes turns whose reply was short")
    }

    func testEachMessagesTemplateTokensCountAgainstTheRequestsBound() throws {
        // Without a tokenizer a 120-byte prompt is bounded at 40 tokens: the second request sends
        // 40 + 50 + 40 tokens of messages, asks for 50 more and adds a template's tokens three times.
        let dataset = try ShareGPTDataset(data: file([[text(30, 0), text(50, 1), text(30, 2), text(50, 3)]]), path: "t.json")
        func turns(added: Int) throws -> Int {
            try dataset.sessions(
                requests: 2, turns: 2, outputTokens: nil, maxRequestTokens: 200, tokensAddedPerMessage: added, seed: 0, prompts: words,
                path: "t.json"
            ).flatMap(\.turns).count
        }
        XCTAssertEqual(try turns(added: 0), 2)
        XCTAssertEqual(try turns(added: 6), 2, "180 + 3 x 6 = 198 fits in 200")
        XCTAssertThrowsError(try turns(added: 7), "180 + 3 x 7 = 201 does not: one request, not the two asked for")
    }

    func testTheSampleRepeatsForASeedAndChangesWithIt() throws {
        let dataset = try ShareGPTDataset(data: file((0..<50).map { [text(10 + $0, 2 * $0), text(20, 2 * $0 + 1)] }), path: "t.json")
        func draw(_ seed: UInt64) throws -> [String] {
            try dataset.sessions(requests: 10, turns: 1, outputTokens: nil, maxRequestTokens: 2048, seed: seed, prompts: words, path: "t.json")
                .flatMap(\.turns).map(\.message.text)
        }
        XCTAssertEqual(try draw(3), try draw(3))
        XCTAssertNotEqual(try draw(3), try draw(4))
        XCTAssertEqual(Set(try draw(3)).count, 10, "no conversation twice")
    }

    func testTooFewFittingConversationsIsAnErrorThatSaysHowMany() throws {
        let dataset = try ShareGPTDataset(data: file([[text(10, 0), text(20, 1)], [text(2, 2), text(20, 3)]]), path: "t.json")
        XCTAssertThrowsError(
            try dataset.sessions(requests: 5, turns: 1, outputTokens: nil, maxRequestTokens: 2048, seed: 0, prompts: words, path: "t.json")
        ) { error in
            XCTAssertEqual(error as? ShareGPTDataset.Failure, .tooFewRequests(path: "t.json", found: 1, wanted: 5, maxRequestTokens: 2048))
            XCTAssertTrue("\(error)".contains("lower --num-prompts"), "\(error)")
        }
    }

    func testFilesThatAreNotShareGPTNameTheCause() {
        func failure(_ json: String) -> String {
            do {
                _ = try ShareGPTDataset(data: Data(json.utf8), path: "bad.json")
                return "read"
            } catch { return error.description }
        }
        XCTAssertTrue(failure(#"{"conversations": []}"#).contains("not a ShareGPT file"))
        XCTAssertTrue(failure(#"[{"conversations": [{"from": "human", "value": 5}]}]"#).contains("at [0].conversations[0].value"))
        XCTAssertTrue(failure(#"[{"id": "x"}]"#).contains("no record has a conversation of two messages or more"))
        XCTAssertTrue(failure("[").contains("not a ShareGPT file"))
        XCTAssertThrowsError(try ShareGPTDataset(contentsOf: "/nonexistent/sharegpt.json")) { error in
            XCTAssertTrue("\(error)".contains("cannot read the dataset /nonexistent/sharegpt.json"), "\(error)")
        }
    }

    func testTokenizerCountsAndIdsComeWithEachMessage() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hifc-sharegpt-tokenizer-\(getpid())").path
        _ = try SynthModel(architecture: .llama, preset: .tiny).write(to: directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tokenizer = try Tokenizer(directory: directory)
        let prompt = "the library kept every old program on the storage of its memory"
        let dataset = try ShareGPTDataset(data: file([[prompt, "the next morning she read about the cache"]]), path: "t.json")
        let sessions = try dataset.sessions(
            requests: 1, turns: 1, outputTokens: nil, maxRequestTokens: 2048, seed: 0, prompts: SyntheticPrompt(tokenizer: tokenizer), path: "t.json")
        let message = sessions[0].turns[0].message
        XCTAssertEqual(message.tokenIDs, tokenizer.encode(prompt, addSpecialTokens: false))
        XCTAssertEqual(message.tokens, message.tokenIDs?.count)
        XCTAssertEqual(
            sessions[0].turns[0].outputTokens, tokenizer.encode("the next morning she read about the cache", addSpecialTokens: false).count)
    }

    func testADatasetWorkloadReportsTheRangeItsTurnsSpan() throws {
        let dataset = try ShareGPTDataset(data: file([[text(10, 0), text(30, 1)], [text(25, 2), text(6, 3)]]), path: "t.json")
        let sessions = try dataset.sessions(requests: 2, turns: 1, outputTokens: nil, maxRequestTokens: 2048, seed: 0, prompts: words, path: "t.json")
        let workload = ServeWorkload(dataset: "t.json", sessions: sessions, turns: 1)
        XCTAssertEqual(workload.shape.requests, 2)
        XCTAssertEqual(workload.shape.inputLengths, .uniform(10...25))
        XCTAssertEqual(workload.shape.outputLengths, .uniform(6...30))
        XCTAssertEqual(workload.shape.dataset, "t.json")
    }
}
