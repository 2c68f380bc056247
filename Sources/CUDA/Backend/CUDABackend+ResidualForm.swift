import Backend
import HiFCCore

/// The products that end a block (o, down) in the skinny GEMM's residual form at decode batches:
/// the product adds the residual, writes the sum and the next norm's input but for its 1/rms
/// factor, and the product after it (q|k|v, gate|up) scales its own sums by that factor. So no
/// add + RMSNorm kernel runs between two products (`gemv.cu`, `GemvResidualOut`).
extension CUDABackend {
    /// Taken as the attention block's end (o), where the models call it; the MLP block's end is
    /// `gatedMLPAddAndNormalize`. The two may differ in form (`ResidualFormSetting`).
    public func linearAddAndNormalize(
        _ x: DeviceTensor, weight: DeviceTensor, residual: DeviceTensor, norm: DeviceTensor, epsilon: Float
    ) throws -> (sum: DeviceTensor, normed: DeviceTensor) {
        try productAddAndNormalize(x, weight: weight, residual: residual, norm: norm, epsilon: epsilon, ending: .attention)
    }

    /// `linearAddAndNormalize` for the product that ends `block`: in the residual form where
    /// `residualForm` takes it for this batch, else the product and the add + RMSNorm kernel.
    private func productAddAndNormalize(
        _ x: DeviceTensor, weight: DeviceTensor, residual: DeviceTensor, norm: DeviceTensor, epsilon: Float, ending block: BlockEnd
    ) throws -> (sum: DeviceTensor, normed: DeviceTensor) {
        let op = "linearAddAndNormalize"
        let m = x.rows
        let n = weight.rows
        let k = x.columns
        guard weight.shape.count == 2, weight.columns == k, residual.shape == [m, n], norm.count == n else {
            throw BackendError.shapeMismatch(op: op, detail: "x \(x.shape), weight \(weight.shape), residual \(residual.shape), norm \(norm.shape)")
        }
        let xb = try bfloat16(x, op)
        let w = try bfloat16(weight, op)
        let xAddress = try xb.cudaAddress(op)
        let wAddress = try w.cudaAddress(op)
        // n is the next product's k, which the skinny kernel reads 8 at a time.
        guard residualForm.takes(block, rows: m, memoryBandwidth: device.info.memoryBandwidth), n % 8 == 0,
            CUDAKernels.skinnyGEMMAccepts(m: m, n: n, k: k, x: xAddress, w: wAddress)
        else {
            return try addAndNormalize(residual, try linear(xb, weight: w, bias: nil), weight: norm, epsilon: epsilon)
        }
        let r = try float32(residual, op)
        let g = try bfloat16(norm, op)
        let (sum, sumAddress) = try allocate([m, n], .float32)
        let (values, valuesAddress) = try allocate([m, n], .bfloat16)
        let parts = kernels.skinnyGEMMParts(m: m, n: n)
        let (squares, squaresAddress) = try allocate([parts * CUDAKernels.skinnyGEMMMaxRows], .float32)
        // Held through the launch: released earlier, a converted input could hand its memory to an output.
        let rowScale = try withExtendedLifetime((xb, w, r, g)) {
            try kernels.skinnyResidualLinear(
                x: xAddress, w: wAddress, m: m, n: n, k: k, residual: try r.cudaAddress(op), sum: sumAddress,
                normWeight: try g.cudaAddress(op), normed: valuesAddress, squares: squaresAddress, epsilon: epsilon, stream: stream)
        }
        let normed = DeviceTensor(
            storage: CUDARowScaledStorage(values: values, squares: squares, rowScale: rowScale), shape: [m, n], dtype: .bfloat16)
        return (sum, normed)
    }

    public func gatedMLPAddAndNormalize(
        _ x: DeviceTensor, gateUp: DeviceTensor, down: DeviceTensor, residual: DeviceTensor, norm: DeviceTensor, epsilon: Float
    ) throws -> (sum: DeviceTensor, normed: DeviceTensor) {
        try productAddAndNormalize(
            try gatedLinear(x, gateUp: gateUp), weight: down, residual: residual, norm: norm, epsilon: epsilon, ending: .mlp)
    }

    /// `t` with its rows scaled, when it is a residual form's `normed` (any other tensor as it is):
    /// for the ops that do not take a row scale.
    func whole(_ t: DeviceTensor, _ op: String) throws -> DeviceTensor {
        guard let scaled = t.storage as? CUDARowScaledStorage else { return t }
        let (out, p) = try allocate(t.shape, .bfloat16)
        try kernels.applyRowScale(
            values: try scaled.values.cudaAddress(op), rowScale: scaled.rowScale, output: p, rows: t.rows, dim: t.columns, stream: stream)
        return out
    }

    /// x as the bf16 input of a skinny product of `n` features over `weight`: a residual form's
    /// rows with their row scale where the skinny kernel takes the product, otherwise x made whole.
    func skinnyInput(_ x: DeviceTensor, n: Int, weight: CUdeviceptr, _ op: String) throws -> (DeviceTensor, SkinnyRowScale?) {
        guard let scaled = x.storage as? CUDARowScaledStorage else { return (try bfloat16(x, op), nil) }
        let values = try scaled.values.cudaAddress(op)
        guard CUDAKernels.skinnyGEMMAccepts(m: x.rows, n: n, k: x.columns, x: values, w: weight) else { return (try whole(x, op), nil) }
        return (scaled.values, scaled.rowScale)
    }
}
