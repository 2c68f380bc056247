import Backend
import Foundation
import HiFCCore

/// The `ComputeBackend` on an NVIDIA GPU: weights in bf16 (uploaded once), activations in fp32,
/// matrix products through cuBLAS (bf16 inputs, fp32 accumulation), everything else by the
/// NVRTC-compiled kernels of `Sources/CUDA/Kernels`, all on one compute stream.
///
/// Dtypes between ops: `embedding`, `linear`, `rotary`, `add` give fp32; `rmsNorm`,
/// `siluAndMultiply` and `pagedAttention` give bf16, since a matrix product reads them next.
/// Every op accepts either and converts where it must.
public final class CUDABackend: ComputeBackend, @unchecked Sendable {
    // The model calls ops from one thread at a time; all device work is ordered on `stream`.
    /// The GPU.
    public let device: CUDADevice
    /// The compiled kernels.
    public let kernels: CUDAKernels
    /// cuBLAS on the compute stream.
    public let blas: CUBLAS
    /// The stream every op runs on; transfers order themselves against it with events.
    public let stream: CUDAStream
    let memory: DeviceMemoryCache

    /// Opens GPU `ordinal`, compiles (or loads from the cache) the kernels and creates cuBLAS.
    public init(ordinal: Int = 0) throws {
        device = try CUDADevice(ordinal: ordinal)
        kernels = CUDAKernels(library: try KernelLibrary(device: device, sources: try KernelSources.load()))
        blas = try CUBLAS(device: device)
        stream = try device.makeStream()
        memory = DeviceMemoryCache(device: device)
    }

