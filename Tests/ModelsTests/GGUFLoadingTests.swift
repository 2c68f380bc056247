import Backend
import Foundation
import HiFCCore
import SynthModels
import XCTest

@testable import Models

/// GGUF files written by gguf-py's `GGUFWriter` (as llama.cpp's converter would write them) from
/// synthetic HF directories: each must load and generate exactly what its directory does.
final class GGUFLoadingTests: XCTestCase {
    private var directories: [String] = []

    override func tearDown() {
        for d in directories { try? FileManager.default.removeItem(atPath: d) }
    }

    /// A synthetic HF directory (f32 weights) and the GGUF `write_gguf.py` makes of it with
    /// `arguments`; the directory's weights are rewritten to the GGUF's when it is quantized.
    private func write(_ synth: SynthModel, _ arguments: [String] = []) throws -> (directory: String, gguf: String) {
        let directory = NSTemporaryDirectory() + "hifc-gguf-\(UUID().uuidString)"
        directories.append(directory)
        try synth.write(to: directory)
        let gguf = directory + ".gguf"
        directories.append(gguf)
        directories.append(gguf + ".tokenizer.json")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Reference/write_gguf.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, directory, gguf] + arguments
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if message.contains("No module named 'gguf'") { throw XCTSkip("the gguf Python package is not installed (scripts/test.sh installs it)") }
        XCTAssertEqual(process.terminationStatus, 0, "write_gguf.py failed: \(message)")
        return (directory, gguf)
    }

    private func synth(_ architecture: ModelArchitecture) -> SynthModel {
        SynthModel(architecture: architecture, preset: .tiny, dtype: .float32, seed: 3)
    }

    /// Both load; the GGUF's tokenizer and chat template encode like the directory's; the same
    /// prompt gives the same logits and 12 greedy tokens.
    private func assertSameModel(_ directory: String, _ gguf: String, sameTokenizer: Bool = true, file: StaticString = #filePath, line: UInt = #line)
        throws
    {
        let hf = try LoadedModel(directory: directory, backend: CPUBackend())
        // Decoded at load: this compares the loaders; the integer kernels have their own check.
        let g = try LoadedModel(directory: gguf, backend: CPUBackend(dequantizesAtLoad: true))
        // llama.cpp stores Mistral as `llama`: the same forward pass.
        XCTAssertEqual(g.config.architecture, hf.config.architecture == .mistral ? .llama : hf.config.architecture, file: file, line: line)
        XCTAssertEqual(g.config.ropeScaling, hf.config.ropeScaling, file: file, line: line)
        XCTAssertEqual(g.config.tieWordEmbeddings, hf.config.tieWordEmbeddings, file: file, line: line)
        XCTAssertEqual(g.chatTemplate, hf.chatTemplate, file: file, line: line)
        XCTAssertEqual(g.eosTokenIDs.intersection(hf.eosTokenIDs), hf.tokenizer.eosTokenIDs, file: file, line: line)
        let text = "The quick brown fox, 1234 times: don't stop!\n  Überall 🙂"
        let prompt = hf.tokenizer.encode(text)
        if sameTokenizer {
            XCTAssertEqual(g.tokenizer.encode(text), prompt, file: file, line: line)
            let chat = [ChatTurn(role: "user", content: "Hello there")]
            XCTAssertEqual(g.encodeChat(chat), hf.encodeChat(chat), file: file, line: line)
        }
        XCTAssertEqual(g.tokenizer.decode(prompt), hf.tokenizer.decode(prompt), file: file, line: line)
        func greedy(_ loaded: LoadedModel) throws -> (logits: [Float], tokens: [Int]) {
            let pool = try loaded.model.makeKVCachePool(blockTokens: 16, blocks: 8)
            let table = Array(0..<8)
            var logits = try loaded.model.forward(ForwardBatch([ForwardSequence(tokens: prompt, startPosition: 0, blockTable: table)]), kv: pool)[0]
            let first = logits
            var tokens: [Int] = []
            for step in 0..<12 {
                tokens.append(Sampler.argmax(logits))
                logits = try loaded.model.forward(
                    ForwardBatch([ForwardSequence(tokens: [tokens.last!], startPosition: prompt.count + step, blockTable: table)]), kv: pool)[0]
            }
            return (first, tokens)
        }
        let (hfLogits, hfTokens) = try greedy(hf)
        let (gLogits, gTokens) = try greedy(g)
        let error = relativeError(gLogits, hfLogits.map(Double.init))
        XCTAssertLessThan(error, 1e-5, "prompt logits differ by \(error)", file: file, line: line)
        XCTAssertEqual(gTokens, hfTokens, file: file, line: line)
    }

    func testLlamaGGUFGeneratesLikeItsDirectory() throws {
        // Llama: q/k rows interleaved by the converter, Llama 3 rope scaling as rope_freqs.weight,
        // the llama-bpe pre-tokenizer, BOS added.
        let (directory, gguf) = try write(synth(.llama))
        try assertSameModel(directory, gguf)
        let file = try GGUFFile(path: gguf)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.metadata["test.uint8"], .uint8(200))
        XCTAssertEqual(file.metadata["test.int8"], .int8(-100))
        XCTAssertEqual(file.metadata["test.uint16"], .uint16(60000))
        XCTAssertEqual(file.metadata["test.int16"], .int16(-30000))
        XCTAssertEqual(file.metadata["test.uint32"], .uint32(4_000_000_000))
        XCTAssertEqual(file.metadata["test.int32"], .int32(-2_000_000_000))
        XCTAssertEqual(file.metadata["test.uint64"], .uint64(1 << 40))
        XCTAssertEqual(file.metadata["test.int64"], .int64(-(1 << 40)))
        XCTAssertEqual(file.metadata["test.float32"], .float32(0.25))
        XCTAssertEqual(file.metadata["test.float64"], .float64(-1.5))
        XCTAssertEqual(file.metadata["test.bool"], .bool(true))
        XCTAssertEqual(file.metadata["test.string"], .string("héllo"))
        XCTAssertEqual(file.metadata["test.array"]?.arrayValue?.compactMap(\.intValue), [1, 2, 3])
    }

    func testQwen2GGUFInHalfPrecisionWithWiderAlignmentGeneratesLikeItsDirectory() throws {
        // Qwen2: q/k/v biases, rows not interleaved, tied head (no output.weight), the qwen2
        // pre-tokenizer, ChatML with its default system message; f16 weights, 64-byte alignment.
        let (directory, gguf) = try write(synth(.qwen2), ["--types", "f16", "--alignment", "64"])
        try assertSameModel(directory, gguf)
        XCTAssertEqual(try GGUFFile(path: gguf).alignment, 64)
        let loaded = try LoadedModel(directory: gguf, backend: CPUBackend())
        XCTAssertEqual(loaded.defaultSystemPrompt, "You are a helpful assistant.")
    }

    func testQwen3GGUFGeneratesLikeItsDirectory() throws {
        // Qwen3: per-head q/k norms (attn_q_norm, attn_k_norm), rows not interleaved, a head dim
        // other than hidden/heads, the qwen2 pre-tokenizer.
        let (directory, gguf) = try write(synth(.qwen3))
        try assertSameModel(directory, gguf)
    }

    func testGemma3GGUFGeneratesLikeItsDirectory() throws {
        // Gemma 3 as llama.cpp's converter writes it: every norm weight stored as 1 + w, four norms
        // a layer under Gemma's names, the window and final softcap as metadata, the layer pattern
        // (five sliding, one global) and local rope base left to the architecture, linear scaling
        // on the global layers; Gemma's vocabulary with merges in token order; no chat template.
        let config = ModelConfig(
            architecture: .gemma3, hiddenSize: 64, intermediateSize: 176, layers: 7, heads: 4, kvHeads: 1, headDim: 32,
            vocabSize: 0, rmsNormEpsilon: 1e-6, ropeTheta: 1_000_000, ropeScaling: .linear(factor: 8), maxPositions: 2048,
            tieWordEmbeddings: true, slidingWindow: 8, layerTypes: SynthModel.gemmaLayerTypes(7), localRopeTheta: 10_000,
            queryPreAttentionScalar: 32, finalLogitSoftcapping: 7.5)
        let (directory, gguf) = try write(SynthModel(config: config, dtype: .float32, seed: 3), ["--no-chat-template"])
        try assertSameModel(directory, gguf, sameTokenizer: false)
        let loaded = try LoadedModel(directory: gguf, backend: CPUBackend())
        XCTAssertEqual(loaded.config.layerTypes, [.sliding, .sliding, .sliding, .sliding, .sliding, .full, .sliding])
        XCTAssertEqual(loaded.config.slidingWindow, 8)
        XCTAssertEqual(loaded.config.localRopeTheta, 10_000)
        XCTAssertEqual(loaded.config.queryPreAttentionScalar, 32)
        XCTAssertEqual(loaded.config.finalLogitSoftcapping, 7.5)
        XCTAssertEqual(loaded.config.hiddenActivation, .geluTanh)
        // No template in the file: the family's, as the directory's Jinja template renders it.
        XCTAssertEqual(loaded.chatTemplate, .gemma)
        let hf = try LoadedModel(directory: directory, backend: CPUBackend())
        for text in ["Hello world", "The quick brown fox jumps over the lazy dog.", "line\nbreak <start_of_turn>user"] {
            XCTAssertEqual(loaded.tokenizer.decode(loaded.tokenizer.encode(text), skipSpecialTokens: false), "<bos>" + text)
            XCTAssertEqual(hf.tokenizer.decode(loaded.tokenizer.encode(text), skipSpecialTokens: false), "<bos>" + text)
        }
        XCTAssertEqual(loaded.tokenizer.encode("<start_of_turn>model\n", addSpecialTokens: false).first, hf.tokenizer.id(of: "<start_of_turn>"))
    }

    func testGemmaMergesFollowTokenOrderLongerLeftPieceFirst() {
        // transformers' generate_merges with positions as scores: earlier tokens first, and within
        // one token the longer left piece first; tokens with no split into two others give none.
        let tokens = ["<bos>", "a", "b", "▁", "▁▁", "▁▁▁", "ab", "bab", "ba"]
        XCTAssertEqual(
            Tokenizer.mergesInTokenOrder(tokens: tokens).map { [tokens[$0.left], tokens[$0.right], tokens[$0.merged]] },
            [
                ["▁", "▁", "▁▁"], ["▁▁", "▁", "▁▁▁"], ["▁", "▁▁", "▁▁▁"], ["a", "b", "ab"], ["ba", "b", "bab"], ["b", "ab", "bab"],
                ["b", "a", "ba"],
            ])
    }

    func testTokenSplitsFindEveryCutIntoTwoTokensAtScalarBoundaries() {
        // Multi-byte scalars (a cut inside one is no cut), a text held twice (the later id, as a
        // dictionary filled in id order keeps), and random vocabularies against a plain search.
        let fixed = ["é", "aé", "a", "🙂", "🙂a", "ab", "a", "b", "éa"]
        let splits = TokenSplits(tokens: fixed)
        XCTAssertTrue(splits.splits(of: 0).isEmpty)
        XCTAssertEqual(splits.splits(of: 1).map { [$0.left, $0.right] }, [[6, 0]])
        XCTAssertEqual(splits.splits(of: 4).map { [$0.left, $0.right] }, [[3, 6]])
        XCTAssertEqual(splits.splits(of: 8).map { [$0.left, $0.right] }, [[0, 6]])
        var generator = SystemRandomNumberGenerator()
        let alphabet = ["a", "b", "▁", "é", "🙂"]
        for _ in 0..<20 {
            let tokens = (0..<300).map { _ in (0..<Int.random(in: 1...5, using: &generator)).map { _ in alphabet.randomElement()! }.joined() }
            let ids = Dictionary(tokens.enumerated().map { ($1, $0) }, uniquingKeysWith: { _, later in later })
            let splits = TokenSplits(tokens: tokens)
            for (id, text) in tokens.enumerated() {
                let scalars = Array(text.unicodeScalars)
                let expected = (1..<max(scalars.count, 1)).compactMap { cut -> [Int]? in
                    let (l, r) = (String(String.UnicodeScalarView(scalars[..<cut])), String(String.UnicodeScalarView(scalars[cut...])))
                    guard let left = ids[l], let right = ids[r] else { return nil }
                    return [left, right]
                }
                XCTAssertEqual(splits.splits(of: id).map { [$0.left, $0.right] }, expected, text)
            }
        }
    }

    func testSentencePieceGGUFTokenizesLikeHFAndGeneratesLikeItsDirectory() throws {
        // Mistral as llama.cpp stores it: architecture llama, a SentencePiece vocabulary with
        // scores instead of merges. The reference is HF `tokenizers` on the tokenizer.json its
        // converter derives from those scores.
        let (directory, gguf) = try write(synth(.mistral))
        try assertSameModel(directory, gguf, sameTokenizer: false)
        let texts = ["Hello world", "The quick brown fox jumps over the lazy dog.", "  two  spaces", "ümlaut and 🙂 emoji", "line\nbreak"]
        let reference = try referenceTokenize(tokenizerJSON: gguf + ".tokenizer.json", texts: texts)
        guard reference["available"] as? Bool == true else { throw XCTSkip("the tokenizers Python package is not installed") }
        let tokenizer = try LoadedModel(directory: gguf, backend: CPUBackend()).tokenizer
        let ids = try XCTUnwrap(reference["ids"] as? [[Int]])
        for (text, expected) in zip(texts, ids) {
            XCTAssertEqual(tokenizer.encode(text), expected, "'\(text)'")
            XCTAssertEqual(tokenizer.decode(expected), text, "'\(text)'")
        }
    }

    func testQuantizedGGUFGeneratesLikeItsDequantizedWeights() throws {
        // Rows of 256 so every type fits: the 2-D weights rotate through Q8_0, Q4_K, Q4_0, Q6_K,
        // Q4_1, Q2_K, Q5_0, Q3_K, Q5_1, Q5_K, F16 and BF16; the directory holds gguf-py's
        // dequantization of the same blocks.
        let config = ModelConfig(
            architecture: .llama, hiddenSize: 256, intermediateSize: 512, layers: 2, heads: 4, kvHeads: 2, vocabSize: 0,
            ropeTheta: 10_000, maxPositions: 2048)
        let (directory, gguf) = try write(SynthModel(config: config, dtype: .float32, seed: 9), ["--types", "mixed"])
        let file = try GGUFFile(path: gguf)
        let types = Set(file.tensors.values.compactMap(\.type))
        XCTAssertTrue(types.isSuperset(of: [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .f16, .bf16]), "\(types)")
        try assertSameModel(directory, gguf)
        try assertIntegerKernelsMatchDecodedWeights(gguf)
    }

    func testQuantizedQwen3AndGemma3GGUFsRunOnTheIntegerKernels() throws {
        // The two families' own parts (q/k norms, Gemma's four 1 + w norms, scaled embedding, tied
        // head) beside weights the CPU backend keeps as blocks, as in a real GGUF file.
        let qwen3 = ModelConfig(
            architecture: .qwen3, hiddenSize: 256, intermediateSize: 512, layers: 2, heads: 4, kvHeads: 2, headDim: 64,
            vocabSize: 0, rmsNormEpsilon: 1e-6, ropeTheta: 1_000_000, maxPositions: 2048, tieWordEmbeddings: true)
        let gemma3 = ModelConfig(
            architecture: .gemma3, hiddenSize: 256, intermediateSize: 512, layers: 2, heads: 4, kvHeads: 1, headDim: 64,
            vocabSize: 0, rmsNormEpsilon: 1e-6, ropeTheta: 1_000_000, maxPositions: 2048, tieWordEmbeddings: true,
            slidingWindow: 8, layerTypes: SynthModel.gemmaLayerTypes(2), localRopeTheta: 10_000, queryPreAttentionScalar: 64)
        for config in [qwen3, gemma3] {
            let (directory, gguf) = try write(SynthModel(config: config, dtype: .float32, seed: 11), ["--types", "mixed"])
            try assertSameModel(directory, gguf, sameTokenizer: config.architecture != .gemma3)
            try assertIntegerKernelsMatchDecodedWeights(gguf)
        }
    }

    /// Kept as blocks (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K), the products run on 8-bit activations as
    /// llama.cpp's do: the prompt's logits stay within a few percent of the decoded weights'.
    private func assertIntegerKernelsMatchDecodedWeights(_ gguf: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let decoded = try LoadedModel(directory: gguf, backend: CPUBackend(dequantizesAtLoad: true))
        let kept = try LoadedModel(directory: gguf, backend: CPUBackend())
        let prompt = kept.tokenizer.encode("The quick brown fox jumps over the lazy dog")
        func logits(_ loaded: LoadedModel) throws -> [Float] {
            let pool = try loaded.model.makeKVCachePool(blockTokens: 16, blocks: 2)
            return try loaded.model.forward(ForwardBatch([ForwardSequence(tokens: prompt, startPosition: 0, blockTable: [0, 1])]), kv: pool)[0]
        }
        let error = relativeError(try logits(kept), try logits(decoded).map(Double.init))
        XCTAssertLessThan(error, 0.03, "integer kernels' logits differ by \(error)", file: file, line: line)
        // What a decode step reads: every weight but an untied embedding, as f32 once decoded,
        // and less with the blocks kept packed.
        let c = decoded.config
        let f32Bytes = 4 * (c.parameterCount - (c.tieWordEmbeddings ? 0 : c.vocabSize * c.hiddenSize))
        XCTAssertEqual(decoded.model.decodeWeightBytes, f32Bytes, file: file, line: line)
        XCTAssertLessThan(kept.model.decodeWeightBytes, f32Bytes, file: file, line: line)
    }

    func testAMappedFilesGivenBackPagesReadBackTheSameBytes() throws {
        // The CPU backend gives back a weight's mapped pages once it holds an interleaved copy;
        // the rows it still reads (embedding lookups) must come back from the file unchanged.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hifc-mapped-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let content = Data((0..<(3 * 4096 + 123)).map { UInt8(truncatingIfNeeded: $0 * 31 + 7) })
        try content.write(to: URL(fileURLWithPath: path))
        let file = try MappedFile(path: path)
        let before = Data(bytes: file.bytes, count: file.count)
        file.releasePages(at: file.bytes + 100, count: 3 * 4096)
        file.releasePages(at: file.bytes, count: file.count + 4096)  // clamped to the mapping
        XCTAssertEqual(Data(bytes: file.bytes, count: file.count), before)
        XCTAssertEqual(before, content)
    }

    func testUnsupportedContentIsRefusedByName() throws {
        let (_, gemma) = try write(synth(.llama), ["--arch", "gemma2"])
        assertError(try LoadedModel(directory: gemma, backend: CPUBackend()), mentions: "general.architecture", "gemma2")
        let (_, falcon) = try write(synth(.llama), ["--pre", "falcon"])
        assertError(try LoadedModel(directory: falcon, backend: CPUBackend()), mentions: "tokenizer.ggml.pre", "falcon")
        let (_, iq) = try write(synth(.llama), ["--undecodable-type"])
        assertError(try LoadedModel(directory: iq, backend: CPUBackend()), mentions: "blk.0.ffn_up.weight", "IQ4_NL")
        // A file cut short is an error naming it, whatever part the cut falls in.
        let (_, whole) = try write(synth(.llama))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: whole))
        for length in [3, 20, 200, bytes.count / 2, bytes.count - 1] {
            let cut = whole + ".cut"
            try bytes.prefix(length).write(to: URL(fileURLWithPath: cut))
            defer { try? FileManager.default.removeItem(atPath: cut) }
            assertError(try GGUFFile(path: cut), mentions: cut)
        }
    }

    func testRotaryRowOrderIsTheInverseOfTheConverters() {
        // llama.cpp's converter: within each head, HF rows [a0 a1 a2 b0 b1 b2] are stored as
        // [a0 b0 a1 b1 a2 b2].
        let order = GGUFWeights.halvesOrder(rows: 12, heads: 2)
        XCTAssertEqual(order, [0, 2, 4, 1, 3, 5, 6, 8, 10, 7, 9, 11])
    }

    private func referenceTokenize(tokenizerJSON: String, texts: [String]) throws -> [String: Any] {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Reference/reference_tokenize.py").path
        let request = tokenizerJSON + ".texts.json"
        directories.append(request)
        try JSONSerialization.data(withJSONObject: texts).write(to: URL(fileURLWithPath: request))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, tokenizerJSON, request]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    private func assertError<T>(_ body: @autoclosure () throws -> T, mentions words: String..., file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            for word in words { XCTAssertTrue("\(error)".contains(word), "'\(error)' does not mention \(word)", file: file, line: line) }
        }
    }
}
