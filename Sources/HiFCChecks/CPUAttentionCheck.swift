import CPUKernels
import Foundation

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
                format: "%@ attention %-22@ %-4@ %2d threads %-8@ error %.2e  %8.3f ms  %6.2f GB/s of K/V", passed ? "ok  " : "FAIL",
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
    public func run(print: (String) -> Void) -> [Result] {
        var results: [Result] = []
        let sets = [HIFC_ISA_AVX2, HIFC_ISA_AVX512].filter { $0.rawValue <= hifc_isa_detected().rawValue }
        defer { hifc_isa_select(hifc_isa_detected()) }
        let pools = Array(Set([1, threads])).sorted().map { hifc_pool_create(Int32($0), 200)! }
        defer { pools.forEach { hifc_pool_destroy($0) } }
        let dtypes: [(String, hifc_kv_dtype, Int)] = [("f32", HIFC_KV_F32, 4), ("bf16", HIFC_KV_BF16, 2), ("fp8", HIFC_KV_FP8_E4M3, 1)]
        for shape in Self.shapes {
            for (name, dtype, elementBytes) in dtypes {
                let step = RandomAttentionStep(shape: shape, dtype: dtype, elementBytes: elementBytes)
                defer { step.deallocate() }
                hifc_isa_select(HIFC_ISA_PORTABLE)
                let reference = step.run(pools.last!)
                let scale = Double(reference.map(abs).max() ?? 1)
                for isa in sets {
                    hifc_isa_select(isa)
                    for pool in pools {
                        let out = step.run(pool)
                        let error = zip(out, reference).map { Double(abs($0 - $1)) }.max() ?? 0
                        var best = Double.infinity
                        for _ in 0..<repetitions {
                            let start = DispatchTime.now().uptimeNanoseconds
                            _ = step.run(pool)
                            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                        }
                        let result = Result(
                            shape: shape, dtype: name, isa: String(cString: hifc_isa_name(isa)), threads: Int(hifc_pool_threads(pool)),
                            error: error / max(scale, 1e-30), seconds: best,
                            kvBytes: Double(shape.sequences * shape.context * shape.kvHeads * shape.headDim * elementBytes * 2))
                        print(result.description)
                        results.append(result)
                    }
                }
            }
        }
        return results
    }
}

/// A block-major pool of one layer holding random K and V for `shape`'s sequences (blocks in a
/// scattered order), and random queries for their new rows.
private struct RandomAttentionStep {
    let shape: CPUAttentionCheck.Shape
    let base: UnsafeMutableRawPointer
    let layer: hifc_kv_layer
    /// The sequences' block tables, one after the other (the sequences point into it).
    let blockTables: UnsafeMutableBufferPointer<Int32>
    let sequences: [hifc_sequence]
    let queries: [Float]

    init(shape: CPUAttentionCheck.Shape, dtype: hifc_kv_dtype, elementBytes: Int) {
        self.shape = shape
        let blockTokens = CPUAttentionCheck.blockTokens
        let blocksPerSequence = (shape.context + blockTokens - 1) / blockTokens
        let blocks = blocksPerSequence * shape.sequences
        let plane = blockTokens * shape.kvHeads * shape.headDim * elementBytes
        let scalePlane = dtype == HIFC_KV_FP8_E4M3 ? blockTokens * shape.kvHeads * 4 : 0
        let stride = 2 * plane + 2 * scalePlane
        base = UnsafeMutableRawPointer.allocate(byteCount: stride * blocks, alignment: 64)
        var layer = hifc_kv_layer()
        layer.base = base.assumingMemoryBound(to: UInt8.self)
        layer.block_stride = stride
        layer.key_offset = 0
        layer.value_offset = plane
        layer.key_scale_offset = 2 * plane
        layer.value_scale_offset = 2 * plane + scalePlane
        layer.block_tokens = Int32(blockTokens)
        layer.kv_heads = Int32(shape.kvHeads)
        layer.head_dim = Int32(shape.headDim)
        layer.dtype = Int32(dtype.rawValue)
        blockTables = .allocate(capacity: blocks)
        _ = blockTables.initialize(from: (0..<blocks).shuffled().map(Int32.init))
        let width = shape.kvHeads * shape.headDim
        var sequences: [hifc_sequence] = []
        for s in 0..<shape.sequences {
            let table = blockTables.baseAddress! + s * blocksPerSequence
            for token in 0..<shape.context {
                let k = (0..<width).map { _ in Float.random(in: -2...2) }
                let v = (0..<width).map { _ in Float.random(in: -2...2) }
                hifc_kv_store(&layer, Int(table[token / blockTokens]) * blockTokens + token % blockTokens, k, v)
            }
            sequences.append(
                hifc_sequence(
                    query_start: Int32(s * shape.queryRows), query_length: Int32(shape.queryRows), context_length: Int32(shape.context),
                    blocks: table))
        }
        self.layer = layer
        self.sequences = sequences
        queries = (0..<(shape.sequences * shape.queryRows * shape.heads * shape.headDim)).map { _ in Float.random(in: -2...2) }
    }

    /// The step's attention output on `pool` with the kernels selected now.
    func run(_ pool: OpaquePointer) -> [Float] {
        var out = [Float](repeating: 0, count: queries.count)
        hifc_paged_attention(
            pool, queries, &out, Int32(shape.heads), 1 / Float(shape.headDim).squareRoot(), sequences, Int32(sequences.count), 0, layer)
        return out
    }

    func deallocate() {
        base.deallocate()
        blockTables.deallocate()
    }
}