    public var name: String { "cuda:\(device.info.ordinal) (\(device.info.name))" }
    public var kvDType: KVDType { .bfloat16 }

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
            for i in 0..<n { bits[i] = HostReference.bf16(tensor.float(at: i)) }
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
        let f = try float32(tensor, "download")
        try stream.synchronize()
        return try (f.storage as! CUDAStorage).buffer.download(Float.self, count: tensor.count)
    }

    public func makeKVCachePool(layout: KVBlockLayout, blocks: Int) throws -> any KVCachePool {
        guard layout.dtype == kvDType else {
            throw BackendError.shapeMismatch(op: "makeKVCachePool", detail: "KV dtype \(layout.dtype); the CUDA backend keeps bf16")
        }
        return try CUDAKVCachePool(device: device, layout: layout, blocks: blocks, compute: stream, kernels: kernels)
    }

    public func prepare(_ batch: StepBatch) throws -> any PreparedStep {
        try CUDAPreparedStep(batch: batch, backend: self)
    }

    // MARK: dtype plumbing

    /// `t` as fp32 (a conversion when it is bf16).
    func float32(_ t: DeviceTensor, _ op: String) throws -> DeviceTensor { try converted(t, to: .float32, op) }

    /// `t` as bf16 (a conversion when it is fp32).
    func bfloat16(_ t: DeviceTensor, _ op: String) throws -> DeviceTensor { try converted(t, to: .bfloat16, op) }

    /// `t` in `dtype` (fp32 or bf16), converted on the GPU when it is the other one.
    private func converted(_ t: DeviceTensor, to dtype: TensorDType, _ op: String) throws -> DeviceTensor {
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
        let tokens = s.batch.tokenCount, dim = table.columns
        if let bad = s.batch.tokenIDs.first(where: { $0 < 0 || Int($0) >= table.rows }) {
            throw BackendError.badStep("token id \(bad) outside the embedding table of \(table.rows) rows")
        }
        let (out, p) = try allocate([tokens, dim], .float32)
        try kernels.embedding(table: try table.cudaAddress("embedding"), ids: s.address(.tokenIDs), output: p, tokens: tokens, dim: dim, stream: stream)
        return out
    }

    public func rmsNorm(_ x: DeviceTensor, weight: DeviceTensor, epsilon: Float) throws -> DeviceTensor {
        guard weight.count == x.columns else {
            throw BackendError.shapeMismatch(op: "rmsNorm", detail: "x \(x.shape), weight \(weight.shape)")
        }
        let xf = try float32(x, "rmsNorm")
        let w = try bfloat16(weight, "rmsNorm")
        let (out, p) = try allocate(x.shape, .bfloat16)
        try kernels.rmsNorm(try xf.cudaAddress("rmsNorm"), weight: try w.cudaAddress("rmsNorm"), output: p,
                            rows: x.rows, dim: x.columns, eps: epsilon, bf16Output: true, stream: stream)
        return out
    }

    public func linear(_ x: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor?) throws -> DeviceTensor {
        guard weight.shape.count == 2, weight.columns == x.columns else {
            throw BackendError.shapeMismatch(op: "linear", detail: "x \(x.shape), weight \(weight.shape)")
        }
        let xb = try bfloat16(x, "linear")
        let w = try bfloat16(weight, "linear")
        let (out, p) = try allocate([x.rows, weight.rows], .float32)
        try blas.linear(x: try xb.cudaAddress("linear"), w: try w.cudaAddress("linear"), y: p, yType: .float32,
                        m: x.rows, n: weight.rows, k: x.columns, stream: stream)
        if let bias {
            guard bias.count == weight.rows else {
                throw BackendError.shapeMismatch(op: "linear", detail: "bias \(bias.shape) for \(weight.rows) outputs")
            }
            let b = try bfloat16(bias, "linear")
            try kernels.addBias(p, bias: try b.cudaAddress("linear"), rows: x.rows, cols: weight.rows, stream: stream)
        }
        return out
    }

    public func rotary(
        q: DeviceTensor, k: DeviceTensor, headDim: Int, inverseFrequencies: DeviceTensor, step: any PreparedStep
    ) throws -> (q: DeviceTensor, k: DeviceTensor) {
        let s = try prepared(step, "rotary")
        guard q.columns % headDim == 0, k.columns % headDim == 0, inverseFrequencies.count == headDim / 2,
              inverseFrequencies.dtype == .float32, q.rows == s.batch.tokenCount, k.rows == q.rows else {
            throw BackendError.shapeMismatch(op: "rotary", detail: "q \(q.shape), k \(k.shape), head dim \(headDim), frequencies \(inverseFrequencies.shape)")
        }
        let inv = try inverseFrequencies.cudaAddress("rotary")
        func rotate(_ t: DeviceTensor) throws -> DeviceTensor {
            let src = try float32(t, "rotary")
            let (out, p) = try allocate(t.shape, .float32)
            try stream.copy(from: try src.cudaAddress("rotary"), to: p, bytes: t.count * 4)
            try kernels.rope(p, rowStride: t.columns, positions: s.address(.positions), inverseFrequencies: inv,
                             tokens: t.rows, heads: t.columns / headDim, headDim: headDim, stream: stream)
            return out
        }
        return (try rotate(q), try rotate(k))
    }

    public func siluAndMultiply(gate: DeviceTensor, up: DeviceTensor) throws -> DeviceTensor {
        guard gate.shape == up.shape else {
            throw BackendError.shapeMismatch(op: "siluAndMultiply", detail: "gate \(gate.shape), up \(up.shape)")
        }
        let g = try float32(gate, "siluAndMultiply"), u = try float32(up, "siluAndMultiply")
        let (out, p) = try allocate(gate.shape, .bfloat16)
        try kernels.siluMul(gate: try g.cudaAddress("siluAndMultiply"), up: try u.cudaAddress("siluAndMultiply"),
                            stride: gate.columns, output: p, inter: gate.columns, rows: gate.count / gate.columns, stream: stream)
        return out
    }

    public func add(_ a: DeviceTensor, _ b: DeviceTensor) throws -> DeviceTensor {
        guard a.shape == b.shape else { throw BackendError.shapeMismatch(op: "add", detail: "\(a.shape) + \(b.shape)") }
        let af = try float32(a, "add"), bf = try float32(b, "add")
        let (out, p) = try allocate(a.shape, .float32)
        try kernels.add(try af.cudaAddress("add"), try bf.cudaAddress("add"), output: p, count: a.count, stream: stream)
        return out
    }

    public func writeKV(k: DeviceTensor, v: DeviceTensor, layer: Int, pool: any KVCachePool, step: any PreparedStep) throws {
        let s = try prepared(step, "writeKV"), kv = try cudaPool(pool, "writeKV")
        let layout = kv.layout
        guard k.shape == v.shape, k.columns == layout.tokenElements, k.rows == s.batch.tokenCount,
              layer >= 0, layer < layout.layers else {
            throw BackendError.shapeMismatch(op: "writeKV", detail: "k \(k.shape), v \(v.shape), layer \(layer) of \(layout.layers), \(layout.tokenElements) KV elements per token")
        }
        let kf = try float32(k, "writeKV"), vf = try float32(v, "writeKV")
        try kernels.writeKV(pool: kv.pool.buffer.address, blockStride: kv.blockStride, k: try kf.cudaAddress("writeKV"),
                            v: try vf.cudaAddress("writeKV"), kvStride: k.columns, slots: s.address(.slots),
                            tokens: k.rows, layer: layer, layout: layout, stream: stream)
    }

    public func pagedAttention(
        q: DeviceTensor, heads: Int, layer: Int, scale: Float, pool: any KVCachePool, step: any PreparedStep
    ) throws -> DeviceTensor {
        let s = try prepared(step, "pagedAttention"), kv = try cudaPool(pool, "pagedAttention")
        let layout = kv.layout
        guard q.columns == heads * layout.headDim, q.rows == s.batch.tokenCount, heads % layout.kvHeads == 0 else {
            throw BackendError.shapeMismatch(op: "pagedAttention", detail: "q \(q.shape), \(heads) heads of \(layout.headDim) over \(layout.kvHeads) KV heads")
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
                tileCount: s.prefillTileCount, output: p, qHeads: heads, layer: layer, layout: layout, scale: scale, stream: stream)
            return out
        }
        let rows = q.rows
        let splits = CUDAKernels.attentionSplits(maxContext: s.maxContext, rows: rows, kvHeads: layout.kvHeads, multiprocessors: device.info.multiprocessors)
        let scratch = try memory.take(CUDAKernels.attentionScratchFloats(rows: rows, qHeads: heads, headDim: layout.headDim, splits: splits) * 4)
        defer { memory.give(scratch) }
        let (out, p) = try allocate([rows, q.columns], .bfloat16)
        try kernels.pagedAttention(
            q: try qf.cudaAddress("pagedAttention"), qStride: q.columns, pool: kv.pool.buffer.address, blockStride: kv.blockStride,
            blockTables: s.address(.blockTables), tableStride: s.tableStride, rowTable: s.address(.rowSequence),
            contextLengths: s.address(.rowContext), maxContext: s.maxContext, output: p, rows: rows, qHeads: heads,
            layer: layer, layout: layout, scale: scale, splits: splits, scratch: scratch.address, stream: stream)
        return out
    }

    public func gatherLogitRows(_ x: DeviceTensor, step: any PreparedStep) throws -> DeviceTensor {
        let s = try prepared(step, "gatherLogitRows")
        let n = s.batch.logitRows.count
        guard n > 0 else { throw BackendError.badStep("no logit rows to gather") }
        let xf = try float32(x, "gatherLogitRows")
        let (out, p) = try allocate([n, x.columns], .float32)
        try kernels.gatherRows(try xf.cudaAddress("gatherLogitRows"), rows: s.address(.logitRows), count: n,
                               rowBytes: x.columns * 4, output: p, stream: stream)
        return out
    }
}
