import Foundation
import HiFCCore
import Logging

/// The CPU backend: f32 everywhere, matrix products through a CBLAS library found at run time
/// (`BLASLibrary`) or the multithreaded `SwiftGEMM`, attention and elementwise ops in Swift.
public final class CPUBackend: ComputeBackend, @unchecked Sendable {
    /// The CBLAS library in use; nil when the Swift GEMM is.
    public let blas: BLASLibrary?

    /// A backend using `blas` (by default whatever `BLASLibrary.load()` finds).
    public init(blas: BLASLibrary? = BLASLibrary.load()) {
        self.blas = blas
    }

    public var name: String { "cpu (\(blas?.path ?? "swift gemm"))" }

    /// Products with fewer rows (decode steps of small batches) use the Swift GEMM even when a BLAS
    /// library is loaded: they are bound by reading the weights once, which the Swift loop does as
    /// well, and it avoids waking BLAS's thread pool, whose spinning workers then compete with the
    /// attention threads (measured: bench/results/cpu_vs_torch.md).
    public static let smallestBLASRows = 16

    /// Elementwise work below this many elements per thread stays on one thread.
    static let elementsPerTask = 1 << 16

    /// Rows of `width` elements worth one thread.
    static func rowsPerTask(_ width: Int) -> Int { max(1, elementsPerTask / max(width, 1)) }
    public var kvDType: KVDType { .float32 }

    // MARK: Memory

