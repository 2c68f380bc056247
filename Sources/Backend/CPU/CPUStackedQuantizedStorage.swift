import CPUKernels

/// A weight whose rows come in parts of different GGML formats, each kept as its blocks: a fused
/// q|k|v of a llama.cpp Q4_K_M or Q5_K_M file, whose v is stored at higher precision than q and k
/// in some layers (Q6_K against Q4_K, or Q8_0 against Q4_K where the row length rules the K
/// formats out). Stacked as f32 such a product would read four bytes a weight instead of well
/// under one. `linear` multiplies each part with its own kernels into its columns of the result;
/// the fused ops that take one format (`attentionInputs`, `gatedMLP`) take their unfused path.
final class CPUStackedQuantizedStorage: TensorStorage, @unchecked Sendable {
    /// The parts, in row order.
    let parts: [CPUQuantizedStorage]

    /// Nil when a part's format has no kernels.
    init?(_ tensors: [QuantizedTensor], pool: CPUThreadPool) {
        var parts: [CPUQuantizedStorage] = []
        for tensor in tensors {
            guard let part = CPUQuantizedStorage(tensor, pool: pool) else { return nil }
            parts.append(part)
        }
        self.parts = parts
    }

    var packedBytes: Int? { parts.reduce(0) { $0 + $1.tensor.byteCount } }

    /// Row `row` of the whole weight decoded into `out`.
    func dequantizeRow(_ row: Int, into out: UnsafeMutablePointer<Float>) {
        var first = 0
        for part in parts {
            if row < first + part.tensor.rows { return part.dequantizeRow(row - first, into: out) }
            first += part.tensor.rows
        }
    }
}

extension DeviceTensor {
    /// The parts of a weight the CPU backend kept quantized in several formats; nil otherwise.
    var cpuStackedQuantized: CPUStackedQuantizedStorage? { storage as? CPUStackedQuantizedStorage }
}
