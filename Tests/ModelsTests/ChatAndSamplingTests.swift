import HiFCCore
import Models
import SynthModels
import XCTest

/// Chat templates are recognized per family and rendered; sampling is greedy, seeded and honours
/// top-k and top-p.
final class ChatAndSamplingTests: XCTestCase {
    func testEachFamilysTemplateIsRecognizedAndUnknownFallsBackToPlain() {
        XCTAssertEqual(ChatTemplate.recognize("{{ '<|start_header_id|>' + message['role'] }}"), .llama3)
        XCTAssertEqual(ChatTemplate.recognize("{{ '[INST] ' + message['content'] + ' [/INST]' }}"), .mistral)
        XCTAssertEqual(ChatTemplate.recognize("{{ '[INST] <<SYS>>\\n' + system + '\\n<</SYS>>' }}"), .llama2)
        XCTAssertEqual(ChatTemplate.recognize("{{'<|im_start|>' + message['role']}}"), .chatML)
        XCTAssertEqual(ChatTemplate.recognize("{{ '<|user|>\\n' }}{{ '<|assistant|>' }}"), .zephyr)
        XCTAssertEqual(ChatTemplate.recognize("{{ '<start_of_turn>' + role + '\\n' }}"), .gemma)
        XCTAssertNil(ChatTemplate.recognize("{{ messages }}"))
        XCTAssertEqual(ChatTemplate.resolve("{{ messages }}"), .plain)
        XCTAssertEqual(ChatTemplate.resolve(nil), .plain)
    }

    func testTemplatesRenderTheFamilysFormat() {
        let turns = [ChatTurn(role: "system", content: "Be brief."), ChatTurn(role: "user", content: "Hi")]
        XCTAssertEqual(
            ChatTemplate.llama3.render(turns, bos: "<|begin_of_text|>"),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        XCTAssertEqual(ChatTemplate.llama2.render(turns, bos: "<s>"), "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]")
        let dialogue = turns + [ChatTurn(role: "assistant", content: "Hello."), ChatTurn(role: "user", content: "Bye")]
        XCTAssertEqual(
            ChatTemplate.mistral.render(dialogue, bos: "<s>", eos: "</s>"),
            "<s>[INST] Be brief.\n\nHi [/INST] Hello.</s>[INST] Bye [/INST]")
        XCTAssertEqual(
            ChatTemplate.llama2.render(dialogue, bos: "<s>", eos: "</s>"),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello.</s><s>[INST] Bye [/INST]")
        XCTAssertEqual(
            ChatTemplate.chatML.render(turns),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(
            ChatTemplate.zephyr.render(turns, eos: "</s>"),
            "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n")
        XCTAssertEqual(ChatTemplate.plain.render(turns), "system: Be brief.\nuser: Hi\nassistant:")
        XCTAssertEqual(
            ChatTemplate.gemma.render(dialogue, bos: "<bos>"),
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
                + "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
    }

    func testGemmaChatPromptHasOneBOSAndItsTurnMarkers() throws {
        let fixture = try ModelFixture(.gemma3)
        defer { fixture.remove() }
        XCTAssertEqual(fixture.loaded.chatTemplate, .gemma)
        let ids = fixture.loaded.encodeChat([ChatTurn(role: "user", content: "Hi")])
        let tokenizer = fixture.loaded.tokenizer
        XCTAssertEqual(ids.first, tokenizer.bosTokenID)
        XCTAssertEqual(ids.filter { $0 == tokenizer.bosTokenID }.count, 1, "BOS added twice")
        XCTAssertEqual(ids.filter { $0 == tokenizer.id(of: "<start_of_turn>") }.count, 2)
        XCTAssertTrue(fixture.loaded.eosTokenIDs.contains(try XCTUnwrap(tokenizer.id(of: "<end_of_turn>"))))
    }

    func testSynthModelsChatPromptsUseTheirSpecialTokens() throws {
        let fixture = try ModelFixture(.llama)
        defer { fixture.remove() }
        XCTAssertEqual(fixture.loaded.chatTemplate, .llama3)
        let ids = fixture.loaded.encodeChat([ChatTurn(role: "user", content: "Hi")])
        let tokenizer = fixture.loaded.tokenizer
        XCTAssertEqual(ids.first, tokenizer.bosTokenID)
        XCTAssertEqual(ids.filter { $0 == tokenizer.id(of: "<|start_header_id|>") }.count, 2)
        XCTAssertEqual(ids.filter { $0 == tokenizer.bosTokenID }.count, 1, "BOS added twice")
    }

    func testSamplingIsGreedyAtZeroSeededAndRestrictedByTopKAndTopP() {
        let logits: [Float] = [0.1, 2.0, 1.9, -1, 0.5]
        var greedy = Sampler(.greedy(maxTokens: 1))
        XCTAssertEqual(greedy.sample(logits), 1)
        var a = Sampler(SamplingParams(temperature: 1, seed: 42))
        var b = Sampler(SamplingParams(temperature: 1, seed: 42))
        XCTAssertEqual((0..<50).map { _ in a.sample(logits) }, (0..<50).map { _ in b.sample(logits) })
        var topK = Sampler(SamplingParams(temperature: 5, topK: 2, seed: 1))
        XCTAssertEqual(Set((0..<200).map { _ in topK.sample(logits) }), [1, 2])
        var topP = Sampler(SamplingParams(temperature: 1, topP: 0.3, seed: 1))
        XCTAssertEqual(Set((0..<200).map { _ in topP.sample(logits) }), [1])
        var wide = Sampler(SamplingParams(temperature: 2, seed: 9))
        XCTAssertEqual(Set((0..<500).map { _ in wide.sample(logits) }).count, 5)
    }
}
