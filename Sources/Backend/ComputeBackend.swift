import HiFCCore

/// The op-level compute interface the forward passes (in Models) are written against.
/// The CPU backend implements it here; the CUDA backend implements it on the GPU.
///
/// Conventions: activations are 2-D `[tokens, features]`, row-major; a linear weight is
/// `[out, in]` as in PyTorch; every op returns a new tensor (a backend may reuse freed memory).
/// Ops that need per-step facts (positions, slots, block tables) take the `PreparedStep` made by
/// `prepare(_:)` once per step.
public protocol ComputeBackend: AnyObject, Sendable {
    /// A short name for logs ("cpu (openblas)", "cuda (H100)").
    var name: String { get }
    /// The element type the backend keeps KV in unless told otherwise (`--kv-dtype auto`).
    var kvDType: KVDType { get }
    /// Most tokens a server's engine step computes unless told otherwise (`--max-batch-tokens`):
    /// enough prompt tokens a step to keep the backend busy, few enough that the decodes riding
    /// along are not held up for long.
    var defaultMaxStepTokens: Int { get }

    // MARK: Memory

    /// Copies (or, where the format allows, references) a weight; the backend picks its storage
    /// dtype (the CPU keeps f32, a GPU bf16).
    func upload(_ tensor: HostTensor) throws -> DeviceTensor
    /// Uploads a weight kept in GGML blocks (from a GGUF file). A backend with kernels for the
    /// block format may keep it quantized; the default decodes it to f32 and uses
    /// `upload(_: HostTensor)`, which stores it in the backend's dtype.
    func upload(_ tensor: QuantizedTensor) throws -> DeviceTensor
    /// Uploads the rows of GGML block tensors of different formats as one weight; the default
    /// decodes them and stacks them as f32.
    func upload(stackedRows parts: [QuantizedTensor]) throws -> DeviceTensor
    /// A small table kept in f32 whatever the storage dtype (rotary inverse frequencies).
    func uploadFloat32(_ values: [Float], shape: [Int]) throws -> DeviceTensor
    /// Copies a tensor to the host as f32, row-major.
    func download(_ tensor: DeviceTensor) throws -> [Float]
    /// Copies a 2-D tensor to the host as one f32 array per row (a step's logits, one row per
    /// sequence), each copied once.
    func downloadRows(_ tensor: DeviceTensor) throws -> [[Float]]
    /// The index of the largest value of each row of a 2-D tensor (the first on ties), found where
    /// the tensor lives so that only the indices reach the host: greedy decoding's pick.
    func argmaxRows(_ tensor: DeviceTensor) throws -> [Int]
    /// `argmaxRows` queued after the work so far, without waiting for it: a backend that runs
    /// ahead of the host (a GPU) returns before the indices exist.
    func argmaxRowsLater(_ tensor: DeviceTensor) throws -> any StepTokens
    /// Each row's token, queued like `argmaxRowsLater`: `draws[row]`'s where it has one (from the
    /// row soft-capped by `cap · tanh(x / cap)` when `softcap` is set), else the largest value's
    /// index. A backend without a draw of its own makes them on the host (`hostPicks`).
    func pickRowsLater(_ tensor: DeviceTensor, draws: [TokenDraw?], softcap: Float?) throws -> any StepTokens
    /// Whether a step can be launched behind a step with draws before its tokens are back without
    /// waiting for it there: `pickRowsLater` queues its draws where the logits are, like the
    /// argmax, or (a backend that does not run ahead) every op is done when it returns anyway.
    var queuesDraws: Bool { get }
    /// Whether ops return before their work is done (a GPU's queue), so that the host can plan
    /// and launch the next step while this one runs.
    var runsAhead: Bool { get }
    /// Allocates a KV pool of `blocks` blocks of `layout`; a dtype the backend cannot keep (its
    /// `kvDType`, or another its kernels read and write) is an error naming it.
    func makeKVCachePool(layout: KVBlockLayout, blocks: Int) throws -> any KVCachePool
    /// Makes the step's metadata available to the ops (a GPU uploads it once here).
    func prepare(_ batch: StepBatch) throws -> any PreparedStep
    /// `prepare`, with the token ids of `batch.feedRows`' rows taken from `previous`, the last
    /// step's picked tokens, where they are (on a GPU, before they reach the host).
    func prepare(_ batch: StepBatch, feeding previous: any StepTokens) throws -> any PreparedStep
    /// Runs `body`, a step's device work from `step` to the logits it returns, and returns them.
    /// A backend may record the work the first time a step of some launch shape comes and, for
    /// later steps of that shape, replay the record instead of calling `body` (the CUDA
    /// backend's decode-step graphs): `body` must queue the same work for every step of a
    /// shape, reading per-step values only through `step`, with `model`'s weights over `kv`.
    /// The result is valid until the next step.
    func runStep(
        _ step: any PreparedStep, model: AnyObject, kv: any KVCachePool, _ body: (any PreparedStep) throws -> DeviceTensor?
    ) throws -> DeviceTensor?

