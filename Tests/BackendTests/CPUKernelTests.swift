import CPUKernels
import Foundation
import HiFCCore
import XCTest

@testable import Backend

/// The C kernels of the CPU backend: every instruction set this CPU has against the portable
/// one, the quantized formats against their dequantization (itself checked against values from
/// llama.cpp's `gguf` Python package), and the thread pool's fork-join.
final class CPUKernelTests: XCTestCase {
    /// The instruction sets this machine can run, portable first.
    private var instructionSets: [hifc_isa] {
        [HIFC_ISA_PORTABLE, HIFC_ISA_AVX2, HIFC_ISA_AVX512, HIFC_ISA_AMX].filter { $0.rawValue <= hifc_isa_detected().rawValue }
    }

    /// Runs `body` once per instruction set and returns its results, restoring the best set after.
    private func acrossInstructionSets<T>(_ body: () throws -> T) rethrows -> [(String, T)] {
        defer { hifc_isa_select(hifc_isa_detected()) }
        return try instructionSets.map { isa in
            hifc_isa_select(isa)
            return (String(cString: hifc_isa_name(isa)), try body())
        }
    }

    private func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { i in Float(((i * 7919 + seed * 104_729) % 2001) - 1000) / 1000 }
    }

    private func assertClose(_ a: [Float], _ b: [Float], relative: Float, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, file: file, line: line)
        let scale = max(1, b.map(abs).max() ?? 1)
        for (i, (x, y)) in zip(a, b).enumerated() where abs(x - y) > relative * scale {
            XCTFail("\(message): element \(i) is \(x), expected \(y)", file: file, line: line)
            return
        }
    }

    func testEveryInstructionSetComputesTheSameOpsAsThePortableKernels() throws {
        let pool = CPUThreadPool(threads: 2)
        let backend = CPUBackend(blas: nil, pool: pool)
        let (m, n, k) = (5, 37, 70)
        let a = try backend.uploadFloat32(values(m * k, seed: 1), shape: [m, k])
        let b = try backend.uploadFloat32(values(n * k, seed: 2), shape: [n, k])
        let gateUp = try backend.uploadFloat32(values(3 * 2 * 1000, seed: 3).map { $0 * 20 }, shape: [3, 2000])
        let weight = try backend.uploadFloat32(values(k, seed: 4), shape: [k])
        let layout = KVBlockLayout(layers: 1, kvHeads: 2, headDim: 16, blockTokens: 16, dtype: .float32)
        let kv = try backend.makeKVCachePool(layout: layout, blocks: 70)
        for block in 0..<70 {
            let floats = values(layout.blockElements, seed: 10 + block)
            try floats.withUnsafeBytes { try kv.copyBlock(block, from: $0) }
        }
        // A prefill chunk of 5 rows and a decode row over 1000 tokens (its keys split over threads).
        let step = try backend.prepare(
            try StepBatch.make(
                chunks: [
                    (tokens: Array(repeating: 0, count: 5), startPosition: 995, blockTable: (0..<63).reversed().map { Int32($0) }, wantsLogits: true),
                    (tokens: [0], startPosition: 999, blockTable: (0..<63).map { Int32($0) }, wantsLogits: true),
                ], blockTokens: 16))
        let q = try backend.uploadFloat32(values(6 * 4 * 16, seed: 5), shape: [6, 64])
        let results = try acrossInstructionSets {
            [
                try backend.download(try backend.linear(a, weight: b, bias: nil)),
                try backend.download(try backend.siluAndMultiply(gateUp)),
                try backend.download(try backend.geluTanhAndMultiply(gateUp)),
                try backend.download(try backend.rmsNorm(a, weight: weight, epsilon: 1e-5)),
                try backend.download(try backend.addAndNormalize(a, a, weight: weight, epsilon: 1e-5).normed),
                try backend.download(try backend.pagedAttention(q: q, heads: 4, layer: 0, scale: 0.25, pool: kv, step: step)),
                try backend.argmaxRows(gateUp).map(Float.init),
            ]
        }
        let names = ["linear", "silu", "geluTanh", "rmsNorm", "addAndNormalize", "attention", "argmax"]
        for (isa, outputs) in results.dropFirst() {
            for (i, name) in names.enumerated() {
                assertClose(outputs[i], results[0].1[i], relative: 1e-5, "\(name) on \(isa)")
            }
        }
    }

    /// PyTorch's tanh GELU, `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))` in double, times `up`,
    /// on gates from -20 to 20 (past where `exp` of the sigmoid form overflows).
    /// Attention on every instruction set against a float64 reference, in shapes that reach each
    /// path of the kernel: head sizes that are and are not a multiple of the vector width, passes
    /// of 128 keys and a ragged last one, prefill tiles of several rows (causal inside the pass),
    /// a sliding window, and a long decode row split over threads and merged.
    func testPagedAttentionMatchesAFloat64ReferenceOnEveryInstructionSet() throws {
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2))
        for (heads, kvHeads, d) in [(9, 3, 64), (4, 1, 40)] {
            let layout = KVBlockLayout(layers: 1, kvHeads: kvHeads, headDim: d, blockTokens: 16, dtype: .float32)
            let kv = try backend.makeKVCachePool(layout: layout, blocks: 60)
            // Sequence A: 150 prompt tokens in blocks 0..<10; sequence B: 601 tokens in blocks 59 down to 22.
            let tableA = (0..<10).map { Int32($0) }
            let tableB = (22..<60).reversed().map { Int32($0) }
            let written = try backend.prepare(
                try StepBatch.make(
                    chunks: [
                        (tokens: Array(repeating: 0, count: 150), startPosition: 0, blockTable: tableA, wantsLogits: true),
                        (tokens: Array(repeating: 0, count: 601), startPosition: 0, blockTable: tableB, wantsLogits: true),
                    ], blockTokens: 16))
            let k = values(751 * kvHeads * d, seed: 21 + d)
            let v = values(751 * kvHeads * d, seed: 22 + d)
            try backend.writeKV(
                k: try backend.uploadFloat32(k, shape: [751, kvHeads * d]), v: try backend.uploadFloat32(v, shape: [751, kvHeads * d]),
                layer: 0, pool: kv, step: written)
            // The prompt of A with the last token of B, then B's last token alone, then B's last five
            // as a chunk (both split by keys where their items are too few for the threads: the
            // chunk with 3 KV heads, one tile of rows).
            typealias Chunk = (tokens: [Int32], startPosition: Int, blockTable: [Int32], wantsLogits: Bool)
            let prefillAndDecode: [Chunk] = [(Array(repeating: 0, count: 150), 0, tableA, true), ([0], 600, tableB, true)]
            let decodeAlone: [Chunk] = [([0], 600, tableB, true)]
            let chunkAlone: [Chunk] = [(Array(repeating: 0, count: 5), 596, tableB, true)]
            // Each step's rows as (sequence, position).
            let steps: [([(sequence: Int, position: Int)], [Chunk])] = [
                ((0..<150).map { (0, $0) } + [(1, 600)], prefillAndDecode), ([(1, 600)], decodeAlone),
                ((596..<601).map { (1, $0) }, chunkAlone),
            ]
            let scale = 1 / Float(d).squareRoot()
            for window in [nil, 100] {
                for (rows, chunks) in steps {
                    let step = try backend.prepare(try StepBatch.make(chunks: chunks, blockTokens: 16))
                    let queries = values(rows.count * heads * d, seed: 23 + d + rows.count).map { $0 * 3 }
                    let q = try backend.uploadFloat32(queries, shape: [rows.count, heads * d])
                    // The reference for every row at a pass's edges and every 7th (float64 in a
                    // debug build is slow); the kernel's output for the others is not compared.
                    let checked = rows.indices.filter { [0, 1, 4, 5, 127, 128, 129, 149, 150].contains($0) || $0 % 7 == 3 }
                    var expected: [Float] = []
                    for r in checked {
                        let row = rows[r]
                        let offset = row.sequence == 0 ? 0 : 150  // B's token t is row 150 + t of k and v
                        let visible = max(0, row.position - (window ?? Int.max) + 1)...row.position
                        for h in 0..<heads {
                            let g = h / (heads / kvHeads)
                            var scores: [Double] = []
                            for t in visible {
                                var dot = 0.0
                                for e in 0..<d { dot += Double(queries[(r * heads + h) * d + e]) * Double(k[((offset + t) * kvHeads + g) * d + e]) }
                                scores.append(dot * Double(scale))
                            }
                            let top = scores.max()!
                            let weights = scores.map { exp($0 - top) }
                            let total = weights.reduce(0, +)
                            var sums = [Double](repeating: 0, count: d)
                            for (t, weight) in zip(visible, weights) {
                                for e in 0..<d { sums[e] += weight * Double(v[((offset + t) * kvHeads + g) * d + e]) }
                            }
                            expected += sums.map { Float($0 / total) }
                        }
                    }
                    for (isa, out) in try acrossInstructionSets({
                        let out = try backend.download(
                            try backend.pagedAttention(q: q, heads: heads, layer: 0, scale: scale, window: window, pool: kv, step: step))
                        return checked.flatMap { out[($0 * heads * d)..<(($0 + 1) * heads * d)] }
                    }) {
                        assertClose(out, expected, relative: 1e-5, "\(isa), head dim \(d), window \(window ?? 0), \(rows.count) rows")
                    }
                }
            }
        }
    }

    /// A NaN in one element of one key reaches, as in the float64 reference's softmax, every
    /// element of every head of that KV head in every row that sees the key, and nothing else, on
    /// every instruction set: the key alone in its row's pass (row 0, key 0), among finite keys
    /// in a pass's vector groups or its scalar tail, in a later pass, left behind by a sliding
    /// window, and in a decode row split by keys over the threads and merged.
    func testAttentionPropagatesANaNKeyToTheRowsThatSeeItOnly() throws {
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2))
        let (heads, kvHeads, d, tokens) = (4, 2, 40, 601)
        let layout = KVBlockLayout(layers: 1, kvHeads: kvHeads, headDim: d, blockTokens: 16, dtype: .float32)
        let kv = try backend.makeKVCachePool(layout: layout, blocks: 38)
        let table = (0..<38).map { Int32($0) }
        let written = try backend.prepare(
            try StepBatch.make(
                chunks: [(tokens: Array(repeating: 0, count: tokens), startPosition: 0, blockTable: table, wantsLogits: true)], blockTokens: 16))
        // A prompt of 150 rows (passes of 128 keys and a ragged 22), and the last token's decode row.
        let prefill = try backend.prepare(
            try StepBatch.make(
                chunks: [(tokens: Array(repeating: 0, count: 150), startPosition: 0, blockTable: table, wantsLogits: true)], blockTokens: 16))
        let decode = try backend.prepare(
            try StepBatch.make(chunks: [(tokens: [0], startPosition: tokens - 1, blockTable: table, wantsLogits: true)], blockTokens: 16))
        let steps = [(prefill, Array(0..<150)), (decode, [tokens - 1])]  // each step's rows' positions
        let v = try backend.uploadFloat32(values(tokens * kvHeads * d, seed: 31), shape: [tokens, kvHeads * d])
        for key in [0, 9, 140, 148, 300] {
            var k = values(tokens * kvHeads * d, seed: 32)
            k[key * kvHeads * d + 3] = .nan  // KV head 0, element 3
            try backend.writeKV(k: try backend.uploadFloat32(k, shape: [tokens, kvHeads * d]), v: v, layer: 0, pool: kv, step: written)
            for window in [nil, 100] {
                for (step, positions) in steps {
                    let q = try backend.uploadFloat32(values(positions.count * heads * d, seed: 33), shape: [positions.count, heads * d])
                    // Heads 0 and 1 read KV head 0.
                    let expected = positions.flatMap { p in
                        (0..<heads).map { h in h < heads / kvHeads && key <= p && key > p - (window ?? Int.max) }
                    }
                    for (isa, out) in try acrossInstructionSets({
                        try backend.download(
                            try backend.pagedAttention(q: q, heads: heads, layer: 0, scale: 0.2, window: window, pool: kv, step: step))
                    }) {
                        let slices = stride(from: 0, to: out.count, by: d).map { out[$0..<($0 + d)] }
                        let wrong = slices.indices.filter { i in
                            !(expected[i] ? slices[i].allSatisfy(\.isNaN) : slices[i].allSatisfy(\.isFinite))
                        }
                        // Indices row·heads + head of the heads that are not as expected.
                        XCTAssertEqual(wrong, [], "\(isa), NaN in key \(key), window \(window ?? 0), \(positions.count) rows")
                    }
                }
            }
        }
    }

    func testGELUTanhTimesUpFollowsPyTorchsFormula() throws {
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2))
        let gates: [Float] = values(1000, seed: 7).map { $0 * 20 } + [0, -0.0, 1e-6, 88, -88]
        let ups: [Float] = values(gates.count, seed: 8)
        let out = try backend.download(try backend.geluTanhAndMultiply(try backend.uploadFloat32(gates + ups, shape: [1, 2 * gates.count])))
        for (i, (gate, up)) in zip(gates, ups).enumerated() {
            let x = Double(gate)
            let inner: Double = 0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x)
            let expected: Double = x / 2 * (1 + tanh(inner)) * Double(up)
            XCTAssertEqual(Double(out[i]), expected, accuracy: 1e-5 * max(1, abs(expected)), "gate \(x)")
        }
        XCTAssertFalse(out.contains { $0.isNaN }, "a large negative gate gives -0, not NaN")
    }

    /// Deterministic bytes for `blocks` blocks of `type`, with sane f16 scales at `scales`
    /// (byte offsets within a block).
    private func blocks(_ type: hifc_quant_type, count: Int, scales: [(Int, Float16)], salt: Int = 0) -> [UInt8] {
        let size = Int(hifc_quant_block_bytes(Int32(type.rawValue)))
        var bytes = (0..<(size * count)).map { UInt8(truncatingIfNeeded: ($0 % size + salt * ($0 / size + 1)) * 37 + 11) }
        for block in 0..<count {
            for (offset, value) in scales {
                let bits = value.bitPattern
                bytes[block * size + offset] = UInt8(bits & 0xFF)
                bytes[block * size + offset + 1] = UInt8(bits >> 8)
            }
        }
        return bytes
    }

    private let formats: [(hifc_quant_type, [(Int, Float16)])] = [
        (HIFC_QUANT_Q8_0, [(0, 0.004)]), (HIFC_QUANT_Q4_0, [(0, 0.03)]), (HIFC_QUANT_Q4_1, [(0, 0.03), (2, -0.2)]),
        (HIFC_QUANT_Q5_0, [(0, 0.02)]), (HIFC_QUANT_Q5_1, [(0, 0.02), (2, -0.1)]), (HIFC_QUANT_Q4_K, [(0, 0.02), (2, 0.05)]),
        (HIFC_QUANT_Q5_K, [(0, 0.02), (2, 0.05)]),
        (HIFC_QUANT_Q6_K, [(208, 0.01)]),
    ]

    func testDequantizationMatchesLlamaCppsPythonPackage() {
        // Expected values: gguf 0.19 (llama.cpp's gguf-py) `quants.dequantize` of the same bytes
        // (byte i = 37·i + 11, the f16 fields set as in `formats`).
        let expected: [hifc_quant_type: [(Int, Float)]] = [
            HIFC_QUANT_Q8_0: [(0, 0.3401374816894531), (1, 0.48819732666015625), (17, -0.21608734130859375), (31, -0.19207763671875)],
            HIFC_QUANT_Q4_0: [(0, -0.089996337890625), (1, 0.05999755859375), (17, -0.029998779296875), (31, 0)],
            HIFC_QUANT_Q4_1: [(0, 0.250030517578125), (1, -0.0799560546875), (17, 0.1600341796875), (31, 0.1600341796875)],
            HIFC_QUANT_Q5_0: [
                (0, 0.1800384521484375), (1, -0.040008544921875), (5, -0.280059814453125), (17, 0), (20, 0.1400299072265625),
                (31, 0.0200042724609375),
            ],
            HIFC_QUANT_Q4_K: [
                (0, 4.2720794677734375), (1, -2.54937744140625), (17, -2.54937744140625), (31, 1.171417236328125),
                (37, -1.11968994140625), (100, 0.5408935546875), (129, -0.599853515625), (255, -0.429290771484375),
            ],
            HIFC_QUANT_Q5_1: [
                (0, 0.2801055908203125), (1, 0.380126953125), (5, 0.14007568359375), (17, 4.57763671875e-05), (20, 0.14007568359375),
                (31, 4.57763671875e-05),
            ],
            HIFC_QUANT_Q5_K: [
                (0, 14.194198608398438), (1, -2.54937744140625), (17, -2.54937744140625), (31, 1.171417236328125),
                (37, -0.31951904296875), (100, 3.34149169921875), (129, -0.599853515625), (255, 0.770965576171875),
            ],
            HIFC_QUANT_Q6_K: [
                (0, -14.313056945800781), (1, 16.963623046875), (17, 5.12109375), (31, -0.960205078125), (37, -2.520538330078125),
                (100, 25.235389709472656), (129, 4.160888671875), (255, -0.600128173828125),
            ],
        ]
        for (type, scales) in formats {
            let bytes = blocks(type, count: 1, scales: scales)
            let weights = Int(hifc_quant_block_weights(Int32(type.rawValue)))
            var out = [Float](repeating: 0, count: weights)
            hifc_dequantize(Int32(type.rawValue), bytes, &out, weights)
            for (i, value) in expected[type]! {
                XCTAssertEqual(out[i], value, "type \(type.rawValue) weight \(i)")
            }
        }
    }

    func testQuantizedProductsMatchTheDequantizedWeightsOnEveryInstructionSet() {
        let pool = CPUThreadPool(threads: 2)
        for (type, scales) in formats {
            let t = Int32(type.rawValue)
            // A prefill chunk, and a decode row (its own kernel), over an odd block count where
            // the format allows (the decode kernel takes two blocks at a time).
            let weightsPerBlock = Int(hifc_quant_block_weights(t))
            // On a CPU with AMX, 37 rows take its tiles (ragged: 2 tiles and 5 rows, 2 column groups).
            for (m, n, k) in [(6, 11, 512), (1, 11, weightsPerBlock == 32 ? 544 : 512), (37, 21, 512)] {
                checkQuantizedProduct(type: type, scales: scales, m: m, n: n, k: k, pool: pool)
            }
        }
    }

    func testADecodeRowsProductEqualsItsRowOfABatchBitForBit() {
        // One row takes the decode kernels (gemv32 on AVX-512), several the tiles: the same floats,
        // so a sequence recomputed in a batch (after a preemption) gets the KV its decode steps wrote.
        let (m, n, k) = (6, 13, 544)
        let a = values(m * k, seed: 5)
        for (type, scales) in formats {
            let t = Int32(type.rawValue)
            guard k % Int(hifc_quant_block_weights(t)) == 0 else { continue }
            let w = blocks(type, count: n * k / Int(hifc_quant_block_weights(t)), scales: scales, salt: 5)
            _ = acrossInstructionSets {
                var scratch = [UInt8](repeating: 0, count: hifc_gemm_quant_scratch(t, m, k))
                var batch = [Float](repeating: 0, count: m * n)
                hifc_gemm_quant(nil, t, a, w, nil, &batch, m, n, k, &scratch)
                let isa = String(cString: hifc_isa_name(hifc_isa_active()))
                for row in 0..<m {
                    var single = [Float](repeating: 0, count: n)
                    a.withUnsafeBufferPointer { hifc_gemm_quant(nil, t, $0.baseAddress! + row * k, w, nil, &single, 1, n, k, &scratch) }
                    XCTAssertEqual(single, Array(batch[(row * n)..<((row + 1) * n)]), "type \(t), row \(row), \(isa)")
                }
            }
        }
    }

    func testInterleavedRowsMultiplyAsTheFileRowsOnEveryInstructionSet() {
        // The nibble formats, Q4_K and Q5_K are multiplied in eight-row interleaved blocks: the same products as the
        // file's rows (the same floats in plain C, which takes the rows back out), a decode row
        // equal to its row of a batch bit for bit, and the gated MLP in one call equal to its ops.
        let pool = CPUThreadPool(threads: 3)
        let (n, k, inter) = (24, 768, 256)
        for (type, scales) in formats where hifc_quant_interleaved_type(Int32(type.rawValue)) != 0 {
            let t = Int32(type.rawValue)
            let x8 = hifc_quant_interleaved_type(t)
            let perBlock = Int(hifc_quant_block_weights(t))
            XCTAssertEqual(hifc_quant_block_bytes(x8), hifc_quant_block_bytes(t), "an interleaved block is its rows' bytes")
            let w = blocks(type, count: n * k / perBlock, scales: scales, salt: 11)
            var interleaved = [UInt8](repeating: 0, count: w.count)
            hifc_quant_interleave(pool.raw, t, w, n, k, &interleaved)
            XCTAssertNotEqual(interleaved, w)
            for m in [1, 5, 8, 19] {
                let a = values(m * k, seed: m)
                var scratch = [UInt8](repeating: 0, count: hifc_gemm_quant_scratch(t, m, k))
                let results = acrossInstructionSets { () -> ([Float], [Float], [Float]) in
                    var file = [Float](repeating: 0, count: m * n)
                    var mine = [Float](repeating: .nan, count: m * n)
                    hifc_gemm_quant(pool.raw, t, a, w, nil, &file, m, n, k, &scratch)
                    hifc_gemm_quant(pool.raw, x8, a, interleaved, nil, &mine, m, n, k, &scratch)
                    var rows = [Float](repeating: .nan, count: m * n)
                    for row in 0..<m {
                        a.withUnsafeBufferPointer { input in
                            rows.withUnsafeMutableBufferPointer { out in
                                hifc_gemm_quant(
                                    nil, x8, input.baseAddress! + row * k, interleaved, nil, out.baseAddress! + row * n, 1, n, k, &scratch)
                            }
                        }
                    }
                    return (file, mine, rows)
                }
                XCTAssertEqual(results[0].1.0, results[0].1.1, "type \(t), \(m) rows, plain C")
                for (isa, (file, mine, rows)) in results {
                    assertClose(mine, file, relative: 1e-5, "type \(t), \(m) rows, \(isa)")
                    XCTAssertEqual(rows, mine, "type \(t), \(m) rows one at a time, \(isa)")
                }
            }
            // The gated MLP over interleaved gate|up and down weights.
            let gateUp = blocks(type, count: 2 * inter * k / perBlock, scales: scales, salt: 3)
            let down = blocks(type, count: k * inter / perBlock, scales: scales, salt: 7)
            var gateUpX8 = [UInt8](repeating: 0, count: gateUp.count)
            var downX8 = [UInt8](repeating: 0, count: down.count)
            hifc_quant_interleave(nil, t, gateUp, 2 * inter, k, &gateUpX8)
            hifc_quant_interleave(pool.raw, t, down, k, inter, &downX8)
            let x = values(3 * k, seed: 4)
            _ = acrossInstructionSets {
                var products = [Float](repeating: 0, count: 3 * 2 * inter)
                var activated = [Float](repeating: 0, count: 3 * inter)
                var expected = [Float](repeating: 0, count: 3 * k)
                var scratch = [UInt8](repeating: 0, count: hifc_gemm_quant_scratch(x8, 3, k))
                hifc_gemm_quant(pool.raw, x8, x, gateUpX8, nil, &products, 3, 2 * inter, k, &scratch)
                hifc_silu_mul(pool.raw, products, &activated, 3, inter)
                hifc_gemm_quant(pool.raw, x8, activated, downX8, nil, &expected, 3, k, inter, &scratch)
                var fused = [Float](repeating: .nan, count: 3 * k)
                var fusedScratch = [UInt8](repeating: 0, count: hifc_gated_mlp_quant_scratch(x8, x8, 3, inter, k))
                hifc_gated_mlp_quant(pool.raw, x8, gateUpX8, x8, downX8, x, &fused, 3, inter, k, &fusedScratch)
                XCTAssertEqual(fused, expected, "type \(t), gated MLP, \(String(cString: hifc_isa_name(hifc_isa_active())))")
            }
        }
    }

    /// `hifc_gemm_quant` of `m × k` activations and `n` rows of `type` against the dequantized
    /// weights (within the 8-bit activations' error) and, on every instruction set, against the
    /// portable kernels.
    private func checkQuantizedProduct(type: hifc_quant_type, scales: [(Int, Float16)], m: Int, n: Int, k: Int, pool: CPUThreadPool) {
        let a = values(m * k, seed: 7)
        let t = Int32(type.rawValue)
        let rowBlocks = k / Int(hifc_quant_block_weights(t))
        let w = blocks(type, count: n * rowBlocks, scales: scales, salt: 3)
        var dense = [Float](repeating: 0, count: n * k)
        hifc_dequantize(t, w, &dense, n * k)
        var scratch = [UInt8](repeating: 0, count: hifc_gemm_quant_scratch(t, m, k))
        let results = acrossInstructionSets {
            var c = [Float](repeating: 0, count: m * n)
            hifc_gemm_quant(pool.raw, t, a, w, nil, &c, m, n, k, &scratch)
            return c
        }
        // The integer path quantizes activations to 8 bits per block: allow that much error,
        // measured against Σ|w·a| of each output.
        for i in 0..<m {
            for j in 0..<n {
                var exact: Double = 0
                var magnitude: Double = 0
                for p in 0..<k {
                    exact += Double(a[i * k + p]) * Double(dense[j * k + p])
                    magnitude += abs(Double(a[i * k + p]) * Double(dense[j * k + p]))
                }
                XCTAssertEqual(Double(results[0].1[i * n + j]), exact, accuracy: 0.01 * magnitude, "type \(t) [\(i), \(j)]")
            }
        }
        // Every SIMD path does the same integer arithmetic as the portable one.
        for (isa, c) in results.dropFirst() {
            assertClose(c, results[0].1, relative: 1e-5, "type \(t), \(m) rows, on \(isa)")
        }
    }

    /// Intel's `tdpbssd` on the packed tiles, written from its definition: `c[j][i] = Σ_r Σ_t
    /// A[j][4r + t] · B[r][4i + t]` over the 8 rows of B (16 s32 sums per row of A).
    private func tileProduct(_ a: hifc_amx_block, _ b: hifc_amx_block) -> [Int32] {
        withUnsafeBytes(of: a) { ap in
            withUnsafeBytes(of: b) { bp in
                (0..<256).map { index in
                    let (j, i) = (index / 16, index % 16)
                    var sum: Int32 = 0
                    for r in 0..<8 {
                        for t in 0..<4 {
                            sum +=
                                Int32(ap.load(fromByteOffset: 32 * j + 4 * r + t, as: Int8.self))
                                * Int32(bp.load(fromByteOffset: 64 * r + 4 * i + t, as: Int8.self))
                        }
                    }
                    return sum
                }
            }
        }
    }

    func testAMXTilePackingAndEpilogueMultiplyLikeThePortableKernel() {
        // Ragged both ways: 2 activation tiles (16 + 5 rows) and 2 weight groups (16 + 3 rows).
        let (m, n, k) = (21, 19, 96)
        let blockCount = k / 32
        let a = values(m * k, seed: 11)
        hifc_isa_select(HIFC_ISA_PORTABLE)
        defer { hifc_isa_select(hifc_isa_detected()) }
        for (type, scales) in formats where [HIFC_QUANT_Q8_0, HIFC_QUANT_Q4_0, HIFC_QUANT_Q4_1, HIFC_QUANT_Q5_0, HIFC_QUANT_Q5_1].contains(type) {
            let t = Int32(type.rawValue)
            let rowBytes = blockCount * Int(hifc_quant_block_bytes(t))
            let w = blocks(type, count: n * blockCount, scales: scales, salt: 7)
            var expected = [Float](repeating: 0, count: m * n)
            var scratch = [UInt8](repeating: 0, count: hifc_gemm_quant_scratch(t, m, k))
            hifc_gemm_quant(nil, t, a, w, nil, &expected, m, n, k, &scratch)
            var c = [Float](repeating: .nan, count: m * n)
            for row0 in stride(from: 0, to: m, by: 16) {
                let mr = min(16, m - row0)
                var activations = [hifc_amx_block](repeating: hifc_amx_block(), count: blockCount)
                a.withUnsafeBufferPointer { hifc_amx_pack_activations($0.baseAddress! + row0 * k, Int32(mr), k, &activations) }
                for col0 in stride(from: 0, to: n, by: 16) {
                    let nr = min(16, n - col0)
                    var acc = [Float](repeating: 0, count: 256)
                    for b in 0..<blockCount {
                        var weights = hifc_amx_block()
                        w.withUnsafeBytes { hifc_amx_pack_weights(t, $0.baseAddress! + col0 * rowBytes, rowBytes, Int32(nr), b, &weights) }
                        let activation = activations[b]
                        hifc_amx_accumulate(tileProduct(weights, activation), &weights, [activation], &acc)
                    }
                    c.withUnsafeMutableBufferPointer { hifc_amx_store(acc, Int32(mr), Int32(nr), $0.baseAddress! + row0 * n + col0, n) }
                }
            }
            assertClose(c, expected, relative: 1e-5, "type \(t) through the AMX tile layout")
            // Interleaved rows (24: a panel of 16 and one of 8) pack into the same tiles.
            let x8 = hifc_quant_interleaved_type(t)
            let file = blocks(type, count: 24 * blockCount, scales: scales, salt: 9)
            var interleaved = [UInt8](repeating: 0, count: file.count)
            hifc_quant_interleave(nil, t, file, 24, k, &interleaved)
            for (col0, nr) in [(0, 16), (16, 8)] {
                for b in 0..<blockCount {
                    var fromFile = hifc_amx_block()
                    var fromInterleaved = hifc_amx_block()
                    file.withUnsafeBytes { hifc_amx_pack_weights(t, $0.baseAddress! + col0 * rowBytes, rowBytes, Int32(nr), b, &fromFile) }
                    interleaved.withUnsafeBytes {
                        hifc_amx_pack_weights(x8, $0.baseAddress! + col0 * rowBytes, rowBytes, Int32(nr), b, &fromInterleaved)
                    }
                    let same = withUnsafeBytes(of: &fromFile) { f in withUnsafeBytes(of: &fromInterleaved) { f.elementsEqual($0) } }
                    XCTAssertTrue(same, "type \(t): rows \(col0) ..< \(col0 + nr), block \(b) packed from interleaved blocks")
                }
            }
        }
    }

    func testAMXTakesPrefillProductsOnlyWhereTheCPUAndLinuxAllowIt() {
        let ready = hifc_amx_status() & Int32(HIFC_AMX_READY.rawValue) == Int32(HIFC_AMX_READY.rawValue)
        XCTAssertEqual(hifc_isa_detected() == HIFC_ISA_AMX, ready)
        let (n, k) = (1040, 64)  // 16 rows: just over the multiply-adds the tiles need on one thread
        let t = Int32(HIFC_QUANT_Q4_1.rawValue)
        let w = blocks(HIFC_QUANT_Q4_1, count: n * k / 32, scales: [(0, 0.03), (2, -0.2)])
        defer { hifc_isa_select(hifc_isa_detected()) }
        XCTAssertEqual(hifc_isa_select(HIFC_ISA_AMX) == HIFC_ISA_AMX, ready, "AMX can be chosen only where it is ready")
        for m in [1, Int(HIFC_AMX_MIN_ROWS)] {
            let a = values(m * k, seed: m)
            var c = [Float](repeating: 0, count: m * n)
            var scratch = [UInt8](repeating: 0, count: hifc_gemm_quant_scratch(t, m, k))
            let before = hifc_amx_products()
            hifc_gemm_quant(nil, t, a, w, nil, &c, m, n, k, &scratch)
            XCTAssertEqual(hifc_amx_products() - before, hifc_gemm_quant_uses_amx(t, m, n, k, 1) != 0 ? 1 : 0, "\(m) rows")
            XCTAssertEqual(hifc_gemm_quant_uses_amx(t, m, n, k, 1) != 0, ready && m >= HIFC_AMX_MIN_ROWS && m * n * k >= HIFC_AMX_MIN_MACS_PER_THREAD)
        }
    }

    func testTheGatedMLPInOneCallEqualsItsOpsOneAfterAnotherBitForBit() throws {
        let (hidden, inter) = (512, 768)
        let pools = [CPUThreadPool(threads: 3), CPUThreadPool(threads: 1)]
        let pairs: [(hifc_quant_type, hifc_quant_type)] = [
            (HIFC_QUANT_Q4_1, HIFC_QUANT_Q4_1), (HIFC_QUANT_Q8_0, HIFC_QUANT_Q6_K), (HIFC_QUANT_Q4_K, HIFC_QUANT_Q4_0),
            (HIFC_QUANT_Q5_0, HIFC_QUANT_Q4_K), (HIFC_QUANT_Q8_0, HIFC_QUANT_Q5_K), (HIFC_QUANT_Q5_1, HIFC_QUANT_Q5_1),
        ]
        for (gateUpType, downType) in pairs {
            let (g, d) = (Int32(gateUpType.rawValue), Int32(downType.rawValue))
            let scales = { (type: hifc_quant_type) in self.formats.first { $0.0 == type }!.1 }
            let gateUp = blocks(gateUpType, count: 2 * inter * hidden / Int(hifc_quant_block_weights(g)), scales: scales(gateUpType), salt: 3)
            let down = blocks(downType, count: hidden * inter / Int(hifc_quant_block_weights(d)), scales: scales(downType), salt: 7)
            for m in [1, 3, Int(HIFC_ONE_CALL_MOST_ROWS)] {
                XCTAssertEqual(hifc_gated_mlp_quant_fits(d, m, inter), 1)
                let x = values(m * hidden, seed: m)
                _ = acrossInstructionSets {
                    for pool in pools {
                        var products = [Float](repeating: 0, count: m * 2 * inter)
                        var activated = [Float](repeating: 0, count: m * inter)
                        var expected = [Float](repeating: 0, count: m * hidden)
                        var scratch = [UInt8](
                            repeating: 0, count: max(hifc_gemm_quant_scratch(g, m, hidden), hifc_gemm_quant_scratch(d, m, inter)))
                        hifc_gemm_quant(pool.raw, g, x, gateUp, nil, &products, m, 2 * inter, hidden, &scratch)
                        hifc_silu_mul(pool.raw, products, &activated, m, inter)
                        hifc_gemm_quant(pool.raw, d, activated, down, nil, &expected, m, hidden, inter, &scratch)
                        var fused = [Float](repeating: .nan, count: m * hidden)
                        var fusedScratch = [UInt8](repeating: 0, count: hifc_gated_mlp_quant_scratch(g, d, m, inter, hidden))
                        hifc_gated_mlp_quant(pool.raw, g, gateUp, d, down, x, &fused, m, inter, hidden, &fusedScratch)
                        let isa = String(cString: hifc_isa_name(hifc_isa_active()))
                        XCTAssertEqual(
                            fused, expected, "\(gateUpType.rawValue)/\(downType.rawValue), \(m) rows, \(pool.threads) threads, \(isa)")
                    }
                }
            }
        }
        XCTAssertEqual(hifc_gated_mlp_quant_fits(Int32(HIFC_QUANT_Q6_K.rawValue), 1, 300), 0, "a Q6_K down product needs 256-wide blocks")
        XCTAssertEqual(hifc_gated_mlp_quant_fits(Int32(HIFC_QUANT_Q4_0.rawValue), Int(HIFC_ONE_CALL_MOST_ROWS) + 1, 512), 0)
    }

    func testQuantizedWeightsStayQuantizedAndMultiplyLikeTheirDequantizedCopy() throws {
        // 9 rows stay in the file's layout, 16 are multiplied in an interleaved copy.
        for n in [9, 16] { try checkQuantizedWeightUpload(rows: n) }
    }

    private func checkQuantizedWeightUpload(rows n: Int) throws {
        let (m, k) = (3, 256)
        let bytes = blocks(HIFC_QUANT_Q4_K, count: n, scales: [(0, 0.02), (2, 0.05)], salt: 5)
        let weight = try bytes.withUnsafeBytes { raw in
            try QuantizedTensor(type: .q4_K, shape: [n, k], bytes: raw.baseAddress!, owner: nil, name: "w")
        }
        let kept = CPUBackend(blas: nil)
        let decoded = CPUBackend(blas: nil, dequantizesAtLoad: true)
        try bytes.withUnsafeBytes { _ in
            let q = try kept.upload(weight)
            let f = try decoded.upload(weight)
            XCTAssertEqual(try kept.download(q), try decoded.download(f), "the blocks decode as the dequantized copy")
            let x = values(m * k, seed: 9)
            let y = try kept.download(try kept.linear(try kept.uploadFloat32(x, shape: [m, k]), weight: q, bias: nil))
            let reference = try decoded.download(try decoded.linear(try decoded.uploadFloat32(x, shape: [m, k]), weight: f, bias: nil))
            // 8-bit activations: within 1% of the largest output.
            assertClose(y, reference, relative: 0.01, "Q4_K product, \(n) rows")
            let interleaved = q.cpuQuantized!.kernelType == hifc_quant_interleaved_type(Int32(HIFC_QUANT_Q4_K.rawValue))
            XCTAssertEqual(interleaved, n % 8 == 0, "\(n) rows")
            // Embedding rows of a quantized table are its decoded rows.
            let step = try kept.prepare(
                try StepBatch.make(chunks: [(tokens: [4, 0], startPosition: 0, blockTable: [0], wantsLogits: true)], blockTokens: 4))
            let rows = try kept.download(try kept.embedding(q, step: step))
            let table = try decoded.download(f)
            XCTAssertEqual(Array(rows[0..<k]), Array(table[4 * k..<5 * k]))
        }
    }

    func testAThreadsScratchIsReusedPerSlotGrowsAndIsItsOwn() throws {
        let small = try XCTUnwrap(hifc_thread_scratch(Int32(HIFC_SCRATCH_OP), 100))
        XCTAssertEqual(Int(bitPattern: small) % 64, 0, "64-byte aligned")
        small.storeBytes(of: 0x5A, as: UInt8.self)
        XCTAssertEqual(hifc_thread_scratch(Int32(HIFC_SCRATCH_OP), 64), small, "a smaller request reuses the buffer")
        let other = try XCTUnwrap(hifc_thread_scratch(Int32(HIFC_SCRATCH_ROTARY), 100))
        XCTAssertNotEqual(other, small, "each slot has its own buffer")
        // A larger request may move the buffer; all of it is writable.
        let grown = try XCTUnwrap(hifc_thread_scratch(Int32(HIFC_SCRATCH_OP), 1 << 20))
        memset(grown, 1, 1 << 20)
        XCTAssertEqual(Int(bitPattern: grown) % 64, 0)
        XCTAssertNil(hifc_thread_scratch(Int32(HIFC_SCRATCH_SLOTS), 8), "no such slot")
        // Another thread gets its own buffer (the semaphore orders its write before the read).
        final class Address: @unchecked Sendable { var value = 0 }
        let seen = Address()
        let done = DispatchSemaphore(value: 0)
        Thread {
            seen.value = Int(bitPattern: hifc_thread_scratch(Int32(HIFC_SCRATCH_OP), 100))
            done.signal()
        }.start()
        done.wait()
        XCTAssertNotEqual(seen.value, 0)
        XCTAssertNotEqual(seen.value, Int(bitPattern: grown))
    }

    func testAThreadsScratchIsNullForASizeNoAllocationCanHaveAndKeepsItsBuffer() throws {
        let slot = Int32(HIFC_SCRATCH_OP)
        let buffer = try XCTUnwrap(hifc_thread_scratch(slot, 4096))
        XCTAssertNil(hifc_thread_scratch(slot, Int.max), "half again would wrap around")
        XCTAssertNil(hifc_thread_scratch(slot, 1 << 60))
        XCTAssertEqual(hifc_thread_scratch(slot, 4096), buffer)
    }

    func testThreadPoolRunsEveryChunkOnceAndRunsNestedCallsInline() {
        let pool = CPUThreadPool(threads: 3)
        XCTAssertEqual(pool.threads, 3)
        var hits = [Int](repeating: 0, count: 1000)
        hits.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            pool.parallelRanges(1000) { range in
                for i in range { base[i] += 1 }
                // A nested call finds the pool busy and runs on this thread (else this would race).
                var covered = 0
                pool.parallelRanges(2) { inner in covered += inner.count }
                XCTAssertEqual(covered, 2)
            }
        }
        XCTAssertEqual(hits, [Int](repeating: 1, count: 1000))
        XCTAssertGreaterThanOrEqual(CPUThreadPool.physicalCores, 1)
        XCTAssertLessThanOrEqual(CPUThreadPool.physicalCores, ProcessInfo.processInfo.activeProcessorCount)
    }

    func testEveryChunkRunsOnceWhenThePoolHasMoreThreadsThanCores() {
        // With more threads than cores, workers are often descheduled or asleep when a job
        // starts, and jobs end without them; a late worker must take chunks only of the job it
        // finds, never of one that is over. Some pauses let the workers fall asleep.
        let threads = 2 * ProcessInfo.processInfo.activeProcessorCount + 3
        let pool = CPUThreadPool(threads: threads)
        let most = 300
        let hits = UnsafeMutablePointer<Int32>.allocate(capacity: most)
        let runners = UnsafeMutablePointer<Int32>.allocate(capacity: most)
        defer {
            hits.deallocate()
            runners.deallocate()
        }
        var job = (hits: hits, runners: runners)
        for round in 0..<3000 {
            let chunks = 1 + (round * 7919) % most
            hits.initialize(repeating: 0, count: chunks)
            runners.initialize(repeating: -1, count: chunks)
            hifc_parallel(
                pool.raw, chunks,
                { context, chunk, thread in
                    let job = context!.assumingMemoryBound(to: (hits: UnsafeMutablePointer<Int32>, runners: UnsafeMutablePointer<Int32>).self)
                        .pointee
                    job.hits[chunk] += 1
                    job.runners[chunk] = thread
                }, &job)
            let counts = Array(UnsafeBufferPointer(start: hits, count: chunks))
            let ran = Array(UnsafeBufferPointer(start: runners, count: chunks))
            guard counts.allSatisfy({ $0 == 1 }), ran.allSatisfy({ $0 >= 0 && $0 < threads }) else {
                XCTFail("round \(round), \(chunks) chunks: runs \(counts), threads \(ran)")
                return
            }
            if round % 500 == 0 { usleep(2000) }
        }
    }

    func testAJobOfMoreChunksThanOneJobWordHoldsRunsThemAll() {
        let pool = CPUThreadPool(threads: 3)
        let count = (1 << 22) + 5000
        let hits = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
        defer { hits.deallocate() }
        hits.initialize(repeating: 0, count: count)
        hifc_parallel(pool.raw, count, { context, chunk, _ in context!.assumingMemoryBound(to: UInt8.self)[chunk] += 1 }, hits)
        XCTAssertTrue(UnsafeBufferPointer(start: hits, count: count).allSatisfy { $0 == 1 })
    }

    func testAProfileCountsEachOpsCallsAndNamesTheKernels() throws {
        let pool = CPUThreadPool(threads: 2)
        let backend = CPUBackend(blas: nil, pool: pool)
        let x = try backend.uploadFloat32((0..<4096).map { Float($0 % 7) - 3 }, shape: [4, 1024])
        let weight = try backend.uploadFloat32([Float](repeating: 1, count: 1024), shape: [1024])
        pool.parallelRanges(1) { _ in }  // before the profile: not counted
        pool.startProfile()
        for _ in 0..<3 { _ = try backend.rmsNorm(x, weight: weight, epsilon: 1e-5) }
        pool.parallelRanges(64) { _ in }
        let profile = pool.stopProfile()
        pool.parallelRanges(64) { _ in }  // after: not counted

        let norm = try XCTUnwrap(profile.first { $0.op == "rms norm" })
        XCTAssertEqual(norm.calls, 3)
        XCTAssertGreaterThan(norm.seconds, 0)
        let other = try XCTUnwrap(profile.first { $0.op == "other" })
        XCTAssertEqual(other.calls, 1)
        XCTAssertEqual(other.pooledCalls, 1)
        XCTAssertEqual(other.chunks, 8)  // 64 ranges, at most 4 chunks a thread
        XCTAssertEqual(profile.count, 2)
    }

    func testAProfileCountsTheCallersSerialTimeBeforeEachOp() throws {
        let pool = CPUThreadPool(threads: 2)
        let backend = CPUBackend(blas: nil, pool: pool)
        let x = try backend.uploadFloat32((0..<1024).map { Float($0 % 5) - 2 }, shape: [1, 1024])
        let weight = try backend.uploadFloat32([Float](repeating: 1, count: 1024), shape: [1024])
        pool.startProfile()
        _ = try backend.rmsNorm(x, weight: weight, epsilon: 1e-5)  // the first call: nothing before it counts
        Thread.sleep(forTimeInterval: 0.02)
        pool.parallelRanges(64) { _ in }
        let profile = pool.stopProfile()

        let norm = try XCTUnwrap(profile.first { $0.op == "rms norm" })
        XCTAssertEqual(norm.secondsBefore, 0)
        let other = try XCTUnwrap(profile.first { $0.op == "other" })
        XCTAssertGreaterThanOrEqual(other.secondsBefore, 0.02)
        XCTAssertLessThan(other.secondsBefore, 5)
    }
}
