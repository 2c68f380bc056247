import Logging

/// A chat message as the template sees it.
public struct ChatTurn: Sendable, Hashable {
    /// "system", "user" or "assistant".
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// The chat formats of the supported families, recognized from `tokenizer_config.json`'s Jinja
/// `chat_template` and rendered in Swift (no Jinja interpreter):
///
/// - `llama3`: `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`
/// - `llama2`: `<s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer</s>`, BOS before
///   every `[INST]` (Llama 2)
/// - `mistral`: `<s>[INST] user [/INST] answer</s>[INST] ...`, BOS once, a system message put
///   before the first user message (Mistral)
/// - `chatML`: `<|im_start|>role\ncontent<|im_end|>\n` (Qwen2)
/// - `zephyr`: `<|role|>\ncontent</s>\n` (TinyLlama chat, Zephyr)
/// - `gemma`: `<bos><start_of_turn>user\ncontent<end_of_turn>\n`, the assistant's role named
///   `model`, a system message put before the first user message (Gemma 3)
/// - `plain`: the fallback for an unrecognized or missing template: `role: content` lines, then
///   `assistant:`.
public enum ChatTemplate: String, Sendable, CaseIterable {
    case llama3, llama2, mistral, chatML, zephyr, gemma, plain

    /// The family of a Jinja template, by the markers it contains; nil when none matches.
    public static func recognize(_ jinja: String) -> ChatTemplate? {
        if jinja.contains("<|start_header_id|>") { return .llama3 }
        if jinja.contains("<|im_start|>") { return .chatML }
        if jinja.contains("[INST]") { return jinja.contains("<<SYS>>") ? .llama2 : .mistral }
        if jinja.contains("<|user|>") && jinja.contains("<|assistant|>") { return .zephyr }
        if jinja.contains("<start_of_turn>") { return .gemma }
        return nil
    }

    /// The template for `jinja` (nil: none given), falling back to `plain` with a warning.
    public static func resolve(_ jinja: String?, logger: Logger? = nil, source: String = "tokenizer_config.json") -> ChatTemplate {
        guard let jinja else {
            logger?.warning("\(source) has no chat_template; chats use the plain 'role: content' format")
            return .plain
        }
        if let known = recognize(jinja) { return known }
        logger?.warning(
            "\(source): chat_template not recognized as Llama 3, Llama 2/Mistral, ChatML, Zephyr or Gemma; chats use the plain 'role: content' format"
        )
        return .plain
    }

    /// The prompt text for `turns`, ending where the assistant's reply starts. `bos` is the BOS
    /// token's text for templates that spell it (the tokenizer matches it as a special token).
    public func render(_ turns: [ChatTurn], bos: String = "", eos: String = "") -> String {
        switch self {
        case .llama3:
            var s = bos
            for t in turns {
                s += "<|start_header_id|>\(t.role)<|end_header_id|>\n\n\(t.content.trimmingWhitespace)<|eot_id|>"
            }
            return s + "<|start_header_id|>assistant<|end_header_id|>\n\n"
        case .llama2:
            var rest = turns[...]
            var system: String?
            if rest.first?.role == "system" { system = rest.removeFirst().content }
            var s = ""
            for t in rest {
                if t.role == "assistant" {
                    s += " \(t.content.trimmingWhitespace)" + eos
                    continue
                }
                var content = t.content.trimmingWhitespace
                if let sys = system {
                    content = "<<SYS>>\n\(sys.trimmingWhitespace)\n<</SYS>>\n\n" + content
                    system = nil
                }
                s += bos + "[INST] \(content) [/INST]"
            }
            return s
        case .mistral:
            var rest = turns[...]
            var system: String?
            if rest.first?.role == "system" { system = rest.removeFirst().content }
            var s = bos
            for t in rest {
                if t.role == "assistant" {
                    s += " \(t.content.trimmingWhitespace)" + eos
                    continue
                }
                var content = t.content.trimmingWhitespace
                if let sys = system {
                    content = sys.trimmingWhitespace + "\n\n" + content
                    system = nil
                }
                s += "[INST] \(content) [/INST]"
            }
            return s
        case .chatML:
            var s = ""
            if turns.first?.role != "system" {
                s += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            }
            for t in turns { s += "<|im_start|>\(t.role)\n\(t.content)<|im_end|>\n" }
            return s + "<|im_start|>assistant\n"
        case .zephyr:
            var s = ""
            for t in turns { s += "<|\(t.role)|>\n\(t.content)\(eos)\n" }
            return s + "<|assistant|>\n"
        case .gemma:
            var rest = turns[...]
            var system: String?
            if rest.first?.role == "system" { system = rest.removeFirst().content }
            var s = bos
            for t in rest {
                var content = t.content.trimmingWhitespace
                if let sys = system {
                    content = sys.trimmingWhitespace + "\n\n" + content
                    system = nil
                }
                s += "<start_of_turn>\(t.role == "assistant" ? "model" : t.role)\n\(content)<end_of_turn>\n"
            }
            return s + "<start_of_turn>model\n"
        case .plain:
            var s = ""
            for t in turns { s += "\(t.role): \(t.content)\n" }
            return s + "assistant:"
        }
    }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}

extension ChatTemplate {
    /// The system message a ChatML Jinja template writes when a chat has none, as the literal
    /// after `<|im_start|>system` and a newline (SmolLM2: "You are a helpful AI assistant named
    /// SmolLM, ..."; Qwen2: "You are a helpful assistant."); nil when it writes none literally.
    public static func defaultSystemPrompt(in jinja: String) -> String? {
        for opening in ["<|im_start|>system\n", "<|im_start|>system\\n"] {
            var rest = jinja[...]
            while let start = rest.range(of: opening) {
                rest = rest[start.upperBound...]
                guard let end = rest.range(of: "<|im_end|>") else { break }
                let text = rest[..<end.lowerBound]
                if !text.isEmpty, !text.contains(where: { "'\"{}+".contains($0) }) {
                    return text.replacingOccurrences(of: "\\n", with: "\n")
                }
            }
        }
        return nil
    }
}
