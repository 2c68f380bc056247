import CPUKernels
import Foundation
import HiFCCore
import Logging

/// The CPU backend: f32 activations, f32 or fp8 KV, its ops in C kernels (`CPUKernels`) built for
/// several instruction sets and chosen at run time, spread over a `CPUThreadPool`; large f32
/// products may go to a CBLAS library found at run time (`BLASLibrary`).
public final class CPUBackend: ComputeBackend, @unchecked Sendable {
    /// The CBLAS library in use for large f32 products; nil when the C GEMM does them all.
    public let blas: BLASLibrary?
    /// The threads the ops run on.
    public let pool: CPUThreadPool
    /// Whether GGML-quantized weights are decoded to f32 at load instead of kept as blocks (for
    /// accuracy checks of the integer kernels).
    public let dequantizesAtLoad: Bool
    /// Decode steps recorded once per shape and replayed (`runStep`); nil when replays are off.
    private let stepRecords: CPUStepRecords?

    /// A backend using `blas` (by default whatever `BLASLibrary.load()` finds) and `pool` (by
    /// default the process's, `CPUThreadPool.shared`); the BLAS library is told to use one thread,
    /// and large products call it from the pool's threads on blocks of columns. Quantized weights
    /// in Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K stay quantized unless
    /// `dequantizesAtLoad`. Decode steps are replayed from a record of their ops unless
    /// `stepReplay` is false (by default `HIFC_CPU_STEP_REPLAY` says, on unless `0` or `off`).
    public init(
        blas: BLASLibrary? = BLASLibrary.load(), pool: CPUThreadPool = .shared, dequantizesAtLoad: Bool = false, stepReplay: Bool? = nil
    ) {
        self.blas = blas
        self.pool = pool
        self.dequantizesAtLoad = dequantizesAtLoad
        stepRecords = (stepReplay ?? CPUStepRecords.enabled() ?? true) ? CPUStepRecords() : nil
        blas?.setThreads(1)
    }

    public var name: String {
        "cpu (\(String(cString: hifc_isa_name(hifc_isa_active()))), \(pool.threads) threads\(blas.map { ", " + $0.path } ?? ""))"
    }

    /// Products with fewer rows (decode, small batches) use the C GEMM even when a BLAS library is
    /// loaded: they are bound by reading the weights once, which the C loop does as well, and it
    /// does not wake BLAS's thread pool, whose spinning workers then compete with ours.
    public static let smallestBLASRows = 16

    /// Fewest result columns one BLAS call of a parallel product takes: narrower panels lose
    /// more to the library's packing than a thread gains.
    static let leastBLASColumns = 64

    /// Elementwise work below this many elements per thread stays on one thread (the ops written
    /// in Swift, `CPUFamilyOps`).
    static let elementsPerTask = 1 << 16

    /// Rows of `width` elements worth one thread.
    static func rowsPerTask(_ width: Int) -> Int { max(1, elementsPerTask / max(width, 1)) }

    public var kvDType: KVDType { .float32 }
    /// 512: a step of 512 prompt tokens already takes the CPU's cores tens of milliseconds.
    public var defaultMaxStepTokens: Int { 512 }

    // MARK: Memory

    /// A new tensor of `shape` whose every element the caller writes (its memory kept by the step
    /// being recorded, if any, for the replays).
    func allocate(_ shape: [Int]) throws -> (DeviceTensor, UnsafeMutablePointer<Float>) {
        let count = shape.reduce(1, *)
        let storage = try recording?.storage(count: count) ?? CPUStorage(count: count, zeroed: false)
        return (DeviceTensor(storage: storage, shape: shape, dtype: .float32), storage.pointer)
    }

    /// The step record this thread is making on this backend, if any.
    private var recording: CPUStepRecord? {
        guard let record = CPUStepRecord.recording, record.backend == ObjectIdentifier(self) else { return nil }
        return record
    }