    // MARK: Ops

    /// Rows of `table` (`[vocab, hidden]`) for the step's token ids: `[tokens, hidden]`.
    func embedding(_ table: DeviceTensor, step: any PreparedStep) throws -> DeviceTensor
    /// Root-mean-square normalization of each row, times `weight` (`[features]`).
    func rmsNorm(_ x: DeviceTensor, weight: DeviceTensor, epsilon: Float) throws -> DeviceTensor
    /// `x · weightᵀ + bias`: `[tokens, in]` × `[out, in]` → `[tokens, out]`.
    func linear(_ x: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor?) throws -> DeviceTensor
    /// One layer's attention inputs from its fused q|k|v product `qkv`
    /// (`[tokens, (heads + 2·kvHeads)·headDim]`, q then k then v columns): rotates q and k by
    /// each row's position with the "rotate half" convention of HF Llama (pairs
    /// `(i, i + headDim/2)` turn by `position * inverseFrequencies[i]`; `inverseFrequencies` has
    /// `headDim/2` entries from `uploadFloat32`, scaling already applied), writes row `r`'s k and
    /// v into `layer` of the pool at slot `step.batch.slotMapping[r]`, and returns the rotated q
    /// (`[tokens, heads·headDim]`). One op, so a GPU makes one pass over the row.
    func attentionInputs(
        qkv: DeviceTensor, heads: Int, headDim: Int, inverseFrequencies: DeviceTensor, layer: Int,
        pool: any KVCachePool, step: any PreparedStep
    ) throws -> DeviceTensor
    /// `attentionInputs(qkv: linear(x, weight: qkv, bias: bias), ...)` as one op, so a GPU can
    /// rotate q and k and store k and v as the product's sums come out.
    func projectAttentionInputs(
        _ x: DeviceTensor, qkv: DeviceTensor, bias: DeviceTensor?, heads: Int, headDim: Int, inverseFrequencies: DeviceTensor,
        layer: Int, pool: any KVCachePool, step: any PreparedStep
    ) throws -> DeviceTensor
    /// `silu(gate) * up` for `gateUp` = `[tokens, 2*inter]` holding gate in its first `inter`
    /// columns and up in the rest (the fused gate/up product): `[tokens, inter]`.
    func siluAndMultiply(_ gateUp: DeviceTensor) throws -> DeviceTensor
    /// The MLP's gated half: `siluAndMultiply(linear(x, weight: gateUp, bias: nil))`, with
    /// `gateUp` the fused `[2*inter, in]` weight (gate rows first): `[tokens, inter]`. One op, so
    /// a GPU can apply the activation as the product's sums come out instead of writing them.
    func gatedLinear(_ x: DeviceTensor, gateUp: DeviceTensor) throws -> DeviceTensor
    /// The whole SiLU-gated MLP: `linear(gatedLinear(x, gateUp: gateUp), weight: down, bias: nil)`,
    /// `down` being `[out, inter]`: `[tokens, out]`. One op, so a backend may run both products in
    /// one parallel call.
    func gatedMLP(_ x: DeviceTensor, gateUp: DeviceTensor, down: DeviceTensor) throws -> DeviceTensor
    /// `a + b`, elementwise.
    func add(_ a: DeviceTensor, _ b: DeviceTensor) throws -> DeviceTensor
    /// The residual add that ends a block fused with the norm that begins the next: returns
    /// `sum = x + y` and `rmsNorm(sum, weight, epsilon)`.
    func addAndNormalize(
        _ x: DeviceTensor, _ y: DeviceTensor, weight: DeviceTensor, epsilon: Float
    ) throws -> (sum: DeviceTensor, normed: DeviceTensor)
    /// The product that ends a block, its residual add and the norm that begins the next:
    /// `addAndNormalize(residual, linear(x, weight: weight, bias: nil), weight: norm, epsilon:
    /// epsilon)`. One op, so that a GPU can do the add and most of the norm as the product's sums
    /// come out; its `normed` may then be a form that only its own ops read.
    func linearAddAndNormalize(
        _ x: DeviceTensor, weight: DeviceTensor, residual: DeviceTensor, norm: DeviceTensor, epsilon: Float
    ) throws -> (sum: DeviceTensor, normed: DeviceTensor)
    /// The same after a SiLU-gated MLP: `addAndNormalize(residual, gatedMLP(x, gateUp: gateUp,
    /// down: down), weight: norm, epsilon: epsilon)`.
    func gatedMLPAddAndNormalize(
        _ x: DeviceTensor, gateUp: DeviceTensor, down: DeviceTensor, residual: DeviceTensor, norm: DeviceTensor, epsilon: Float
    ) throws -> (sum: DeviceTensor, normed: DeviceTensor)
    /// Causal attention of `q` (`[tokens, heads*headDim]`) over each sequence's cached K/V in
    /// `layer` of the pool (which `attentionInputs` has already extended by this step's rows): query row `i`
    /// of a sequence, at position `p = contextLength - queryLength + i`, sees positions `0 ... p`, or
    /// with a sliding `window` only the last `window` of them, `p - window + 1 ... p` (HF's
    /// sliding-window mask: key `j` is visible when `p - j < window`). Query head `h` reads KV
    /// head `h / (heads / kvHeads)`. Returns `[tokens, heads*headDim]`.
    func pagedAttention(
        q: DeviceTensor, heads: Int, layer: Int, scale: Float, window: Int?, pool: any KVCachePool,
        step: any PreparedStep
    ) throws -> DeviceTensor
    /// Root-mean-square normalization of every q head and every k head of a fused q|k|v product
    /// (`[tokens, (heads + 2·kvHeads)·headDim]`), each head on its own `headDim` values, times
    /// `queryWeight` or `keyWeight` (`[headDim]`); the v columns are copied unchanged. Qwen3's and
    /// Gemma 3's q/k norm, which comes before the rotation.
    func normalizeQueryKeyHeads(
        _ qkv: DeviceTensor, heads: Int, kvHeads: Int, headDim: Int, queryWeight: DeviceTensor, keyWeight: DeviceTensor,
        epsilon: Float
    ) throws -> DeviceTensor
    /// `gelu_tanh(gate) * up` for `gateUp` = `[tokens, 2*inter]` (gate columns first), with
    /// PyTorch's tanh approximation of GELU (`gelu_pytorch_tanh`, Gemma's MLP): `[tokens, inter]`.
    func geluTanhAndMultiply(_ gateUp: DeviceTensor) throws -> DeviceTensor
    /// `x * factor`, elementwise (Gemma's embeddings, scaled by the square root of the width).
    func scale(_ x: DeviceTensor, by factor: Float) throws -> DeviceTensor
    /// The rows `step.batch.logitRows` of `x`, in that order.
    func gatherLogitRows(_ x: DeviceTensor, step: any PreparedStep) throws -> DeviceTensor
}

