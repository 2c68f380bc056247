import Backend

/// Where a model's weights come from, by the HF names the model asks for: an HF directory's
/// safetensors (`WeightFiles`) or a GGUF file (`GGUFWeights`).
public protocol WeightSource: Sendable {
    /// The directory or file, for messages.
    var origin: String { get }
    /// Whether tensor `name` is present.
    func contains(_ name: String) -> Bool
    /// Tensor `name`, checked against `shape`; missing or misshapen is an error naming it.
    func weight(_ name: String, shape: [Int]) throws -> WeightTensor
}

extension WeightFiles: WeightSource {
    public var origin: String { directory }

    public func weight(_ name: String, shape: [Int]) throws -> WeightTensor {
        .dense(try tensor(name, shape: shape))
    }
}