    /// Runs an op's kernel call and, while a step is being recorded, keeps it for the step's
    /// replays. `work` must capture only what is the same for every step of the record's shape:
    /// the op's tensors, the weights, the pool, and pointers into the record's prepared step,
    /// whose values change; never `self` (the records would keep the backend alive) nor a
    /// per-step value.
    func perform(_ work: @escaping () throws -> Void) throws {
        try work()
        recording?.append(work)
    }

    /// Marks the step being recorded, if any, as one that cannot be replayed: for the ops that
    /// are references for tests and do not record themselves.
    func refuseReplay() { recording?.refuse() }

    /// Steps recorded and replayed so far (`runStep`).
    public var stepReplayCounts: (recorded: Int, replayed: Int) { (stepRecords?.recorded ?? 0, stepRecords?.replayed ?? 0) }

    /// At least `bytes` of scratch for one op's C call, reused by the calling thread's next op
    /// (`hifc_thread_scratch`): a decode step runs hundreds of ops, each of which would otherwise
    /// allocate and free it. Asked for inside the kernel call, so that a replay gets the
    /// replaying thread's scratch as it is then.
    static func opScratch(_ bytes: Int) throws -> UnsafeMutableRawPointer {
        guard let scratch = hifc_thread_scratch(Int32(HIFC_SCRATCH_OP), bytes) else {
            throw BackendError.outOfMemory(what: "an op's scratch", bytes: bytes)
        }
        return scratch
    }

    public func upload(_ tensor: HostTensor) throws -> DeviceTensor {
        if tensor.dtype == .float32, Int(bitPattern: tensor.bytes) % MemoryLayout<Float>.alignment == 0 {
            // An f32 tensor in a mapped file is used in place: no copy, no extra memory.
            let pointer = UnsafeMutablePointer(mutating: tensor.bytes.assumingMemoryBound(to: Float.self))
            let storage = CPUStorage(borrowing: pointer, count: tensor.count, owner: tensor.owner)
            return DeviceTensor(storage: storage, shape: tensor.shape, dtype: .float32)
        }
        let (result, out) = try allocate(tensor.shape)
        tensor.convert(into: out)
        return result
    }

    public func upload(_ tensor: QuantizedTensor) throws -> DeviceTensor {
        if !dequantizesAtLoad, let storage = CPUQuantizedStorage(tensor, pool: pool) {
            return DeviceTensor(storage: storage, shape: tensor.shape, dtype: .float32)
        }
        return try upload(try tensor.dequantized())
    }

    public func upload(stackedRows parts: [QuantizedTensor]) throws -> DeviceTensor {
        let weight = WeightTensor.stackedQuantized(parts)
        if !dequantizesAtLoad, let storage = CPUStackedQuantizedStorage(parts, pool: pool) {
            return DeviceTensor(storage: storage, shape: weight.shape, dtype: .float32)
        }
        return try upload(try weight.dense())
    }