extension ComputeBackend {
    /// The indices found now: for backends whose ops finish before they return.
    public func argmaxRowsLater(_ tensor: DeviceTensor) throws -> any StepTokens {
        ReadyStepTokens(try argmaxRows(tensor))
    }

    /// The draws are made on the host (`hostPicks`) as `pickRowsLater` is called: no step waits
    /// for them on a backend whose ops are done when they return, every step of one that runs ahead.
    public var queuesDraws: Bool { !runsAhead }

    /// The picks made now, on the host (`hostPicks`).
    public func pickRowsLater(_ tensor: DeviceTensor, draws: [TokenDraw?], softcap: Float?) throws -> any StepTokens {
        ReadyStepTokens(try hostPicks(tensor, draws: draws, softcap: softcap))
    }

    /// `pickRowsLater`'s tokens, the draws made on the host (the rows with one come down, and
    /// are drawn from on several threads, `BatchSampling`); the other rows take `argmaxRows`,
    /// which runs only where there are such rows.
    public func hostPicks(_ tensor: DeviceTensor, draws: [TokenDraw?], softcap: Float?) throws -> [Int] {
        let drawn = draws.indices.filter { draws[$0] != nil }
        var picks = drawn.count == draws.count ? [Int](repeating: 0, count: draws.count) : try argmaxRows(tensor)
        guard !drawn.isEmpty else { return picks }
        let rows = try downloadRows(tensor)
        var made = drawn.map { draws[$0]! }
        let logits = drawn.map { i in softcap.map { rows[i].softcapped(by: $0) } ?? rows[i] }
        for (k, token) in BatchSampling.sample(&made, logits, choose: { draw, row in draw.pick(from: row) }).enumerated() {
            picks[drawn[k]] = token
        }
        return picks
    }

