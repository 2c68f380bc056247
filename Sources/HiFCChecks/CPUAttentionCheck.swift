import Backend
import CPUKernels
import Foundation
import HiFCCore

/// The attention part of `hifc check cpu-kernels`: `hifc_paged_attention` of every instruction set
/// this CPU runs against the portable kernels, on fresh random queries and K/V in f32, bf16 and
/// fp8 pools, in the shapes of small models' decode steps and prefills, with its timings.
public struct CPUAttentionCheck {
    /// Sequences of `context` tokens each, `queryRows` of them new (1: a decode step).
    public struct Shape: Sendable {
        public var name: String
        public var heads, kvHeads, headDim: Int
        public var context, sequences, queryRows: Int
    }

    /// One shape on one instruction set, pool dtype and thread count: its error against the
    /// portable kernels and its best time.
    public struct Result: CustomStringConvertible {
        public var shape: Shape
        public var dtype: String
        public var isa: String
        public var threads: Int
        /// max |out − portable| / max |portable|.
        public var error: Double
        public var seconds: Double
        /// Bytes of K and V the step reads (each sequence's context, once).
        public var kvBytes: Double
        public static let tolerance = 1e-4

        public var passed: Bool { error <= Self.tolerance }

        public var description: String {
            String(
                format: "%@ attention %-24@ %-8@ %2d threads %-8@ error %.2e  %8.3f ms  %6.2f GB/s of K/V", passed ? "ok  " : "FAIL",
                shape.name, dtype, threads, isa, error, seconds * 1000, kvBytes / seconds / 1e9)
        }
    }

    public static let shapes = [
        Shape(name: "smollm2 decode 1x512", heads: 9, kvHeads: 3, headDim: 64, context: 512, sequences: 1, queryRows: 1),
        Shape(name: "smollm2 decode 8x512", heads: 9, kvHeads: 3, headDim: 64, context: 512, sequences: 8, queryRows: 1),
        Shape(name: "smollm2 decode 1x4096", heads: 9, kvHeads: 3, headDim: 64, context: 4096, sequences: 1, queryRows: 1),
        Shape(name: "gemma3-270m decode 8x512", heads: 4, kvHeads: 1, headDim: 256, context: 512, sequences: 8, queryRows: 1),
        Shape(name: "llama-8b decode 4x2048", heads: 32, kvHeads: 8, headDim: 128, context: 2048, sequences: 4, queryRows: 1),
        Shape(name: "smollm2 prefill 512", heads: 9, kvHeads: 3, headDim: 64, context: 512, sequences: 1, queryRows: 512),
        Shape(name: "gemma3-270m prefill 512", heads: 4, kvHeads: 1, headDim: 256, context: 512, sequences: 1, queryRows: 512),
    ]

    static let blockTokens = 16

    public let threads: Int
    public let repetitions: Int

    /// A check timing each shape `repetitions` times on `threads` threads (and on one).
    public init(threads: Int, repetitions: Int = 5) {
        self.threads = threads
        self.repetitions = repetitions
    }

    /// Runs every shape and pool dtype on each instruction set above the portable one, printing
    /// each result as it comes; returns them all.
    public func run(print: (String) -> Void) throws -> [Result] {
        var results: [Result] = []
        let sets = [HIFC_ISA_AVX2, HIFC_ISA_AVX512].filter { $0.rawValue <= hifc_isa_detected().rawValue }
        defer { hifc_isa_select(hifc_isa_detected()) }
        let backends = Array(Set([1, threads])).sorted().map { CPUBackend(blas: nil, pool: CPUThreadPool(threads: $0)) }
        for shape in Self.shapes {
            for dtype in [KVDType.float32, .bfloat16, .fp8e4m3] {
                let step = try RandomAttentionStep(shape: shape, dtype: dtype, backend: backends.last!)
                hifc_isa_select(HIFC_ISA_PORTABLE)
                let reference = try step.run(on: backends.last!)
                let scale = Double(reference.map(abs).max() ?? 1)
                for isa in sets {
                    hifc_isa_select(isa)
                    for backend in backends {
                        let out = try step.run(on: backend)
                        let error = zip(out, reference).map { Double(abs($0 - $1)) }.max() ?? 0
                        var best = Double.infinity
                        for _ in 0..<repetitions {
                            let start = DispatchTime.now().uptimeNanoseconds
                            _ = try step.run(on: backend)
                            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                        }
                        let result = Result(
                            shape: shape, dtype: dtype.rawValue, isa: String(cString: hifc_isa_name(isa)), threads: backend.pool.threads,
                            error: error / max(scale, 1e-30), seconds: best,
                            kvBytes: Double(shape.sequences * shape.context * step.pool.layout.bytesPerToken))
                        print(result.description)
                        results.append(result)
                    }
                }
            }
        }
        return results
    }
}

/// Random K and V for `shape`'s sequences written into a CPU KV pool of one layer (their blocks
/// in a scattered order), and random queries for their new rows: the attention of one step.
private struct RandomAttentionStep {
    let shape: CPUAttentionCheck.Shape
    let pool: any KVCachePool
    let step: any PreparedStep
    let queries: DeviceTensor

    init(shape: CPUAttentionCheck.Shape, dtype: KVDType, backend: CPUBackend) throws {
        self.shape = shape
        let blockTokens = CPUAttentionCheck.blockTokens
        let layout = KVBlockLayout(layers: 1, kvHeads: shape.kvHeads, headDim: shape.headDim, blockTokens: blockTokens, dtype: dtype)
        let blocksPerSequence = (shape.context + blockTokens - 1) / blockTokens
        pool = try backend.makeKVCachePool(layout: layout, blocks: blocksPerSequence * shape.sequences)
        let order = (0..<(blocksPerSequence * shape.sequences)).shuffled().map(Int32.init)
        let tables = (0..<shape.sequences).map { Array(order[($0 * blocksPerSequence)..<(($0 + 1) * blocksPerSequence)]) }
        // Every context token's K and V written by one step, then the step that attends.
        let written = try backend.prepare(
            try StepBatch.make(
                chunks: tables.map { (Array(repeating: 0, count: shape.context), 0, $0, false) }, blockTokens: blockTokens))
        let rows = shape.sequences * shape.context
        let k = try backend.uploadFloat32(
            (0..<(rows * layout.tokenElements)).map { _ in Float.random(in: -2...2) }, shape: [rows, layout.tokenElements])
        let v = try backend.uploadFloat32(
            (0..<(rows * layout.tokenElements)).map { _ in Float.random(in: -2...2) }, shape: [rows, layout.tokenElements])
        try backend.writeKV(k: k, v: v, layer: 0, pool: pool, step: written)
        step = try backend.prepare(
            try StepBatch.make(
                chunks: tables.map { (Array(repeating: 0, count: shape.queryRows), shape.context - shape.queryRows, $0, true) },
                blockTokens: blockTokens))
        let width = shape.heads * shape.headDim
        queries = try backend.uploadFloat32(
            (0..<(shape.sequences * shape.queryRows * width)).map { _ in Float.random(in: -2...2) },
            shape: [shape.sequences * shape.queryRows, width])
    }

    /// The step's attention output on `backend`'s threads with the kernels selected now.
    func run(on backend: CPUBackend) throws -> [Float] {
        try backend.download(
            try backend.pagedAttention(
                q: queries, heads: shape.heads, layer: 0, scale: 1 / Float(shape.headDim).squareRoot(), window: nil, pool: pool, step: step))
    }
}
