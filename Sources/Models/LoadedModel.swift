import Backend
import Foundation
import HiFCCore
import Logging

/// A model directory loaded for serving: config, tokenizer, chat template and the weights on a
/// backend.
public final class LoadedModel: Sendable {
    /// The directory it came from.
    public let directory: String
    /// A name for it (the directory's last component).
    public let name: String
    public let config: ModelConfig
    public let tokenizer: Tokenizer
    public let chatTemplate: ChatTemplate
    /// The forward pass of the config's architecture.
    public let model: any CausalLanguageModel
    /// A digest of everything that decides the model's KV for given token ids: its config,
    /// tokenizer files and weights (`ModelFingerprint`); the prefix cache's namespace starts here.
    public let fingerprint: [UInt8]

    /// Loads `directory` onto `backend`. Every problem is an error naming the file or tensor.
    public init(directory: String, backend: any ComputeBackend, logger: Logger? = nil) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelError.missingFile(directory)
        }
        self.directory = directory
        name = URL(fileURLWithPath: directory).lastPathComponent
        config = try ModelConfig(contentsOf: directory + "/config.json")
        tokenizer = try Tokenizer(directory: directory)
        let tokenizerConfig = try? JSONFile(path: directory + "/tokenizer_config.json")
        var jinja = tokenizerConfig?.object["chat_template"] as? String
        if jinja == nil, let named = tokenizerConfig?.object["chat_template"] as? [[String: Any]] {
            jinja = (named.first { $0["name"] as? String == "default" } ?? named.first)?["template"] as? String
        }
        chatTemplate = ChatTemplate.resolve(jinja, logger: logger, source: directory + "/tokenizer_config.json")
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw ModelError.badConfig(
                key: "vocab_size", file: directory + "/config.json",
                reason: "is \(config.vocabSize), smaller than the tokenizer's \(tokenizer.vocabularySize) tokens")
        }
        let weights = try WeightFiles(directory: directory)
        model = try config.makeModel(weights: weights, backend: backend)
        var fingerprint = ModelFingerprint()
        for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            if let bytes = FileManager.default.contents(atPath: directory + "/" + file) { fingerprint.add(file, bytes) }
        }
        weights.fingerprint(into: &fingerprint)
        self.fingerprint = fingerprint.finalize()
    }

    /// Ids that end generation: the tokenizer's and config's EOS ids.
    public var eosTokenIDs: Set<Int> { tokenizer.eosTokenIDs.union(config.eosTokenIDs) }

    /// Token ids of a chat, rendered with the model's template, ready for the assistant's reply.
    public func encodeChat(_ turns: [ChatTurn]) -> [Int] {
        let bos = tokenizer.bosTokenID.map { tokenizer.tokens[$0] } ?? ""
        let eos = tokenizer.eosTokenIDs.sorted().first.map { tokenizer.tokens[$0] } ?? ""
        switch chatTemplate {
        case .llama3, .llama2, .mistral, .gemma:
            // These templates spell BOS themselves.
            return tokenizer.encode(chatTemplate.render(turns, bos: bos, eos: eos), addSpecialTokens: false)
        case .chatML, .zephyr, .plain:
            return tokenizer.encode(chatTemplate.render(turns, bos: bos, eos: eos), addSpecialTokens: true)
        }
    }
}
