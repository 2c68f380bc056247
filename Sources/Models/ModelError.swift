/// Why a model directory could not be loaded or used; every case names the file or tensor at fault.
public enum ModelError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A file the model needs is not there.
    case missingFile(String)
    /// A file exists but could not be read or mapped.
    case unreadable(String, reason: String)
    /// A JSON file that does not parse or lacks a required key.
    case badJSON(String, reason: String)
    /// `config.json` names an architecture HiFC does not implement.
    case unsupportedArchitecture(String, file: String)
    /// A config value that is missing, of the wrong type or out of range.
    case badConfig(key: String, file: String, reason: String)
    /// A safetensors file shorter than its header says, or with a malformed header.
    case badSafetensors(String, reason: String)
    /// A GGUF file that is malformed, or holds something HiFC does not read (the reason says what).
    case badGGUF(String, reason: String)
    /// A tensor the architecture needs is in none of the weight files.
    case missingTensor(String, directory: String)
    /// A tensor whose shape disagrees with the config.
    case tensorShape(String, file: String, expected: [Int], found: [Int])
    /// A tensor stored in a dtype HiFC does not read.
    case unsupportedDType(tensor: String, file: String, dtype: String)
    /// A tokenizer.json whose model, pre-tokenizer or decoder HiFC does not implement.
    case unsupportedTokenizer(String, reason: String)
    /// A request to the model that cannot be served (an empty batch, a token id out of range).
    case badInput(String)

    public var description: String {
        switch self {
        case .missingFile(let path): return "\(path): file not found"
        case .unreadable(let path, let reason): return "\(path): cannot read: \(reason)"
        case .badJSON(let path, let reason): return "\(path): \(reason)"
        case .unsupportedArchitecture(let name, let file):
            return
                "\(file): architecture '\(name)' is not supported (supported: \(ModelArchitecture.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .badConfig(let key, let file, let reason): return "\(file): '\(key)' \(reason)"
        case .badSafetensors(let path, let reason): return "\(path): not a valid safetensors file: \(reason)"
        case .badGGUF(let path, let reason): return "\(path): \(reason)"
        case .missingTensor(let name, let dir): return "tensor '\(name)' is missing from the weights in \(dir)"
        case .tensorShape(let name, let file, let expected, let found):
            return "\(file): tensor '\(name)' has shape \(found) but the config implies \(expected)"
        case .unsupportedDType(let tensor, let file, let dtype):
            return "\(file): tensor '\(tensor)' has dtype \(dtype); supported: BF16, F16, F32"
        case .unsupportedTokenizer(let path, let reason): return "\(path): unsupported tokenizer: \(reason)"
        case .badInput(let why): return why
        }
    }
}
