import Backend

/// The weights of a GGUF file under the HF names the model asks for, holding what the HF
/// checkpoint held: llama.cpp's names mapped back (`GGUFArchitecture.ggufName(for:)`),
/// dimensions already in row-major order (`GGUFFile`), the rotary rows of q and k put back in
/// HF's order where the converter interleaved them, and Gemma's norm weights without the 1 the
/// converter added.
public struct GGUFWeights: WeightSource {
    /// The file.
    public let file: GGUFFile
    let architecture: GGUFArchitecture
    let heads: Int
    let kvHeads: Int

    /// The weights of `file`, whose metadata gave `config`.
    public init(file: GGUFFile, config: ModelConfig) throws(ModelError) {
        self.file = file
        architecture = try GGUFArchitecture(file: file)
        heads = config.heads
        kvHeads = config.kvHeads
    }

    public var origin: String { file.path }

    public func contains(_ name: String) -> Bool {
        architecture.ggufName(for: name).map { file.tensors[$0] != nil } ?? false
    }

    public func weight(_ name: String, shape: [Int]) throws -> WeightTensor {
        guard let ggufName = architecture.ggufName(for: name), let info = file.tensors[ggufName] else {
            throw ModelError.missingTensor(architecture.ggufName(for: name) ?? name, directory: file.path)
        }
        guard info.shape == shape else {
            throw ModelError.tensorShape(ggufName, file: file.path, expected: shape, found: info.shape)
        }
        let tensor = try file.tensor(ggufName)
        if architecture.normWeightsIncludeOne && ggufName.hasSuffix("norm.weight") {
            // (1 + w) - 1 in f32, as transformers' GGUF loader does. The model's own 1 + w gives
            // back the stored value exactly when it is at least 0.5, within 2^-25 below that.
            let stored = try tensor.dense()
            return .dense(HostTensor.float32(stored.floats().map { $0 - 1 }, shape: stored.shape, name: ggufName))
        }
        guard architecture.permutedRotaryRows else { return tensor }
        if name.hasSuffix("self_attn.q_proj.weight") || name.hasSuffix("self_attn.q_proj.bias") {
            return try tensor.permutingRows(Self.halvesOrder(rows: shape[0], heads: heads))
        }
        if name.hasSuffix("self_attn.k_proj.weight") || name.hasSuffix("self_attn.k_proj.bias") {
            return try tensor.permutingRows(Self.halvesOrder(rows: shape[0], heads: kvHeads))
        }
        return tensor
    }

    /// The row order that undoes llama.cpp's interleaving of each head's rotary halves: within a
    /// head of `d` rows, HF row `j·d/2 + i` (half `j`, pair `i`) is stored at row `2i + j`.
    public static func halvesOrder(rows: Int, heads: Int) -> [Int] {
        let d = rows / heads
        var order = [Int](repeating: 0, count: rows)
        for h in 0..<heads {
            for j in 0..<2 {
                for i in 0..<(d / 2) { order[h * d + j * (d / 2) + i] = h * d + 2 * i + j }
            }
        }
        return order
    }
}