    func allocate(_ shape: [Int]) throws -> (DeviceTensor, UnsafeMutablePointer<Float>) {
        let storage = try CPUStorage(count: shape.reduce(1, *))
        return (DeviceTensor(storage: storage, shape: shape, dtype: .float32), storage.pointer)
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

    public func uploadFloat32(_ values: [Float], shape: [Int]) throws -> DeviceTensor {
        guard shape.reduce(1, *) == values.count else {
            throw BackendError.shapeMismatch(op: "uploadFloat32", detail: "\(values.count) values for shape \(shape)")
        }
        let (result, out) = try allocate(shape)
        values.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: values.count) }
        return result
    }

    public func download(_ tensor: DeviceTensor) throws -> [Float] {
        let p = try tensor.cpu("download")
        return Array(UnsafeBufferPointer(start: p, count: tensor.count))
    }

    public func downloadRows(_ tensor: DeviceTensor) throws -> [[Float]] {
        guard tensor.shape.count == 2 else { throw BackendError.shapeMismatch(op: "downloadRows", detail: "shape \(tensor.shape)") }
        let p = try tensor.cpu("downloadRows")
        return (0..<tensor.rows).map { Array(UnsafeBufferPointer(start: p + $0 * tensor.columns, count: tensor.columns)) }
    }

    public func argmaxRows(_ tensor: DeviceTensor) throws -> [Int] {
        guard tensor.shape.count == 2, tensor.columns > 0 else { throw BackendError.shapeMismatch(op: "argmaxRows", detail: "shape \(tensor.shape)") }
        let p = try tensor.cpu("argmaxRows")
        return (0..<tensor.rows).map { r in
            let row = p + r * tensor.columns
            var best = 0
            for i in 1..<tensor.columns where row[i] > row[best] { best = i }
            return best
        }
    }

    public func makeKVCachePool(layout: KVBlockLayout, blocks: Int) throws -> any KVCachePool {
        try CPUKVCachePool(layout: layout, blocks: blocks)
    }

    public func prepare(_ batch: StepBatch) throws -> any PreparedStep {
        CPUPreparedStep(batch: batch)
    }

    // MARK: Ops

    public func embedding(_ table: DeviceTensor, step: any PreparedStep) throws -> DeviceTensor {
        let ids = step.batch.tokenIDs
        let vocab = table.rows
        let width = table.columns
        let src = try table.cpu("embedding")
        let (result, out) = try allocate([ids.count, width])
        for (row, id) in ids.enumerated() {
            guard id >= 0, Int(id) < vocab else {
                throw BackendError.shapeMismatch(op: "embedding", detail: "token id \(id) outside a vocabulary of \(vocab)")
            }
            (out + row * width).update(from: src + Int(id) * width, count: width)
        }
        return result
    }

    public func rmsNorm(_ x: DeviceTensor, weight: DeviceTensor, epsilon: Float) throws -> DeviceTensor {
        let width = x.columns
        guard weight.count == width else {
            throw BackendError.shapeMismatch(op: "rmsNorm", detail: "x \(x.shape), weight \(weight.shape)")
        }
        let src = try x.cpu("rmsNorm")
        let w = try weight.cpu("rmsNorm")
        let (result, out) = try allocate(x.shape)
        parallelRanges(x.rows, minimumPerTask: Self.rowsPerTask(width)) { rows in
            for row in rows {
                let xr = src + row * width
                let yr = out + row * width
                var sum: Float = 0
                for i in 0..<width { sum += xr[i] * xr[i] }
                let inverse = 1 / (sum / Float(width) + epsilon).squareRoot()
                for i in 0..<width { yr[i] = xr[i] * inverse * w[i] }
            }
        }
        return result
    }

    public func linear(_ x: DeviceTensor, weight: DeviceTensor, bias: DeviceTensor?) throws -> DeviceTensor {
        let m = x.rows
        let k = x.columns
        let n = weight.rows
        guard weight.shape.count == 2, weight.columns == k else {
            throw BackendError.shapeMismatch(op: "linear", detail: "x \(x.shape), weight \(weight.shape)")
        }
        let a = try x.cpu("linear")
        let b = try weight.cpu("linear")
        let (result, c) = try allocate([m, n])
        if let blas, m >= Self.smallestBLASRows {
            blas.multiplyTransposed(a, b, c, m: m, n: n, k: k)
        } else {
            SwiftGEMM.multiplyTransposed(a, b, c, m: m, n: n, k: k)
        }
        if let bias {
            guard bias.count == n else {
                throw BackendError.shapeMismatch(op: "linear", detail: "bias \(bias.shape) for \(n) outputs")
            }
            let bp = try bias.cpu("linear")
            for row in 0..<m {
                let cr = c + row * n
                for j in 0..<n { cr[j] += bp[j] }
            }
        }
        return result
    }

    public func attentionInputs(
        qkv: DeviceTensor, heads: Int, headDim: Int, inverseFrequencies: DeviceTensor, layer: Int,
        pool: any KVCachePool, step: any PreparedStep
    ) throws -> DeviceTensor {
        let layout = try cpuPool(pool).layout
        let widths = [heads * headDim, layout.kvHeads * headDim, layout.kvHeads * headDim]
        guard qkv.shape.count == 2, qkv.columns == widths.reduce(0, +), headDim == layout.headDim else {
            throw BackendError.shapeMismatch(
                op: "attentionInputs",
                detail: "qkv \(qkv.shape) for \(heads) + 2 x \(layout.kvHeads) heads of \(headDim) (pool head dim \(layout.headDim))")
        }
        let parts = try splitColumns(qkv, widths: widths)
        let rotated = try rotary(q: parts[0], k: parts[1], headDim: headDim, inverseFrequencies: inverseFrequencies, step: step)
        try writeKV(k: rotated.k, v: parts[2], layer: layer, pool: pool, step: step)
        return rotated.q
    }

    public func addAndNormalize(
        _ x: DeviceTensor, _ y: DeviceTensor, weight: DeviceTensor, epsilon: Float
    ) throws -> (sum: DeviceTensor, normed: DeviceTensor) {
        let sum = try add(x, y)
        return (sum, try rmsNorm(sum, weight: weight, epsilon: epsilon))
    }

    /// Rotates `q` (`[tokens, heads·headDim]`) and `k` (`[tokens, kvHeads·headDim]`) by each row's
    /// position, as `attentionInputs` describes.
    public func rotary(
        q: DeviceTensor, k: DeviceTensor, headDim: Int, inverseFrequencies: DeviceTensor,
        step: any PreparedStep
    ) throws -> (q: DeviceTensor, k: DeviceTensor) {
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
        parallelRanges(positions.count, minimumPerTask: Self.rowsPerTask(qWidth + kWidth)) { rows in
            var cosines = [Float](repeating: 0, count: half)
            var sines = cosines
            for row in rows {
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
        }
        return (qOut, kOut)
    }

    public func siluAndMultiply(_ gateUp: DeviceTensor) throws -> DeviceTensor {
        guard gateUp.shape.count == 2, gateUp.columns % 2 == 0 else {
            throw BackendError.shapeMismatch(op: "siluAndMultiply", detail: "gate/up \(gateUp.shape) needs an even column count")
        }
        let x = try gateUp.cpu("siluAndMultiply")
        let rows = gateUp.rows
        let inter = gateUp.columns / 2
        let (result, out) = try allocate([rows, inter])
        parallelRanges(rows * inter, minimumPerTask: Self.elementsPerTask) { range in
            for i in range {
                let r = i / inter
                let c = i - r * inter
                let g = x[r * 2 * inter + c]
                out[i] = g / (1 + exp(-g)) * x[r * 2 * inter + inter + c]
            }
        }
        return result
    }

    /// Splits `x` (`[tokens, Σ widths]`) into contiguous `[tokens, widths[i]]` tensors, left to
    /// right: the outputs of a fused product taken apart.
    public func splitColumns(_ x: DeviceTensor, widths: [Int]) throws -> [DeviceTensor] {
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
        let x = try a.cpu("add")
        let y = try b.cpu("add")
        let (result, out) = try allocate(a.shape)
        parallelRanges(a.count, minimumPerTask: Self.elementsPerTask) { range in
            for i in range { out[i] = x[i] + y[i] }
        }
        return result
    }

    private func cpuPool(_ pool: any KVCachePool) throws -> CPUKVCachePool {
        guard let pool = pool as? CPUKVCachePool else { throw BackendError.foreignObject("the KV pool") }
        return pool
    }

    /// Writes row `r` of `k` and `v` (`[tokens, kvHeads·headDim]`) into `layer` of the pool at
    /// slot `step.batch.slotMapping[r]`.
    public func writeKV(
        k: DeviceTensor, v: DeviceTensor, layer: Int, pool: any KVCachePool, step: any PreparedStep
    ) throws {
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
        let floats = pool.floats
        let stride = pool.strideElements
        for (row, slot) in slots.enumerated() {
            let block = Int(slot) / layout.blockTokens
            let offset = Int(slot) % layout.blockTokens
            guard block < pool.blockCount else { throw BackendError.badStep("slot \(slot) outside the pool") }
            let blockBase = floats + block * stride
            (blockBase + layout.elementOffset(layer: layer, value: false, token: offset))
                .update(from: kp + row * width, count: width)
            (blockBase + layout.elementOffset(layer: layer, value: true, token: offset))
                .update(from: vp + row * width, count: width)
        }
    }

    public func pagedAttention(
        q: DeviceTensor, heads: Int, layer: Int, scale: Float, window: Int?, pool: any KVCachePool,
        step: any PreparedStep
    ) throws -> DeviceTensor {
        if let window, window < 1 { throw BackendError.shapeMismatch(op: "pagedAttention", detail: "sliding window of \(window) tokens") }
        let pool = try cpuPool(pool)
        let layout = pool.layout
        guard heads % layout.kvHeads == 0, q.columns == heads * layout.headDim,
            q.rows == step.batch.tokenCount, layer >= 0, layer < layout.layers
        else {
            throw BackendError.shapeMismatch(
                op: "pagedAttention", detail: "q \(q.shape), \(heads) heads, \(layout.kvHeads) KV heads of \(layout.headDim), layer \(layer)")
        }
        try step.batch.validate(poolBlocks: pool.blockCount)
        let (result, out) = try allocate(q.shape)
        let attention = CPUPagedAttention(
            pool: pool, layer: layer, heads: heads, scale: scale, window: window, query: try q.cpu("pagedAttention"), output: out)
        attention.run(step.batch.sequences)
        return result
    }

    public func gatherLogitRows(_ x: DeviceTensor, step: any PreparedStep) throws -> DeviceTensor {
        let rows = step.batch.logitRows
        let width = x.columns
        let src = try x.cpu("gatherLogitRows")
        let (result, out) = try allocate([rows.count, width])
        for (i, row) in rows.enumerated() {
            guard row >= 0, Int(row) < x.rows else {
                throw BackendError.badStep("logit row \(row) outside 0..<\(x.rows)")
            }
            (out + i * width).update(from: src + Int(row) * width, count: width)
        }
        return result
    }
}

/// The CPU backend's prepared step: the host description is all it needs.
final class CPUPreparedStep: PreparedStep {
    let batch: StepBatch
    init(batch: StepBatch) { self.batch = batch }
}