    public func uploadFloat32(_ values: [Float], shape: [Int]) throws -> DeviceTensor {
        guard shape.reduce(1, *) == values.count else {
            throw BackendError.shapeMismatch(op: "uploadFloat32", detail: "\(values.count) values for shape \(shape)")
        }
        let (result, out) = try allocate(shape)
        values.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: values.count) }
        return result
    }

    public func download(_ tensor: DeviceTensor) throws -> [Float] {
        refuseReplay()
        let rowDecoder = tensor.cpuQuantized.map { $0.dequantizeRow } ?? tensor.cpuStackedQuantized.map { $0.dequantizeRow }
        if let rowDecoder {
            var values = [Float](repeating: 0, count: tensor.count)
            values.withUnsafeMutableBufferPointer { out in
                for row in 0..<tensor.rows { rowDecoder(row, out.baseAddress! + row * tensor.columns) }
            }
            return values
        }
        let p = try tensor.cpu("download")
        return Array(UnsafeBufferPointer(start: p, count: tensor.count))
    }

    public func downloadRows(_ tensor: DeviceTensor) throws -> [[Float]] {
        refuseReplay()
        guard tensor.shape.count == 2 else { throw BackendError.shapeMismatch(op: "downloadRows", detail: "shape \(tensor.shape)") }
        let p = try tensor.cpu("downloadRows")
        return (0..<tensor.rows).map { Array(UnsafeBufferPointer(start: p + $0 * tensor.columns, count: tensor.columns)) }
    }

    public func argmaxRows(_ tensor: DeviceTensor) throws -> [Int] {
        refuseReplay()
        guard tensor.shape.count == 2, tensor.columns > 0 else { throw BackendError.shapeMismatch(op: "argmaxRows", detail: "shape \(tensor.shape)") }
        let p = try tensor.cpu("argmaxRows")
        var indices = [Int64](repeating: 0, count: tensor.rows)
        hifc_argmax_rows(pool.raw, p, tensor.rows, tensor.columns, &indices)
        return indices.map { Int($0) }
    }

    public func makeKVCachePool(layout: KVBlockLayout, blocks: Int) throws -> any KVCachePool {
        try CPUKVCachePool(layout: layout, blocks: blocks)
    }

    public func prepare(_ batch: StepBatch) throws -> any PreparedStep {
        CPUPreparedStep(batch: batch)
    }

    /// A decode step of up to `CPUStepRecords.mostRows` rows replays the record of its shape
    /// (making it on the shape's first step, or when the model or pool changed); any other step
    /// runs `body` op by op.
    public func runStep(
        _ step: any PreparedStep, model: AnyObject, kv: any KVCachePool, _ body: (any PreparedStep) throws -> DeviceTensor?
    ) throws -> DeviceTensor? {
        let prepared = try cpuStep(step)
        guard let records = stepRecords, let shape = CPUStepRecord.Shape.of(prepared.batch, mostRows: CPUStepRecords.mostRows) else {
            return try body(prepared)
        }
        let pool = try cpuPool(kv)
        if let record = records.take(shape, model: model, pool: pool) {
            defer { records.put(record) }
            guard record.replayable else { return try body(prepared) }
            try prepared.checkFits(poolBlocks: pool.blockCount, blockTokens: pool.layout.blockTokens)
            let logits = try record.replay(prepared)
            records.count(replay: true)
            return logits
        }
        let record = CPUStepRecord(shape: shape, backend: self, model: model, pool: pool, step: CPUPreparedStep(batch: prepared.batch))
        let logits = try CPUStepRecord.$recording.withValue(record) { try body(record.step) }
        record.finish(logits: logits)
        records.put(record)
        records.count(replay: false)
        return logits
    }

    // MARK: Ops

    public func embedding(_ table: DeviceTensor, step: any PreparedStep) throws -> DeviceTensor {
        let prepared = try cpuStep(step)
        // The step's own buffer, which a replay refills.
        let ids = UnsafeBufferPointer(start: prepared.tokenIDs, count: prepared.tokenCount)
        let vocab = table.rows
        let width = table.columns
        let (result, out) = try allocate([ids.count, width])
        let quantized = table.cpuQuantized
        let src = quantized == nil ? try table.cpu("embedding") : nil
        try perform {
            if let bad = ids.first(where: { $0 < 0 || Int($0) >= vocab }) {
                throw BackendError.shapeMismatch(op: "embedding", detail: "token id \(bad) outside a vocabulary of \(vocab)")
            }
            for (row, id) in ids.enumerated() {
                if let quantized {
                    quantized.dequantizeRow(Int(id), into: out + row * width)
                } else {
                    (out + row * width).update(from: src! + Int(id) * width, count: width)
                }
            }
        }
        return result
    }

    public func rmsNorm(_ x: DeviceTensor, weight: DeviceTensor, epsilon: Float) throws -> DeviceTensor {
        let width = x.columns
        guard weight.count == width else {
            throw BackendError.shapeMismatch(op: "rmsNorm", detail: "x \(x.shape), weight \(weight.shape)")
        }
        let (result, out) = try allocate(x.shape)
        let (raw, a, w, rows) = (pool.raw, try x.cpu("rmsNorm"), try weight.cpu("rmsNorm"), x.rows)
        try perform { hifc_rms_norm(raw, a, w, out, rows, width, epsilon) }
        return result
    }

    public func linear(_ x: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor?) throws -> DeviceTensor {
        let m = x.rows
        let k = x.columns
        let n = weight.rows
        guard weight.shape.count == 2, weight.columns == k else {
            throw BackendError.shapeMismatch(op: "linear", detail: "x \(x.shape), weight \(weight.shape)")
        }
        if let bias, bias.count != n {
            throw BackendError.shapeMismatch(op: "linear", detail: "bias \(bias.shape) for \(n) outputs")
        }
        let a = try x.cpu("linear")
        let bp = try bias?.cpu("linear")
        let (result, c) = try allocate([m, n])
        let raw = pool.raw
        if let quantized = weight.cpuQuantized {
            let (type, w) = (quantized.kernelType, quantized.kernelBytes)
            // The quantized activations, written before they are read.
            let scratchBytes = hifc_gemm_quant_scratch(type, m, k)
            try perform { hifc_gemm_quant(raw, type, a, w, bp, c, m, n, k, try Self.opScratch(scratchBytes)) }
            return result
        }
        if let stacked = weight.cpuStackedQuantized {
            try perform { try Self.multiplyParts(of: stacked, raw, a, bp, c, m: m, n: n, k: k) }
            return result
        }
        let b = try weight.cpu("linear")
        if let blas, m >= Self.smallestBLASRows {
            // One-threaded BLAS calls on blocks of the result's columns, spread over our pool: no
            // second set of threads to spin on the cores after each call (OpenBLAS's spin for
            // 128 ms, through the decode steps that follow a prefill).
            let pool = self.pool
            try perform {
                pool.parallelRanges(n, minimumPerTask: Self.leastBLASColumns) { columns in
                    blas.multiplyTransposed(a, b + columns.lowerBound * k, c + columns.lowerBound, m: m, n: columns.count, k: k, ldc: n)
                }
                if let bp { hifc_add_bias(c, bp, m, n) }
            }
        } else {
            try perform { hifc_gemm_f32(raw, a, b, bp, c, m, n, k) }
        }
        return result
    }

    /// `c = a · wᵀ (+ bias)` for a weight in parts of different formats: each part's product
    /// into a block of the op's scratch, then into its columns of `c`.
    static func multiplyParts(
        of weight: CPUStackedQuantizedStorage, _ pool: OpaquePointer?, _ a: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
        _ c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int
    ) throws {
        let widest = weight.parts.map(\.tensor.rows).max() ?? 0
        let quantizing = weight.parts.map { hifc_gemm_quant_scratch($0.kernelType, m, k) }.max() ?? 0
        let productsAt = (quantizing + 63) / 64 * 64
        let scratch = try opScratch(productsAt + m * widest * MemoryLayout<Float>.size)
        let products = (scratch + productsAt).bindMemory(to: Float.self, capacity: m * widest)
        var column = 0
        for part in weight.parts {
            let rows = part.tensor.rows
            hifc_gemm_quant(pool, part.kernelType, a, part.kernelBytes, bias.map { $0 + column }, products, m, rows, k, scratch)
            for row in 0..<m { (c + row * n + column).update(from: products + row * rows, count: rows) }
            column += rows
        }
    }

    /// One parallel call for both products where the weights are quantized and the rows few
    /// (`hifc_gated_mlp_quant`: the same values as the ops one after another); otherwise those ops.
    public func gatedMLP(_ x: DeviceTensor, gateUp: DeviceTensor, down: DeviceTensor) throws -> DeviceTensor {
        let m = x.rows
        let hidden = x.columns
        let inter = gateUp.rows / 2
        guard let gu = gateUp.cpuQuantized, let dq = down.cpuQuantized, x.shape.count == 2, gateUp.shape.count == 2,
            down.shape.count == 2, gateUp.columns == hidden, gateUp.rows % 2 == 0, down.columns == inter,
            hifc_gated_mlp_quant_fits(dq.kernelType, m, inter) != 0
        else { return try linear(try gatedLinear(x, gateUp: gateUp), weight: down, bias: nil) }
        let a = try x.cpu("gatedMLP")
        let (result, out) = try allocate([m, down.rows])
        let scratchBytes = hifc_gated_mlp_quant_scratch(gu.kernelType, dq.kernelType, m, inter, hidden)
        let (raw, guType, guBytes, dType, dBytes) = (pool.raw, gu.kernelType, gu.kernelBytes, dq.kernelType, dq.kernelBytes)
        try perform {
            hifc_gated_mlp_quant(raw, guType, guBytes, dType, dBytes, a, out, m, inter, hidden, try Self.opScratch(scratchBytes))
        }
        return result
    }

    public func attentionInputs(
        qkv: DeviceTensor, heads: Int, headDim: Int, inverseFrequencies: DeviceTensor, layer: Int,
        pool: any KVCachePool, step: any PreparedStep
    ) throws -> DeviceTensor {
        guard qkv.shape.count == 2 else { throw BackendError.shapeMismatch(op: "attentionInputs", detail: "qkv \(qkv.shape)") }
        let plan = try attentionInputsPlan(
            rows: qkv.rows, width: qkv.columns, heads: heads, headDim: headDim, inverseFrequencies: inverseFrequencies, layer: layer,
            pool: pool, step: step)
        let (result, q) = try allocate([qkv.rows, heads * headDim])
        let (raw, source, rows) = (self.pool.raw, try qkv.cpu("attentionInputs"), qkv.rows)
        try perform { hifc_rope_store_kv(raw, source, rows, Int32(heads), plan.table, plan.slots, q, plan.layer) }
        return result
    }

    /// The q|k|v product, its rotation and the KV write in one parallel call where the weight is
    /// quantized and the rows few (`hifc_project_rope_store_kv`: the same values as the two ops);
    /// otherwise `linear` then `attentionInputs`.
    public func projectAttentionInputs(
        _ x: DeviceTensor, qkv: DeviceTensor, bias: DeviceTensor?, heads: Int, headDim: Int, inverseFrequencies: DeviceTensor,
        layer: Int, pool: any KVCachePool, step: any PreparedStep
    ) throws -> DeviceTensor {
        guard let quantized = qkv.cpuQuantized, x.shape.count == 2, qkv.shape.count == 2, qkv.columns == x.columns,
            x.rows <= Int(HIFC_ONE_CALL_MOST_ROWS), bias.map({ $0.count == qkv.rows }) ?? true
        else {
            return try attentionInputs(
                qkv: try linear(x, weight: qkv, bias: bias), heads: heads, headDim: headDim, inverseFrequencies: inverseFrequencies,
                layer: layer, pool: pool, step: step)
        }
        let plan = try attentionInputsPlan(
            rows: x.rows, width: qkv.rows, heads: heads, headDim: headDim, inverseFrequencies: inverseFrequencies, layer: layer, pool: pool,
            step: step)
        let a = try x.cpu("projectAttentionInputs")
        let b = try bias?.cpu("projectAttentionInputs")
        let (result, q) = try allocate([x.rows, heads * headDim])
        let (raw, type, w, rows, hidden) = (self.pool.raw, quantized.kernelType, quantized.kernelBytes, x.rows, x.columns)
        let scratchBytes = hifc_project_rope_store_kv_scratch(
            type, rows, hidden, qkv.rows, Int(plan.layer.kv_heads) * headDim, Int32(self.pool.threads))
        try perform {
            hifc_project_rope_store_kv(
                raw, type, a, w, b, rows, hidden, Int32(heads), plan.table, plan.slots, q, plan.layer, try Self.opScratch(scratchBytes))
        }
        return result
    }

    /// Checks a step's attention inputs (`rows` q|k|v rows of `width`) against the pool, the step
    /// and the rotary frequencies, and returns what the kernels take: the rotary table, the rows'
    /// slots and the pool's layer.
    private func attentionInputsPlan(
        rows: Int, width: Int, heads: Int, headDim: Int, inverseFrequencies: DeviceTensor, layer: Int, pool: any KVCachePool,
        step: any PreparedStep
    ) throws -> (table: UnsafePointer<Float>, slots: UnsafeMutablePointer<Int64>, layer: hifc_kv_layer) {
        let kvPool = try cpuPool(pool)
        let layout = kvPool.layout
        let prepared = try cpuStep(step)
        guard width == (heads + 2 * layout.kvHeads) * headDim, headDim == layout.headDim else {
            throw BackendError.shapeMismatch(
                op: "attentionInputs",
                detail: "qkv [\(rows), \(width)] for \(heads) + 2 x \(layout.kvHeads) heads of \(headDim) (pool head dim \(layout.headDim))")
        }
        guard inverseFrequencies.count == headDim / 2, headDim % 2 == 0, rows == prepared.tokenCount, layer >= 0, layer < layout.layers
        else {
            throw BackendError.shapeMismatch(
                op: "attentionInputs",
                detail: "qkv [\(rows), \(width)], \(prepared.tokenCount) tokens, frequencies \(inverseFrequencies.shape), layer \(layer)")
        }
        // Every slot inside the pool, among the rest.
        try prepared.checkFits(poolBlocks: kvPool.blockCount, blockTokens: layout.blockTokens)
        let table = try prepared.rotaryTable(frequencies: inverseFrequencies, headDim: headDim)
        return (table, prepared.slots, kvPool.kernelLayer(layer))
    }

    public func addAndNormalize(
        _ x: DeviceTensor, _ y: DeviceTensor, weight: DeviceTensor, epsilon: Float
    ) throws -> (sum: DeviceTensor, normed: DeviceTensor) {
        guard x.shape == y.shape, x.shape.count == 2, weight.count == x.columns else {
            throw BackendError.shapeMismatch(op: "addAndNormalize", detail: "\(x.shape) + \(y.shape), weight \(weight.shape)")
        }
        let (sum, s) = try allocate(x.shape)
        let (normed, n) = try allocate(x.shape)
        let (raw, a, b, w, rows, width) = (
            pool.raw, try x.cpu("addAndNormalize"), try y.cpu("addAndNormalize"), try weight.cpu("addAndNormalize"), x.rows, x.columns
        )
        try perform { hifc_add_rms_norm(raw, a, b, w, s, n, rows, width, epsilon) }
        return (sum, normed)
    }

    /// Rotates `q` (`[tokens, heads·headDim]`) and `k` (`[tokens, kvHeads·headDim]`) by each row's
    /// position, as `attentionInputs` describes; the unfused reference the fused op is tested against.
    public func rotary(
        q: DeviceTensor, k: DeviceTensor, headDim: Int, inverseFrequencies: DeviceTensor,
        step: any PreparedStep
    ) throws -> (q: DeviceTensor, k: DeviceTensor) {
        refuseReplay()
        let half = headDim / 2
        guard headDim % 2 == 0, inverseFrequencies.count == half,
            q.columns % headDim == 0, k.columns % headDim == 0,
            q.rows == step.batch.tokenCount, k.rows == q.rows
        else {
            throw BackendError.shapeMismatch(
                op: "rotary", detail: "q \(q.shape), k \(k.shape), headDim \(headDim), frequencies \(inverseFrequencies.shape)")
        }
        let frequencies = try inverseFrequencies.cpu("rotary")
        let (qOut, qp) = try allocate(q.shape)
        let (kOut, kp) = try allocate(k.shape)
        qp.update(from: try q.cpu("rotary"), count: q.count)
        kp.update(from: try k.cpu("rotary"), count: k.count)
        let positions = step.batch.positions
        let qWidth = q.columns
        let kWidth = k.columns
        var cosines = [Float](repeating: 0, count: half)
        var sines = cosines
        for row in positions.indices {
            for i in 0..<half {
                // Angles in Double: positions reach 10^5 and f32 would lose the low digits.
                let angle = Double(positions[row]) * Double(frequencies[i])
                cosines[i] = Float(cos(angle))
                sines[i] = Float(sin(angle))
            }
            for (base, width) in [(qp + row * qWidth, qWidth), (kp + row * kWidth, kWidth)] {
                var head = base
                while head < base + width {
                    for i in 0..<half {
                        let x1 = head[i]
                        let x2 = head[i + half]
                        head[i] = x1 * cosines[i] - x2 * sines[i]
                        head[i + half] = x2 * cosines[i] + x1 * sines[i]
                    }
                    head += headDim
                }
            }
        }
        return (qOut, kOut)
    }

    public func siluAndMultiply(_ gateUp: DeviceTensor) throws -> DeviceTensor {
        guard gateUp.shape.count == 2, gateUp.columns % 2 == 0 else {
            throw BackendError.shapeMismatch(op: "siluAndMultiply", detail: "gate/up \(gateUp.shape) needs an even column count")
        }
        let (result, out) = try allocate([gateUp.rows, gateUp.columns / 2])
        let (raw, source, rows, inter) = (pool.raw, try gateUp.cpu("siluAndMultiply"), gateUp.rows, gateUp.columns / 2)
        try perform { hifc_silu_mul(raw, source, out, rows, inter) }
        return result
    }

    /// Splits `x` (`[tokens, Σ widths]`) into contiguous `[tokens, widths[i]]` tensors, left to
    /// right: the outputs of a fused product taken apart.
    public func splitColumns(_ x: DeviceTensor, widths: [Int]) throws -> [DeviceTensor] {
        refuseReplay()
        guard x.shape.count == 2, widths.allSatisfy({ $0 > 0 }), widths.reduce(0, +) == x.columns else {
            throw BackendError.shapeMismatch(op: "splitColumns", detail: "\(x.shape) into widths \(widths)")
        }
        let src = try x.cpu("splitColumns")
        var start = 0
        return try widths.map { width in
            let (result, out) = try allocate([x.rows, width])
            for r in 0..<x.rows {
                (out + r * width).update(from: src + r * x.columns + start, count: width)
            }
            start += width
            return result
        }
    }

    public func add(_ a: DeviceTensor, _ b: DeviceTensor) throws -> DeviceTensor {
        guard a.shape == b.shape else {
            throw BackendError.shapeMismatch(op: "add", detail: "\(a.shape) + \(b.shape)")
        }
        let (result, out) = try allocate(a.shape)
        let (raw, x, y, count) = (pool.raw, try a.cpu("add"), try b.cpu("add"), a.count)
        try perform { hifc_add(raw, x, y, out, count) }
        return result
    }

    private func cpuPool(_ pool: any KVCachePool) throws -> CPUKVCachePool {
        guard let pool = pool as? CPUKVCachePool else { throw BackendError.foreignObject("the KV pool") }
        return pool
    }

    private func cpuStep(_ step: any PreparedStep) throws -> CPUPreparedStep {
        guard let step = step as? CPUPreparedStep else { throw BackendError.foreignObject("the prepared step") }
        return step
    }

    /// Writes row `r` of `k` and `v` (`[tokens, kvHeads·headDim]`) into `layer` of the pool at
    /// slot `step.batch.slotMapping[r]` (the unfused reference of `attentionInputs`' KV write).
    public func writeKV(
        k: DeviceTensor, v: DeviceTensor, layer: Int, pool: any KVCachePool, step: any PreparedStep
    ) throws {
        refuseReplay()
        let pool = try cpuPool(pool)
        let layout = pool.layout
        let width = layout.tokenElements
        let slots = step.batch.slotMapping
        guard k.shape == v.shape, k.columns == width, k.rows == slots.count, layer >= 0, layer < layout.layers else {
            throw BackendError.shapeMismatch(
                op: "writeKV", detail: "k \(k.shape), v \(v.shape), layer \(layer), \(slots.count) slots, \(width) KV elements per token")
        }
        let kp = try k.cpu("writeKV")
        let vp = try v.cpu("writeKV")
        var kernelLayer = pool.kernelLayer(layer)
        for (row, slot) in slots.enumerated() {
            guard slot >= 0, Int(slot) / layout.blockTokens < pool.blockCount else { throw BackendError.badStep("slot \(slot) outside the pool") }
            hifc_kv_store(&kernelLayer, Int(slot), kp + row * width, vp + row * width)
        }
    }

    public func pagedAttention(
        q: DeviceTensor, heads: Int, layer: Int, scale: Float, window: Int?, pool: any KVCachePool,
        step: any PreparedStep
    ) throws -> DeviceTensor {
        if let window, window < 1 { throw BackendError.shapeMismatch(op: "pagedAttention", detail: "sliding window of \(window) tokens") }
        let pool = try cpuPool(pool)
        let layout = pool.layout
        let prepared = try cpuStep(step)
        guard heads % layout.kvHeads == 0, q.columns == heads * layout.headDim,
            q.rows == prepared.tokenCount, layer >= 0, layer < layout.layers
        else {
            throw BackendError.shapeMismatch(
                op: "pagedAttention", detail: "q \(q.shape), \(heads) heads, \(layout.kvHeads) KV heads of \(layout.headDim), layer \(layer)")
        }
        try prepared.checkFits(poolBlocks: pool.blockCount, blockTokens: layout.blockTokens)
        let (result, out) = try allocate(q.shape)
        let (raw, source, sequences, count, kvLayer) = (
            self.pool.raw, try q.cpu("pagedAttention"), prepared.sequences, Int32(prepared.sequenceCount), pool.kernelLayer(layer)
        )
        try perform {
            let missing = hifc_paged_attention(raw, source, out, Int32(heads), scale, sequences, count, Int32(window ?? 0), kvLayer)
            if missing > 0 { throw BackendError.outOfMemory(what: "the attention's scratch", bytes: Int(missing)) }
        }
        return result
    }

    public func gatherLogitRows(_ x: DeviceTensor, step: any PreparedStep) throws -> DeviceTensor {
        // A recorded step's logit rows are part of its shape (every row, in order).
        let rows = step.batch.logitRows
        let width = x.columns
        let src = try x.cpu("gatherLogitRows")
        if let bad = rows.first(where: { $0 < 0 || Int($0) >= x.rows }) {
            throw BackendError.badStep("logit row \(bad) outside 0..<\(x.rows)")
        }
        let (result, out) = try allocate([rows.count, width])
        try perform {
            for (i, row) in rows.enumerated() { (out + i * width).update(from: src + Int(row) * width, count: width) }
        }
        return result
    }
}

