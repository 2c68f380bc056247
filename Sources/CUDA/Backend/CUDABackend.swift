import Backend
import Foundation
import HiFCCore
import Synchronization

/// The `ComputeBackend` on an NVIDIA GPU: weights in bf16 (uploaded once), activations in fp32,
/// matrix products through cuBLAS or, for decode batches of up to 16 rows, the skinny kernel
/// of `gemv.cu` (bf16 inputs, fp32 accumulation either way), everything else by the
/// NVRTC-compiled kernels of `Sources/CUDA/Kernels`, all on one compute stream.
///
/// Dtypes between ops: `embedding`, `linear`, `attentionInputs`, `add` give fp32; `rmsNorm`,
/// `addAndNormalize`'s norm, `siluAndMultiply` and `pagedAttention` give bf16, since a matrix
/// product reads them next.
/// Every op accepts either and converts where it must.
public final class CUDABackend: ComputeBackend, @unchecked Sendable {
    // The model calls ops from one thread at a time; all device work is ordered on `stream`.
    /// The GPU.
    public let device: CUDADevice
    /// The compiled kernels.
    public let kernels: CUDAKernels
    /// cuBLAS on the compute stream.
    public let blas: CUBLAS
    /// The stream every step runs on; transfers order themselves against it with events.
    public let computeStream: CUDAStream
    /// The stream ops queue their work on: the compute stream, or while a decode step's CUDA
    /// graph is being captured, the capture's own stream.
    public var stream: CUDAStream { capture?.stream ?? computeStream }
    /// Where ops take device memory from: the op cache, or during a capture the graphs' memory.
    var memory: DeviceMemoryCache { capture?.memory ?? opMemory }
    private let opMemory: DeviceMemoryCache
    /// The capture in progress, if any (set and cleared by `capturing`).
    private var capture: (stream: CUDAStream, memory: DeviceMemoryCache)?
    /// Decode steps captured in CUDA graphs and replayed (`HIFC_CUDA_GRAPHS`).
    let stepGraphs: CUDAStepGraphs
    /// Page-locked memory that the metadata of steps launched kernel by kernel passes through,
    /// used in turn (a step waits only for the copy of the step four before it).
    private let stepStaging: [MetadataStaging]
    private var nextStepStaging = 0
    /// Pinned host memory that downloads pass through, grown to the largest download so far.
    private let downloadStaging = Mutex<PinnedBuffer?>(nil)
    /// Pinned host memory that steps' picked tokens come back through.
    private let tokenStaging: CUDATokenStaging
    /// With `HIFC_CUDA_STEP_TIMING=1`, one stderr line per step: how long the host took to queue
    /// it and how long it then waited for the GPU (a wait near zero means the host is the bound).
    private let stepTiming: CUDAStepTiming?
    /// Whether sampled requests' draws are made on the GPU (`sample_rows_f32`), their logits left
    /// there, rather than on the host: the same tokens (`hifc check gpu`), and a sampled decode
    /// step 13-29% shorter on an H100 (bench/results/logprobs.md). `HIFC_CUDA_DEVICE_SAMPLING=0`
    /// makes them on the host, to compare the two in one run.
    let drawsOnDevice: Bool
    /// Which decode products end their blocks in the skinny GEMM's residual form
    /// (`linearAddAndNormalize`): by the rule, or as `HIFC_CUDA_RESIDUAL_FORM` sets it, to compare
    /// the forms in one run.
    let residualForm: ResidualFormSetting

    /// Opens GPU `ordinal`, compiles (or loads from the cache) the kernels and creates cuBLAS.
    public init(ordinal: Int = 0) throws {
        device = try CUDADevice(ordinal: ordinal)
        kernels = try CUDAKernels(library: try KernelLibrary(device: device, sources: try KernelSources.load()))
        blas = try CUBLAS(device: device)
        computeStream = try device.makeStream()
        opMemory = DeviceMemoryCache(device: device)
        stepGraphs = try CUDAStepGraphs(device: device)
        var staging: [MetadataStaging] = []
        for _ in 0..<4 { staging.append(try MetadataStaging(device: device)) }
        stepStaging = staging
        tokenStaging = CUDATokenStaging(device: device)
        stepTiming = ProcessInfo.processInfo.environment["HIFC_CUDA_STEP_TIMING"] == "1" ? try CUDAStepTiming(device: device) : nil
        drawsOnDevice = ProcessInfo.processInfo.environment["HIFC_CUDA_DEVICE_SAMPLING"] != "0"
        residualForm = try ResidualFormSetting.fromEnvironment()
    }

