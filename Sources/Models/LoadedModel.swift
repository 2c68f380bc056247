import Backend
import Foundation
import HiFCCore
import Logging

/// A model loaded for serving: config, tokenizer, chat template and the weights on a backend,
/// from an HF model directory or a GGUF file.
public final class LoadedModel: Sendable {
    /// The model directory or GGUF file it came from.
    public let directory: String
    /// A name for it (the directory's last component, or the GGUF file's name without `.gguf`).
    public let name: String
    public let config: ModelConfig
    public let tokenizer: Tokenizer
    public let chatTemplate: ChatTemplate
    /// The system message the chat template puts first when a chat has none (ChatML templates
    /// name their own), nil when it adds none.
    public let defaultSystemPrompt: String?
    /// The forward pass of the config's architecture.
    public let model: any CausalLanguageModel
    /// A digest of everything that decides the model's KV for given token ids: its config,
    /// tokenizer files and weights (`ModelFingerprint`); the prefix cache's namespace starts here.
    public let fingerprint: [UInt8]

    /// Loads `directory` (an HF model directory or a `.gguf` file) onto `backend`. Every problem
    /// is an error naming the file, key or tensor.
    public init(directory: String, backend: any ComputeBackend, logger: Logger? = nil) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw ModelError.missingFile(directory)
        }
        self.directory = directory
        let weights: any WeightSource
        let jinja: String?
        let templateSource: String
        let configSource: String
        var familyTemplate: ChatTemplate?
        if isDirectory.boolValue {
            name = URL(fileURLWithPath: directory).lastPathComponent
            config = try ModelConfig(contentsOf: directory + "/config.json")
            tokenizer = try Tokenizer(directory: directory)
            let tokenizerConfig = try? JSONFile(path: directory + "/tokenizer_config.json")
            var template = tokenizerConfig?.object["chat_template"] as? String
            if template == nil, let named = tokenizerConfig?.object["chat_template"] as? [[String: Any]] {
                template = (named.first { $0["name"] as? String == "default" } ?? named.first)?["template"] as? String
            }
            jinja = template
            templateSource = directory + "/tokenizer_config.json"
            configSource = directory + "/config.json"
            let files = try WeightFiles(directory: directory)
            weights = files
            var digest = ModelFingerprint()
            for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
                if let bytes = FileManager.default.contents(atPath: directory + "/" + file) { digest.add(file, bytes) }
            }
            files.fingerprint(into: &digest)
            fingerprint = digest.finalize()
        } else {
            guard GGUFFile.isGGUF(path: directory) else {
                throw ModelError.badGGUF(directory, reason: "neither a model directory nor a GGUF file (it does not start with 'GGUF')")
            }
            let file = try GGUFFile(path: directory)
            name = URL(fileURLWithPath: directory).deletingPathExtension().lastPathComponent
            config = try ModelConfig(gguf: file)
            tokenizer = try Tokenizer(gguf: file)
            jinja = try file.string("tokenizer.chat_template")
            templateSource = directory + " (tokenizer.chat_template)"
            familyTemplate = try GGUFArchitecture(file: file).chatTemplate
            configSource = directory
            weights = try GGUFWeights(file: file, config: config)
            // One file holds the config, tokenizer and weights: all of its bytes make the digest.
            var digest = ModelFingerprint()
            digest.add("gguf", UnsafeRawBufferPointer(start: file.file.bytes, count: file.file.count))
            fingerprint = digest.finalize()
        }
        if jinja == nil, let familyTemplate {
            logger?.info("\(templateSource) is missing; chats use the \(familyTemplate.rawValue) format of the model's family")
            chatTemplate = familyTemplate
        } else {
            chatTemplate = ChatTemplate.resolve(jinja, logger: logger, source: templateSource)
        }
        defaultSystemPrompt = chatTemplate == .chatML ? jinja.flatMap(ChatTemplate.defaultSystemPrompt(in:)) : nil
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw ModelError.badConfig(
                key: "vocab_size", file: configSource,
                reason: "is \(config.vocabSize), smaller than the tokenizer's \(tokenizer.vocabularySize) tokens")
        }
        model = try config.makeModel(weights: weights, backend: backend)
    }

    /// Ids that end generation: the tokenizer's and config's EOS ids.
    public var eosTokenIDs: Set<Int> { tokenizer.eosTokenIDs.union(config.eosTokenIDs) }

    /// Token ids of a chat, rendered with the model's template, ready for the assistant's reply.
    public func encodeChat(_ turns: [ChatTurn]) -> [Int] {
        var turns = turns
        if let system = defaultSystemPrompt, turns.first?.role != "system" {
            turns.insert(ChatTurn(role: "system", content: system), at: 0)
        }
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