extension CPUBackend {
    /// Sets up the process for the CPU backend once, at start-up: the kernels' instruction set
    /// (`HIFC_CPU_ISA=portable|avx2|avx512|amx` lowers it, for comparisons; the best the CPU has
    /// otherwise), a word on `HIFC_CPU_STEP_REPLAY` when it turns replays off or is not understood,
    /// and the shared pool's threads (`threads`, nil: the physical cores). Returns the
    /// pool for `init(pool:)`.
    public static func configureProcess(
        threads: Int?, environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger? = nil
    ) -> CPUThreadPool {
        if let wanted = environment["HIFC_CPU_ISA"] {
            let isa: hifc_isa
            switch wanted.lowercased() {
            case "portable": isa = HIFC_ISA_PORTABLE
            case "avx2": isa = HIFC_ISA_AVX2
            case "avx512": isa = HIFC_ISA_AVX512
            default: isa = HIFC_ISA_AMX
            }
            let chosen = hifc_isa_select(isa)
            logger?.info("HIFC_CPU_ISA=\(wanted): CPU kernels for \(String(cString: hifc_isa_name(chosen)))")
        }
        switch CPUStepRecords.enabled(environment) {
        case false?: logger?.info("HIFC_CPU_STEP_REPLAY=0: decode steps run op by op, not replayed")
        case nil:
            logger?.warning("HIFC_CPU_STEP_REPLAY=\(environment["HIFC_CPU_STEP_REPLAY"] ?? ""): expected 0, 1, on or off; decode steps are replayed")
        default: break
        }
        let pool = CPUThreadPool.configure(threads: threads)
        logger?.info(
            "CPU backend: \(pool.threads) threads (\(CPUThreadPool.physicalCores) physical cores), kernels for \(String(cString: hifc_isa_name(hifc_isa_active())))"
        )
        return pool
    }
}
