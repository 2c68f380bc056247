import CPUKernels
import Foundation

/// The CPU backend's ops that only some model families use: Qwen3's and Gemma 3's q/k head norm,
/// Gemma's GELU-tanh gate and scaled embeddings.
extension CPUBackend {
    public func normalizeQueryKeyHeads(
        _ qkv: DeviceTensor, heads: Int, kvHeads: Int, headDim: Int, queryWeight: DeviceTensor, keyWeight: DeviceTensor,
        epsilon: Float
    ) throws -> DeviceTensor {
        guard qkv.shape.count == 2, qkv.columns == (heads + 2 * kvHeads) * headDim, queryWeight.count == headDim,
            keyWeight.count == headDim
        else {
            throw BackendError.shapeMismatch(
                op: "normalizeQueryKeyHeads",
                detail: "qkv \(qkv.shape) for \(heads) + 2 x \(kvHeads) heads of \(headDim), weights \(queryWeight.shape) and \(keyWeight.shape)")
        }
        let src = try qkv.cpu("normalizeQueryKeyHeads")
        let qw = try queryWeight.cpu("normalizeQueryKeyHeads")
        let kw = try keyWeight.cpu("normalizeQueryKeyHeads")
        let (result, out) = try allocate(qkv.shape)
        let (count, rowCount, width) = (qkv.count, qkv.rows, qkv.columns)
        try perform {
            out.update(from: src, count: count)
            parallelRanges(rowCount, minimumPerTask: Self.rowsPerTask(width)) { rows in
                for row in rows {
                    for head in 0..<(heads + kvHeads) {
                        let x = out + row * width + head * headDim
                        let w = head < heads ? qw : kw
                        var sum: Float = 0
                        for i in 0..<headDim { sum += x[i] * x[i] }
                        let inverse = 1 / (sum / Float(headDim) + epsilon).squareRoot()
                        for i in 0..<headDim { x[i] = x[i] * inverse * w[i] }
                    }
                }
            }
        }
        return result
    }

    public func geluTanhAndMultiply(_ gateUp: DeviceTensor) throws -> DeviceTensor {
        guard gateUp.shape.count == 2, gateUp.columns % 2 == 0 else {
            throw BackendError.shapeMismatch(op: "geluTanhAndMultiply", detail: "gate/up \(gateUp.shape) needs an even column count")
        }
        let (result, out) = try allocate([gateUp.rows, gateUp.columns / 2])
        let (raw, source, rows, inter) = (pool.raw, try gateUp.cpu("geluTanhAndMultiply"), gateUp.rows, gateUp.columns / 2)
        // PyTorch's `gelu(x, approximate="tanh")`, as `x · sigmoid(2u)` in the vector kernels.
        try perform { hifc_gelu_tanh_mul(raw, source, out, rows, inter) }
        return result
    }

    public func scale(_ x: DeviceTensor, by factor: Float) throws -> DeviceTensor {
        let src = try x.cpu("scale")
        let (result, out) = try allocate(x.shape)
        let count = x.count
        try perform {
            parallelRanges(count, minimumPerTask: Self.elementsPerTask) { range in
                for i in range { out[i] = src[i] * factor }
            }
        }
        return result
    }
}
