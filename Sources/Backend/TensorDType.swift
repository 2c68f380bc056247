/// The element type of a tensor, on the host (safetensors) or on a device.
public enum TensorDType: String, Sendable, Hashable, CaseIterable {
    case float32 = "F32"
    case bfloat16 = "BF16"
    case float16 = "F16"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float32: return 4
        case .bfloat16, .float16: return 2
        }
    }

    /// The dtype named as safetensors headers and `config.json` name it ("F32", "bfloat16", ...).
    public init?(name: String) {
        switch name.lowercased() {
        case "f32", "float32", "float": self = .float32
        case "bf16", "bfloat16": self = .bfloat16
        case "f16", "float16", "half": self = .float16
        default: return nil
        }
    }

    /// The name `config.json` uses for `torch_dtype`.
    public var torchName: String {
        switch self {
        case .float32: return "float32"
        case .bfloat16: return "bfloat16"
        case .float16: return "float16"
        }
    }
}