    /// False: for backends whose ops finish before they return.
    public var runsAhead: Bool { false }

    /// Waits for `previous` and writes its tokens into the batch on the host.
    public func prepare(_ batch: StepBatch, feeding previous: any StepTokens) throws -> any PreparedStep {
        try prepare(batch.fed(by: try previous.wait()))
    }

    /// Calls `body`: for backends that launch every step as it comes.
    public func runStep(
        _ step: any PreparedStep, model: AnyObject, kv: any KVCachePool, _ body: (any PreparedStep) throws -> DeviceTensor?
    ) throws -> DeviceTensor? {
        try body(step)
    }

    /// Dequantizes at load: for backends without kernels on GGML blocks.
    public func upload(_ tensor: QuantizedTensor) throws -> DeviceTensor {
        try upload(try tensor.dequantized())
    }

    /// Dequantizes at load and stacks: for backends without kernels on GGML blocks.
    public func upload(stackedRows parts: [QuantizedTensor]) throws -> DeviceTensor {
        try upload(try WeightTensor.stackedQuantized(parts).dense())
    }

    /// The product, then the attention inputs: for backends with nothing to gain from fusing them.
    public func projectAttentionInputs(
        _ x: DeviceTensor, qkv: DeviceTensor, bias: DeviceTensor?, heads: Int, headDim: Int, inverseFrequencies: DeviceTensor,
        layer: Int, pool: any KVCachePool, step: any PreparedStep
    ) throws -> DeviceTensor {
        try attentionInputs(
            qkv: try linear(x, weight: qkv, bias: bias), heads: heads, headDim: headDim,
            inverseFrequencies: inverseFrequencies, layer: layer, pool: pool, step: step)
    }

    /// Causal attention over the whole context (no sliding window).
    public func pagedAttention(
        q: DeviceTensor, heads: Int, layer: Int, scale: Float, pool: any KVCachePool, step: any PreparedStep
    ) throws -> DeviceTensor {
        try pagedAttention(q: q, heads: heads, layer: layer, scale: scale, window: nil, pool: pool, step: step)
    }

    /// The product, then the activation: for backends with nothing to gain from fusing them.
    public func gatedLinear(_ x: DeviceTensor, gateUp: DeviceTensor) throws -> DeviceTensor {
        try siluAndMultiply(try linear(x, weight: gateUp, bias: nil))
    }

    /// The gated half, then the down product: for backends with nothing to gain from fusing them.
    public func gatedMLP(_ x: DeviceTensor, gateUp: DeviceTensor, down: DeviceTensor) throws -> DeviceTensor {
        try linear(try gatedLinear(x, gateUp: gateUp), weight: down, bias: nil)
    }

    /// The product, then the add and norm: for backends with nothing to gain from fusing them.
    public func linearAddAndNormalize(
        _ x: DeviceTensor, weight: DeviceTensor, residual: DeviceTensor, norm: DeviceTensor, epsilon: Float
    ) throws -> (sum: DeviceTensor, normed: DeviceTensor) {
        try addAndNormalize(residual, try linear(x, weight: weight, bias: nil), weight: norm, epsilon: epsilon)
    }

    /// The MLP, then the add and norm: for backends with nothing to gain from fusing them.
    public func gatedMLPAddAndNormalize(
        _ x: DeviceTensor, gateUp: DeviceTensor, down: DeviceTensor, residual: DeviceTensor, norm: DeviceTensor, epsilon: Float
    ) throws -> (sum: DeviceTensor, normed: DeviceTensor) {
        try addAndNormalize(residual, try gatedMLP(x, gateUp: gateUp, down: down), weight: norm, epsilon: epsilon)
    }
}