    public var name: String { "cuda:\(device.info.ordinal) (\(device.info.name))" }
    public var kvDType: KVDType { .bfloat16 }
    /// 2048, vLLM's OpenAI-server default for GPUs under 70 GiB. On the H200 with steps launched
    /// ahead, 64 streams of 129-token prompts gave 0.885x / 0.924x / 0.914x bench model's batch-64
    /// decode at 512 / 2048 / 8192 tokens a step (TTFT p50 48 / 151 / 225 ms): a wave's admission
    /// steps are not launched ahead, and at 512 it took 17 of them (bench-serve.md).
    public var defaultMaxStepTokens: Int { 2048 }

    // MARK: Memory

    func allocate(_ shape: [Int], _ dtype: TensorDType) throws -> (DeviceTensor, CUdeviceptr) {
        let bytes = max(1, shape.reduce(1, *)) * dtype.size
        let storage = CUDAStorage(buffer: try memory.take(bytes), cache: memory)
        return (DeviceTensor(storage: storage, shape: shape, dtype: dtype), storage.address)
    }

    public func upload(_ tensor: HostTensor) throws -> DeviceTensor {
        let n = tensor.count
        var bits = [UInt16](repeating: 0, count: n)
        if tensor.dtype == .bfloat16 {
            bits.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: tensor.bytes, byteCount: n * 2) }
        } else {
            for i in 0..<n { bits[i] = BFloat16.bits(tensor.float(at: i)) }
        }
        // Weights live as long as the model: their own allocation, not the op cache.
        let buffer = try device.allocate(max(2, n * 2))
        try buffer.upload(bits)
        return DeviceTensor(storage: CUDAStorage(buffer: buffer, cache: nil), shape: tensor.shape, dtype: .bfloat16)
    }

    public func uploadFloat32(_ values: [Float], shape: [Int]) throws -> DeviceTensor {
        guard shape.reduce(1, *) == values.count else {
            throw BackendError.shapeMismatch(op: "uploadFloat32", detail: "\(values.count) values for shape \(shape)")
        }
        let buffer = try device.allocate(max(4, values.count * 4))
        try buffer.upload(values)
        return DeviceTensor(storage: CUDAStorage(buffer: buffer, cache: nil), shape: shape, dtype: .float32)
    }

    public func download(_ tensor: DeviceTensor) throws -> [Float] {
        try downloaded(tensor) { pinned, count in
            [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                buffer.baseAddress!.update(from: pinned, count: count)
                initialized = count
            }
        }
    }

    public func downloadRows(_ tensor: DeviceTensor) throws -> [[Float]] {
        guard tensor.shape.count == 2 else { throw BackendError.shapeMismatch(op: "downloadRows", detail: "shape \(tensor.shape)") }
        let columns = tensor.columns
        return try downloaded(tensor) { pinned, _ in
            (0..<tensor.rows).map { Array(UnsafeBufferPointer(start: pinned + $0 * columns, count: columns)) }
        }
    }

    public func argmaxRows(_ tensor: DeviceTensor) throws -> [Int] {
        let (indices, cache) = try queueArgmax(tensor)
        defer { cache.give(indices) }
        return try downloaded(address: indices.address, count: tensor.rows, as: Int32.self) { pinned, count in
            (0..<count).map { Int(pinned[$0]) }
        }
    }

    /// Queues the argmax of each row of `tensor` into a buffer of the memory cache returned with it.
    private func queueArgmax(_ tensor: DeviceTensor) throws -> (indices: DeviceBuffer, cache: DeviceMemoryCache) {
        guard tensor.shape.count == 2, tensor.columns > 0 else { throw BackendError.shapeMismatch(op: "argmaxRows", detail: "shape \(tensor.shape)") }
        let f = try float32(tensor, "argmaxRows")
        let cache = memory
        let indices = try cache.take(tensor.rows * 4)
        do {
            try kernels.argmax(
                logits: try f.cudaAddress("argmaxRows"), rows: tensor.rows, vocab: tensor.columns, output: indices.address, stream: stream)
        } catch {
            cache.give(indices)
            throw error
        }
        return (indices, cache)
    }

    /// Queued on the compute stream: the host goes on while the GPU works, except with
    /// `HIFC_CUDA_STEP_TIMING`, which times one step at a time.
    public var runsAhead: Bool { stepTiming == nil }

    public func argmaxRowsLater(_ tensor: DeviceTensor) throws -> any StepTokens {
        guard runsAhead else { return ReadyStepTokens(try argmaxRows(tensor)) }
        let (indices, cache) = try queueArgmax(tensor)
        do {
            return try CUDAStepTokens(indices: indices, rows: tensor.rows, memory: cache, staging: tokenStaging, stream: stream)
        } catch {
            cache.give(indices)
            throw error
        }
    }

    /// Whether draws are queued on the GPU (`drawsOnDevice`, where steps run ahead), or every op
    /// is done when it returns anyway (`HIFC_CUDA_STEP_TIMING`).
    public var queuesDraws: Bool { drawsOnDevice || !runsAhead }

    /// With `drawsOnDevice`, where steps run ahead, the argmax of every row and then, over the
    /// rows with a draw, the draw, queued on the GPU: only the tokens come back, and the step after
    /// can take them where they are. Otherwise the draws are made on the host (`hostPicks`).
    public func pickRowsLater(_ tensor: DeviceTensor, draws: [TokenDraw?], softcap: Float?) throws -> any StepTokens {
        guard drawsOnDevice, runsAhead, draws.count == tensor.rows else {
            return ReadyStepTokens(try hostPicks(tensor, draws: draws, softcap: softcap))
        }
        // Converted once, for the argmax and the draws (an f32 tensor is itself).
        let logits = try float32(tensor, "pickRowsLater")
        let (indices, cache) = try queueArgmax(logits)
        do {
            let packed = CUDAKernels.packedDraws(draws)
            let table = try cache.take(packed.count * 4)
            // Given back at once: only work queued after the kernel on this stream reuses it.
            defer { cache.give(table) }
            try uploadStepMetadata(packed, to: table.address)
            try kernels.sampleRows(
                logits: try logits.cudaAddress("pickRowsLater"), rows: tensor.rows, vocab: tensor.columns,
                draws: table.address, softcap: softcap ?? 0, output: indices.address, stream: stream)
            return try CUDAStepTokens(indices: indices, rows: tensor.rows, memory: cache, staging: tokenStaging, stream: stream)
        } catch {
            cache.give(indices)
            throw error
        }
    }

    /// `tensor` as f32 in pinned host memory, handed to `body` while the memory is held. A copy
    /// into pageable memory is staged by the driver at a few GB/s, which was milliseconds of every
    /// batch-16 decode step's 8 MB of logits.
    private func downloaded<R>(_ tensor: DeviceTensor, _ body: (UnsafePointer<Float>, Int) -> R) throws -> R {
        let f = try float32(tensor, "download")
        return try downloaded(address: try f.cudaAddress("download"), count: tensor.count, as: Float.self, body)
    }

    /// `count` elements at `address` copied to pinned host memory after the stream's work so far.
    private func downloaded<T, R>(address: CUdeviceptr, count: Int, as: T.Type, _ body: (UnsafePointer<T>, Int) -> R) throws -> R {
        let bytes = count * MemoryLayout<T>.stride
        return try downloadStaging.withLock { staging in
            if staging.map({ $0.bytes < bytes }) ?? true {
                staging = try device.allocatePinned(max(bytes, 1 << 20))
            }
            let pinned = staging!.pointer
            try stepTiming?.computeEnqueued(on: stream)
            try stream.copy(from: address, to: pinned, bytes: bytes)
            let enqueued = ContinuousClock.now
            try stream.synchronize()
            try stepTiming?.report(enqueued: enqueued, done: ContinuousClock.now)
            return body(UnsafePointer(pinned.assumingMemoryBound(to: T.self)), count)
        }
    }

    public func makeKVCachePool(layout: KVBlockLayout, blocks: Int) throws -> any KVCachePool {
        guard CUDAKernels.kvDTypes.contains(layout.dtype) else {
            throw BackendError.shapeMismatch(
                op: "makeKVCachePool",
                detail: "KV dtype \(layout.dtype): the CUDA backend keeps KV in bf16 (--kv-dtype auto or bf16) or fp8e4m3 (--kv-dtype fp8)")
        }
        return try CUDAKVCachePool(device: device, layout: layout, blocks: blocks, compute: computeStream, kernels: kernels)
    }

    /// A decode step that a graph serves comes back padded to the graph's rows, its metadata in
    /// the graph's own input buffer: run its ops through `runStep`, before preparing the next step.
    public func prepare(_ batch: StepBatch) throws -> any PreparedStep {
        stepTiming?.start(rows: batch.tokenCount)
        let step: CUDAPreparedStep
        if let graph = try stepGraphs.graph(serving: batch) {
            step = try CUDAPreparedStep(batch: batch, graph: graph, backend: self)
        } else {
            step = try CUDAPreparedStep(batch: batch, backend: self)
        }
        try stepTiming?.uploaded(on: stream)
        return step
    }

    /// Copies a step's metadata to `destination` on the stream its kernels run on: through
    /// page-locked memory, asynchronously, so that a step launched ahead is queued behind the
    /// running one without waiting for it; where the driver refuses page-locked memory, from the
    /// array itself, waiting for the stream.
    func uploadStepMetadata(_ flat: [Int32], to destination: CUdeviceptr) throws {
        let staging = stepStaging[nextStepStaging]
        nextStepStaging = (nextStepStaging + 1) % stepStaging.count
        guard try !staging.upload(flat, to: destination, on: stream) else { return }
        try flat.withUnsafeBytes { try stream.copy(from: $0.baseAddress!, to: destination, bytes: $0.count) }
        // The array dies when this returns: the copy must have finished by then.
        try stream.synchronize()
    }

    /// Prepares `batch` and, on the compute stream after its metadata's upload, copies the fed
    /// rows' token ids from `previous`'s indices on the device (a kernel): the host never waits
    /// for `previous`.
    public func prepare(_ batch: StepBatch, feeding previous: any StepTokens) throws -> any PreparedStep {
        guard let tokens = previous as? CUDAStepTokens else { return try prepare(try batch.fed(by: try previous.wait())) }
        let step = try prepared(try prepare(batch), "prepare")
        try kernels.feedTokens(
            tokenIDs: step.address(.tokenIDs), feedRows: step.address(.feedRows), rows: step.batch.tokenCount,
            previous: tokens.indices.address, previousRows: tokens.rows, stream: computeStream)
        return step
    }

    /// A decode step that a graph serves replays the graph's capture (capturing it first when
    /// the shape is new, or the model or pool changed); any other step runs `body` as it comes.
    public func runStep(
        _ step: any PreparedStep, model: AnyObject, kv: any KVCachePool, _ body: (any PreparedStep) throws -> DeviceTensor?
    ) throws -> DeviceTensor? {
        let s = try prepared(step, "runStep")
        guard let graph = s.graph else { return try body(s) }
        let before = stepGraphs.captures
        let replays = stepGraphs.replays
        let logits = try stepGraphs.run(s, graph: graph, model: model, pool: kv, backend: self, body: body)
        stepTiming?.launched(
            stepGraphs.replays > replays
                ? "replayed the graph of \(graph.shape)"
                : stepGraphs.captures > before ? "padded to \(graph.shape), then captured" : "padded to \(graph.shape), kernel by kernel")
        return logits
    }

    /// How decode steps launch: `off`, `on` or `padded` (`HIFC_CUDA_GRAPHS` sets it at start;
    /// a check switches it between steps).
    public var stepGraphMode: CUDAStepGraphMode {
        get { stepGraphs.mode }
        set { stepGraphs.mode = newValue }
    }

    /// Decode-step graphs captured and replays launched so far.
    public var stepGraphCounts: (captures: Int, replays: Int) { (stepGraphs.captures, stepGraphs.replays) }

    /// Drops every decode-step graph, after the compute stream's work: for anything that changes
    /// what the captures baked in (weights reloaded or adapted in place, a pool's memory moved).
    /// A new model or pool object needs no call: graphs are checked against both every step.
    public func discardStepGraphs() throws {
        try computeStream.synchronize()
        stepGraphs.discardAll()
    }

    /// Runs `body` with ops queuing on `stream` and taking memory from `memory` (a capture).
    func capturing<R>(stream: CUDAStream, memory: DeviceMemoryCache, _ body: () throws -> R) throws -> R {
        capture = (stream, memory)
        defer { capture = nil }
        return try body()
    }

    // MARK: dtype plumbing

    /// `t` as fp32 (a conversion when it is bf16).
    func float32(_ t: DeviceTensor, _ op: String) throws -> DeviceTensor { try converted(t, to: .float32, op) }

    /// `t` as bf16 (a conversion when it is fp32).
    func bfloat16(_ t: DeviceTensor, _ op: String) throws -> DeviceTensor { try converted(t, to: .bfloat16, op) }

    /// `t` in `dtype` (fp32 or bf16), converted on the GPU when it is the other one.
    private func converted(_ t: DeviceTensor, to dtype: TensorDType, _ op: String) throws -> DeviceTensor {
        if t.storage is CUDARowScaledStorage { return try converted(try whole(t, op), to: dtype, op) }
        if t.dtype == dtype { return t }
        guard [.float32, .bfloat16].contains(t.dtype), [.float32, .bfloat16].contains(dtype) else {
            throw BackendError.shapeMismatch(op: op, detail: "dtype \(t.dtype)")
        }
        let (out, p) = try allocate(t.shape, dtype)
        if dtype == .float32 {
            try kernels.bf16ToF32(try t.cudaAddress(op), p, count: t.count, stream: stream)
        } else {
            try kernels.f32ToBF16(try t.cudaAddress(op), p, count: t.count, stream: stream)
        }
        return out
    }

    func prepared(_ step: any PreparedStep, _ op: String) throws -> CUDAPreparedStep {
        guard let s = step as? CUDAPreparedStep else { throw BackendError.foreignObject("the step passed to \(op)") }
        return s
    }

    func cudaPool(_ pool: any KVCachePool, _ op: String) throws -> CUDAKVCachePool {
        guard let p = pool as? CUDAKVCachePool else { throw BackendError.foreignObject("the KV pool passed to \(op)") }
        return p
    }

    // MARK: Ops

    public func embedding(_ table: DeviceTensor, step: any PreparedStep) throws -> DeviceTensor {
        let s = try prepared(step, "embedding")
        guard table.shape.count == 2, table.dtype == .bfloat16 else {
            throw BackendError.shapeMismatch(op: "embedding", detail: "table \(table.shape) \(table.dtype)")
        }
        let tokens = s.batch.tokenCount
        let dim = table.columns
        if let bad = s.batch.tokenIDs.first(where: { $0 < 0 || Int($0) >= table.rows }) {
            throw BackendError.badStep("token id \(bad) outside the embedding table of \(table.rows) rows")
        }
        let (out, p) = try allocate([tokens, dim], .float32)
        try kernels.embedding(
            table: try table.cudaAddress("embedding"), ids: s.address(.tokenIDs), output: p, tokens: tokens, dim: dim, stream: stream)
        return out
    }

    public func rmsNorm(_ x: DeviceTensor, weight: DeviceTensor, epsilon: Float) throws -> DeviceTensor {
        guard weight.count == x.columns else {
            throw BackendError.shapeMismatch(op: "rmsNorm", detail: "x \(x.shape), weight \(weight.shape)")
        }
        let xf = try float32(x, "rmsNorm")
        let w = try bfloat16(weight, "rmsNorm")
        let (out, p) = try allocate(x.shape, .bfloat16)
        try kernels.rmsNorm(
            try xf.cudaAddress("rmsNorm"), weight: try w.cudaAddress("rmsNorm"), output: p,
            rows: x.rows, dim: x.columns, eps: epsilon, bf16Output: true, stream: stream)
        return out
    }

    public func linear(_ x: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor?) throws -> DeviceTensor {
        guard weight.shape.count == 2, weight.columns == x.columns else {
            throw BackendError.shapeMismatch(op: "linear", detail: "x \(x.shape), weight \(weight.shape)")
        }
        let w = try bfloat16(weight, "linear")
        let wAddress = try w.cudaAddress("linear")
        let m = x.rows
        let n = weight.rows
        let k = x.columns
        let (xb, rowScale) = try skinnyInput(x, n: n, weight: wAddress, "linear")
        let (out, p) = try allocate([x.rows, weight.rows], .float32)
        let xAddress = try xb.cudaAddress("linear")
        // Decode batches go to the skinny kernel: on the H100 (bench/results/gemv-h100.md, CUDA
        // graphs, weights larger than L2) it reads an 8B layer's weights (qkv, o, gate_up, down;
        // roofline 0.147 ms) in 0.153 ms at m = 1 against cuBLAS's 0.162 ms, 0.155 / 0.164 ms at
        // m = 8 and 0.162 / 0.168 ms at m = 16, and the 128256-row LM head 6-11% faster at every
        // m <= 16. At m = 16 the margin is thinnest (qkv loses 2%, a lone 14336x4096 7%, the
        // layer still wins 3.5%). The kernel has no variant past 16 rows; larger batches (not
        // measured against it) stay on cuBLAS.
        if CUDAKernels.skinnyGEMMAccepts(m: m, n: n, k: k, x: xAddress, w: wAddress) {
            try kernels.skinnyLinear(x: xAddress, w: wAddress, y: p, m: m, n: n, k: k, rowScale: rowScale, stream: stream)
        } else {
            try blas.linear(x: xAddress, w: wAddress, y: p, yType: .float32, m: m, n: n, k: k, stream: stream)
        }
        if let bias {
            guard bias.count == weight.rows else {
                throw BackendError.shapeMismatch(op: "linear", detail: "bias \(bias.shape) for \(weight.rows) outputs")
            }
            let b = try bfloat16(bias, "linear")
            try kernels.addBias(p, bias: try b.cudaAddress("linear"), rows: x.rows, cols: weight.rows, stream: stream)
        }
        return out
    }

    public func attentionInputs(
        qkv: DeviceTensor, heads: Int, headDim: Int, inverseFrequencies: DeviceTensor, layer: Int,
        pool: any KVCachePool, step: any PreparedStep
    ) throws -> DeviceTensor {
        let s = try prepared(step, "attentionInputs")
        let kv = try cudaPool(pool, "attentionInputs")
        let layout = kv.layout
        guard qkv.shape.count == 2, qkv.columns == (heads + 2 * layout.kvHeads) * headDim, headDim == layout.headDim,
            qkv.rows == s.batch.tokenCount, inverseFrequencies.count == headDim / 2, inverseFrequencies.dtype == .float32,
            layer >= 0, layer < layout.layers
        else {
            throw BackendError.shapeMismatch(
                op: "attentionInputs",
                detail:
                    "qkv \(qkv.shape) for \(heads) + 2 x \(layout.kvHeads) heads of \(headDim) (pool head dim \(layout.headDim)), layer \(layer) of \(layout.layers), frequencies \(inverseFrequencies.shape)"
            )
        }
        let x = try float32(qkv, "attentionInputs")
        let (q, p) = try allocate([qkv.rows, heads * headDim], .float32)
        try kernels.ropeAndWriteKV(
            qkv: try x.cudaAddress("attentionInputs"), heads: heads, positions: s.address(.positions),
            inverseFrequencies: try inverseFrequencies.cudaAddress("attentionInputs"), slots: s.address(.slots),
            qOutput: p, pool: kv.pool.buffer.address, blockStride: kv.blockStride, tokens: qkv.rows,
            layer: layer, layout: layout, stream: stream)
        return q
    }

    /// Decode batches (up to 16 rows) without a q|k|v bias take the skinny kernel's rotary form,
    /// which rotates and stores the product's sums itself: the fp32 `[rows, q|k|v]` product is
    /// never written and `rope_qkv_write_kv` is not launched (1.8 us a layer less than the two
    /// at batch 1 on the H200, bench/results/model-h200.md). Over an fp8 pool the CTA that
    /// completes a K/V head codes it (a head's scale needs all of its values, which the rotary
    /// form spreads over several CTAs), through the pool's rotary scratch.
    public func projectAttentionInputs(
        _ x: DeviceTensor, qkv: DeviceTensor, bias: DeviceTensor?, heads: Int, headDim: Int, inverseFrequencies: DeviceTensor,
        layer: Int, pool: any KVCachePool, step: any PreparedStep
    ) throws -> DeviceTensor {
        let s = try prepared(step, "projectAttentionInputs")
        let kv = try cudaPool(pool, "projectAttentionInputs")
        let layout = kv.layout
        let w = try bfloat16(qkv, "projectAttentionInputs")
        let wAddress = try w.cudaAddress("projectAttentionInputs")
        let m = x.rows
        let n = qkv.rows
        let k = x.columns
        let (xb, rowScale) = try skinnyInput(x, n: n, weight: wAddress, "projectAttentionInputs")
        let xAddress = try xb.cudaAddress("projectAttentionInputs")
        guard bias == nil, layout.dtype == .bfloat16, qkv.shape.count == 2, qkv.columns == k, headDim == layout.headDim,
            headDim % 16 == 0,
            n == (heads + 2 * layout.kvHeads) * headDim, m == s.batch.tokenCount, inverseFrequencies.count == headDim / 2,
            inverseFrequencies.dtype == .float32, layer >= 0, layer < layout.layers,
            CUDAKernels.skinnyGEMMAccepts(m: m, n: n, k: k, x: xAddress, w: wAddress)
        else {
            return try attentionInputs(
                qkv: try linear(x, weight: w, bias: bias), heads: heads, headDim: headDim,
                inverseFrequencies: inverseFrequencies, layer: layer, pool: pool, step: step)
        }
        let (q, p) = try allocate([m, heads * headDim], .float32)
        // Held through the launch: released earlier, a converted x could hand its memory to `q`.
        try withExtendedLifetime((xb, w)) {
            try kernels.skinnyRotaryLinear(
                x: xAddress, w: wAddress, m: m, n: n, k: k, heads: heads, positions: s.address(.positions),
                inverseFrequencies: try inverseFrequencies.cudaAddress("projectAttentionInputs"), slots: s.address(.slots), qOutput: p,
                pool: kv.pool.buffer.address, blockStride: kv.blockStride, layer: layer, layout: layout,
                rowScale: rowScale, stream: stream)
        }
        return q
    }

    public func siluAndMultiply(_ gateUp: DeviceTensor) throws -> DeviceTensor {
        guard gateUp.shape.count == 2, gateUp.columns % 2 == 0 else {
            throw BackendError.shapeMismatch(op: "siluAndMultiply", detail: "gate/up \(gateUp.shape) needs an even column count")
        }
        let x = try float32(gateUp, "siluAndMultiply")
        let inter = gateUp.columns / 2
        let (out, p) = try allocate([gateUp.rows, inter], .bfloat16)
        let gate = try x.cudaAddress("siluAndMultiply")
        try kernels.siluMul(
            gate: gate, up: gate + UInt64(inter * 4), stride: gateUp.columns, output: p, inter: inter,
            rows: gateUp.rows, stream: stream)
        return out
    }

    /// Decode batches (up to 16 rows) take the skinny kernel's gated form, which applies the
    /// activation to the sums as they come out: the fp32 `[rows, 2·inter]` product is never
    /// written and the activation kernel is not launched (1.8-2.8 us a layer less on the H200,
    /// bench/results/gemv-h200.md). The result is the same to the bit as the two ops'.
    public func gatedLinear(_ x: DeviceTensor, gateUp: DeviceTensor) throws -> DeviceTensor {
        guard gateUp.shape.count == 2, gateUp.columns == x.columns, gateUp.rows % 2 == 0 else {
            throw BackendError.shapeMismatch(op: "gatedLinear", detail: "x \(x.shape), gate/up weight \(gateUp.shape) (needs an even row count)")
        }
        let w = try bfloat16(gateUp, "gatedLinear")
        let wAddress = try w.cudaAddress("gatedLinear")
        let m = x.rows
        let n = gateUp.rows
        let k = x.columns
        let (xb, rowScale) = try skinnyInput(x, n: n, weight: wAddress, "gatedLinear")
        let xAddress = try xb.cudaAddress("gatedLinear")
        guard CUDAKernels.skinnyGEMMAccepts(m: m, n: n, k: k, x: xAddress, w: wAddress) else {
            return try siluAndMultiply(try linear(xb, weight: w, bias: nil))
        }
        let (out, p) = try allocate([m, n / 2], .bfloat16)
        // Held through the launch: released earlier, a converted x could hand its memory to `out`.
        try withExtendedLifetime((xb, w)) {
            try kernels.skinnySiluGatedLinear(x: xAddress, w: wAddress, out: p, m: m, n: n, k: k, rowScale: rowScale, stream: stream)
        }
        return out
    }

    public func add(_ a: DeviceTensor, _ b: DeviceTensor) throws -> DeviceTensor {
        guard a.shape == b.shape else { throw BackendError.shapeMismatch(op: "add", detail: "\(a.shape) + \(b.shape)") }
        let af = try float32(a, "add")
        let bf = try float32(b, "add")
        let (out, p) = try allocate(a.shape, .float32)
        try kernels.add(try af.cudaAddress("add"), try bf.cudaAddress("add"), output: p, count: a.count, stream: stream)
        return out
    }

    public func addAndNormalize(
        _ x: DeviceTensor, _ y: DeviceTensor, weight: DeviceTensor, epsilon: Float
    ) throws -> (sum: DeviceTensor, normed: DeviceTensor) {
        guard x.shape == y.shape, x.shape.count == 2, weight.count == x.columns else {
            throw BackendError.shapeMismatch(op: "addAndNormalize", detail: "x \(x.shape), y \(y.shape), weight \(weight.shape)")
        }
        let xf = try float32(x, "addAndNormalize")
        let yf = try float32(y, "addAndNormalize")
        let w = try bfloat16(weight, "addAndNormalize")
        let (sum, sp) = try allocate(x.shape, .float32)
        let (normed, np) = try allocate(x.shape, .bfloat16)
        try kernels.addRMSNorm(
            try xf.cudaAddress("addAndNormalize"), try yf.cudaAddress("addAndNormalize"), sum: sp,
            weight: try w.cudaAddress("addAndNormalize"), output: np, rows: x.rows, dim: x.columns,
            eps: epsilon, stream: stream)
        return (sum, normed)
    }

    public func pagedAttention(
        q: DeviceTensor, heads: Int, layer: Int, scale: Float, window: Int?, pool: any KVCachePool, step: any PreparedStep
    ) throws -> DeviceTensor {
        let s = try prepared(step, "pagedAttention")
        let kv = try cudaPool(pool, "pagedAttention")
        let layout = kv.layout
        guard q.columns == heads * layout.headDim, q.rows == s.batch.tokenCount, heads % layout.kvHeads == 0 else {
            throw BackendError.shapeMismatch(
                op: "pagedAttention", detail: "q \(q.shape), \(heads) heads of \(layout.headDim) over \(layout.kvHeads) KV heads")
        }
        let qf = try float32(q, "pagedAttention")
        // A step with a prefill chunk goes to the tensor-core kernel whole (its decode rows as
        // 1-token chunks): one launch, and the decode kernel's one-row-at-a-time work is what made
        // long prompts slow. Pure decode steps keep the split-context decode kernel.
        if s.hasMultiRowChunk, CUDAKernels.prefillAttentionSupports(headDim: layout.headDim, qHeads: heads, kvHeads: layout.kvHeads) {
            let (out, p) = try allocate([q.rows, q.columns], .bfloat16)
            try kernels.prefillAttention(
                q: try qf.cudaAddress("pagedAttention"), qStride: q.columns, pool: kv.pool.buffer.address, blockStride: kv.blockStride,
                blockTables: s.address(.blockTables), tableStride: s.tableStride, tiles: s.address(.prefillTiles),
                tileCount: s.prefillTileCount, output: p, qHeads: heads, layer: layer, layout: layout, scale: scale, window: window,
                kvMap: kv.prefillKVMap, stream: stream)
            return out
        }
        let rows = q.rows
        // A graph step's maxContext is its shape's context class; each row then splits its own
        // context over the splits (tokens per split vary per row, the grid does not).
        let splits = kernels.attentionSplits(
            maxContext: CUDAKernels.attendedSpan(maxContext: s.maxContext, window: window), rows: rows, layout: layout)
        let scratch = try memory.take(CUDAKernels.attentionScratchFloats(rows: rows, qHeads: heads, headDim: layout.headDim, splits: splits) * 4)
        defer { memory.give(scratch) }
        let (out, p) = try allocate([rows, q.columns], .bfloat16)
        try kernels.pagedAttention(
            q: try qf.cudaAddress("pagedAttention"), qStride: q.columns, pool: kv.pool.buffer.address, blockStride: kv.blockStride,
            blockTables: s.address(.blockTables), tableStride: s.tableStride, rowTable: s.address(.rowSequence),
            contextLengths: s.address(.rowContext), maxContext: s.maxContext, output: p, rows: rows, qHeads: heads,
            layer: layer, layout: layout, scale: scale, window: window, splits: splits,
            // Every row is its sequence's one new token here (a multi-row chunk went to the
            // prefill kernel above, or must count as written anywhere).
            freshTokens: s.hasMultiRowChunk ? Int(Int32.max) : 1, splitsEachRow: s.graph != nil, scratch: scratch.address, stream: stream)
        return out
    }

    public func gatherLogitRows(_ x: DeviceTensor, step: any PreparedStep) throws -> DeviceTensor {
        let s = try prepared(step, "gatherLogitRows")
        let n = s.batch.logitRows.count
        guard n > 0 else { throw BackendError.badStep("no logit rows to gather") }
        let xf = try float32(x, "gatherLogitRows")
        let (out, p) = try allocate([n, x.columns], .float32)
        try kernels.gatherRows(
            try xf.cudaAddress("gatherLogitRows"), rows: s.address(.logitRows), count: n,
            rowBytes: x.columns * 4, output: p, stream: stream)
        return out
    }
}

