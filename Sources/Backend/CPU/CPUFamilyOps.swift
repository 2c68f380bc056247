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
        out.update(from: src, count: qkv.count)
        let width = qkv.columns
        parallelRanges(qkv.rows, minimumPerTask: Self.rowsPerTask(width)) { rows in
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
        return result
    }

    public func geluTanhAndMultiply(_ gateUp: DeviceTensor) throws -> DeviceTensor {
        guard gateUp.shape.count == 2, gateUp.columns % 2 == 0 else {
            throw BackendError.shapeMismatch(op: "geluTanhAndMultiply", detail: "gate/up \(gateUp.shape) needs an even column count")
        }
        let x = try gateUp.cpu("geluTanhAndMultiply")
        let rows = gateUp.rows
        let inter = gateUp.columns / 2
        let (result, out) = try allocate([rows, inter])
        parallelRanges(rows * inter, minimumPerTask: Self.elementsPerTask) { range in
            for i in range {
                let r = i / inter
                let c = i - r * inter
                out[i] = Self.geluTanh(x[r * 2 * inter + c]) * x[r * 2 * inter + inter + c]
            }
        }
        return result
    }

    /// PyTorch's `gelu(x, approximate="tanh")`: `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.
    @inline(__always)
    static func geluTanh(_ x: Float) -> Float {
        let inner: Float = 0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1 + tanh(inner))
    }

    public func scale(_ x: DeviceTensor, by factor: Float) throws -> DeviceTensor {
        let src = try x.cpu("scale")
        let (result, out) = try allocate(x.shape)
        parallelRanges(x.count, minimumPerTask: Self.elementsPerTask) { range in
            for i in range { out[i] = src[i] * factor }
        }
        return result
    }
}
