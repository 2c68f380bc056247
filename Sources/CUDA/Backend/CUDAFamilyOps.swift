import Backend
import HiFCCore

/// The CUDA backend's ops that only some model families use: Qwen3's and Gemma 3's q/k head norm,
/// Gemma's GELU-tanh gate and scaled embeddings (kernels in model_families.cu).
extension CUDABackend {
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
        let x = try float32(qkv, "normalizeQueryKeyHeads")
        let qw = try bfloat16(queryWeight, "normalizeQueryKeyHeads")
        let kw = try bfloat16(keyWeight, "normalizeQueryKeyHeads")
        let (out, p) = try allocate(qkv.shape, .float32)
        try kernels.queryKeyHeadNorm(
            x: try x.cudaAddress("normalizeQueryKeyHeads"), output: p, queryWeight: try qw.cudaAddress("normalizeQueryKeyHeads"),
            keyWeight: try kw.cudaAddress("normalizeQueryKeyHeads"), tokens: qkv.rows, heads: heads, kvHeads: kvHeads,
            headDim: headDim, eps: epsilon, stream: stream)
        return out
    }

    public func geluTanhAndMultiply(_ gateUp: DeviceTensor) throws -> DeviceTensor {
        guard gateUp.shape.count == 2, gateUp.columns % 2 == 0 else {
            throw BackendError.shapeMismatch(op: "geluTanhAndMultiply", detail: "gate/up \(gateUp.shape) needs an even column count")
        }
        let x = try float32(gateUp, "geluTanhAndMultiply")
        let inter = gateUp.columns / 2
        let (out, p) = try allocate([gateUp.rows, inter], .bfloat16)
        let gate = try x.cudaAddress("geluTanhAndMultiply")
        try kernels.geluTanhMul(
            gate: gate, up: gate + UInt64(inter * 4), stride: gateUp.columns, output: p, inter: inter, rows: gateUp.rows, stream: stream)
        return out
    }

    public func scale(_ x: DeviceTensor, by factor: Float) throws -> DeviceTensor {
        let xf = try float32(x, "scale")
        let (out, p) = try allocate(x.shape, .float32)
        try kernels.scale(try xf.cudaAddress("scale"), output: p, factor: factor, count: x.count, stream: stream)
        return out
    }
}

extension CUDAKernels {
    /// Per-head RMSNorm of the q and k heads of `tokens` fused q|k|v rows (fp32) into `output`
    /// (fp32, v copied), with bf16 `[headDim]` weights.
    public func queryKeyHeadNorm(
        x: CUdeviceptr, output: CUdeviceptr, queryWeight: CUdeviceptr, keyWeight: CUdeviceptr, tokens: Int, heads: Int,
        kvHeads: Int, headDim: Int, eps: Float, stream: CUDAStream
    ) throws {
        let all = heads + 2 * kvHeads
        let headsPerBlock = 4
        var a = KernelArguments()
        a.add(x)
        a.add(output)
        a.add(queryWeight)
        a.add(keyWeight)
        a.add(int: heads)
        a.add(int: kvHeads)
        a.add(int: headDim)
        a.add(eps)
        try library.function("qk_head_rmsnorm_f32").launch(
            grid: (tokens, (all + headsPerBlock - 1) / headsPerBlock, 1), block: (32 * headsPerBlock, 1, 1), stream: stream, arguments: a)
    }

    /// `out[r, i] = gelu_tanh(gate[r, i]) · up[r, i]` (bf16 out); gate/up rows `stride` floats apart.
    public func geluTanhMul(gate: CUdeviceptr, up: CUdeviceptr, stride: Int, output: CUdeviceptr, inter: Int, rows: Int, stream: CUDAStream) throws {
        var a = KernelArguments()
        a.add(gate)
        a.add(up)
        a.add(int: stride)
        a.add(output)
        a.add(int: inter)
        a.add(int: rows)
        let n = rows * inter
        try library.function("gelu_tanh_mul_f32_to_bf16").launch(
            grid: (max(1, min((n + 255) / 256, 65535)), 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }

    /// `out = x · factor` over `n` fp32 values.
    public func scale(_ x: CUdeviceptr, output: CUdeviceptr, factor: Float, count n: Int, stream: CUDAStream) throws {
        var a = KernelArguments()
        a.add(x)
        a.add(output)
        a.add(factor)
        a.add(Int64Arg(n))
        try library.function("scale_f32").launch(
            grid: (max(1, min((n + 255) / 256, 65535)), 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }
}