/// Where each step's time goes, for `HIFC_CUDA_STEP_TIMING`: on the host, from `prepare` until
/// the step is queued and then the wait for the GPU; on the GPU (events), from the end of the
/// step's metadata upload to the end of its last kernel. A GPU span shorter than the step means
/// the GPU idled while the host prepared or launched.
final class CUDAStepTiming: @unchecked Sendable {
    // The model runs one step at a time; `state` is only touched from that thread.
    private let computeStart: CUDAEvent, computeEnd: CUDAEvent
    private let state = Mutex<(start: ContinuousClock.Instant, rows: Int, launch: String)?>(nil)

    init(device: CUDADevice) throws {
        computeStart = try device.makeEvent(timing: true)
        computeEnd = try device.makeEvent(timing: true)
    }

    func start(rows: Int) { state.withLock { $0 = (ContinuousClock.now, rows, "kernel by kernel") } }

    /// How the step's work was launched (a graph replay, a capture, kernel by kernel).
    func launched(_ how: String) { state.withLock { $0?.launch = how } }

    func uploaded(on stream: CUDAStream) throws { try computeStart.record(on: stream) }

    func computeEnqueued(on stream: CUDAStream) throws { try computeEnd.record(on: stream) }

    func report(enqueued: ContinuousClock.Instant, done: ContinuousClock.Instant) throws {
        guard
            let (start, rows, launch) = state.withLock({ current in
                defer { current = nil }
                return current
            })
        else { return }
        func ms(_ d: Duration) -> Double { d.inSeconds * 1e3 }
        let gpu = try computeEnd.milliseconds(since: computeStart)
        let line = String(
            format: "cuda step: %d rows (%@), host queued it in %.3f ms, then waited %.3f ms for the GPU; GPU span %.3f ms\n",
            rows, launch, ms(enqueued - start), ms(done - enqueued), gpu)
        FileHandle.standardError.write(line.data(using: .utf8)!)
    }
}
