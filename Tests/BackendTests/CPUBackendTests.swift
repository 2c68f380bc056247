import Backend
import Foundation
import HiFCCore
import XCTest

/// The CPU backend's ops against plain loops, its GEMMs against each other, and the KV pool's
/// alignment and copies.
final class CPUBackendTests: XCTestCase {
    private func tensor(_ backend: CPUBackend, _ values: [Float], _ shape: [Int]) throws -> DeviceTensor {
        try backend.uploadFloat32(values, shape: shape)
    }

    private func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { i in Float(((i * 7919 + seed * 104_729) % 2001) - 1000) / 1000 }
    }

    func testSwiftGEMMAndBLASAgreeWithPlainLoopsOnOddShapes() throws {
        let backends = [CPUBackend(blas: nil)] + (BLASLibrary.load().map { [CPUBackend(blas: $0)] } ?? [])
        // (20, 300, 40): BLAS's share split into blocks of columns over the pool.
        for (m, n, k) in [(1, 1, 1), (1, 37, 19), (5, 7, 3), (4, 8, 16), (9, 13, 70), (33, 65, 129), (20, 300, 40)] {
            let a = values(m * k, seed: 1)
            let b = values(n * k, seed: 2)
            let bias = values(n, seed: 3)
            var expected = [Float](repeating: 0, count: m * n)
            for i in 0..<m {
                for j in 0..<n {
                    var s: Float = 0
                    for p in 0..<k { s += a[i * k + p] * b[j * k + p] }
                    expected[i * n + j] = s + bias[j]
                }
            }
            for backend in backends {
                let y = try backend.linear(
                    try tensor(backend, a, [m, k]), weight: try tensor(backend, b, [n, k]),
                    bias: try tensor(backend, bias, [n]))
                XCTAssertEqual(y.shape, [m, n])
                let got = try backend.download(y)
                for (g, e) in zip(got, expected) {
                    XCTAssertEqual(g, e, accuracy: 1e-4 * max(1, abs(e)), "\(backend.name) \(m)x\(n)x\(k)")
                }
            }
        }
    }

    func testLinearRejectsMismatchedShapes() throws {
        let backend = CPUBackend(blas: nil)
        XCTAssertThrowsError(
            try backend.linear(
                try tensor(backend, [1, 2, 3], [1, 3]),
                weight: try tensor(backend, [1, 2, 3, 4], [2, 2]), bias: nil))
    }

    func testAttentionInputsRotateQAndKAndWriteKAndVAsTheSeparateOpsDo() throws {
        let backend = CPUBackend(blas: nil)
        let heads = 4
        let kvHeads = 2
        let d = 4
        let tokens = 5
        let layout = KVBlockLayout(layers: 2, kvHeads: kvHeads, headDim: d, blockTokens: 4, dtype: .float32)
        let step = try backend.prepare(
            try StepBatch.make(
                chunks: [(tokens: Array(repeating: 0, count: tokens), startPosition: 3, blockTable: [2, 0], wantsLogits: true)],
                blockTokens: 4))
        let width = (heads + 2 * kvHeads) * d
        let qkv = try tensor(backend, values(tokens * width, seed: 7), [tokens, width])
        let frequencies = try tensor(backend, [1, 0.01], [2])
        let fused = try backend.makeKVCachePool(layout: layout, blocks: 3)
        let q = try backend.download(
            try backend.attentionInputs(
                qkv: qkv, heads: heads, headDim: d, inverseFrequencies: frequencies, layer: 1, pool: fused, step: step))

        let separate = try backend.makeKVCachePool(layout: layout, blocks: 3)
        let parts = try backend.splitColumns(qkv, widths: [heads * d, kvHeads * d, kvHeads * d])
        let rotated = try backend.rotary(q: parts[0], k: parts[1], headDim: d, inverseFrequencies: frequencies, step: step)
        try backend.writeKV(k: rotated.k, v: parts[2], layer: 1, pool: separate, step: step)
        XCTAssertEqual(q, try backend.download(rotated.q))
        for block in 0..<3 {
            var a = [Float](repeating: 0, count: layout.blockBytes / 4)
            var b = a
            try a.withUnsafeMutableBytes { try fused.copyBlock(block, to: $0) }
            try b.withUnsafeMutableBytes { try separate.copyBlock(block, to: $0) }
            XCTAssertEqual(a, b, "block \(block)")
        }
        XCTAssertThrowsError(
            try backend.attentionInputs(
                qkv: try tensor(backend, values(tokens * 8, seed: 1), [tokens, 8]), heads: heads, headDim: d,
                inverseFrequencies: frequencies, layer: 1, pool: fused, step: step))
    }

    func testTheQKVProductAndRotationInOneCallWriteWhatTheTwoOpsWrite() throws {
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 3))
        let (heads, kvHeads, d, hidden) = (4, 2, 8, 64)
        let width = (heads + 2 * kvHeads) * d
        // Q8_0 blocks: an f16 scale, then 32 signed bytes.
        var bytes: [UInt8] = []
        for block in 0..<(width * hidden / 32) {
            let scale = Float16(0.01 + Float(block % 5) * 0.003).bitPattern
            bytes += [UInt8(scale & 0xFF), UInt8(scale >> 8)] + (0..<32).map { UInt8(truncatingIfNeeded: ($0 + block) * 37 + 11) }
        }
        // The tensor borrows the blocks' memory, which the test keeps (`owner`).
        let storage = Data(bytes) as NSData
        let weight = try backend.upload(
            try QuantizedTensor(type: .q8_0, shape: [width, hidden], bytes: storage.bytes, owner: storage, name: "qkv"))
        let bias = try tensor(backend, values(width, seed: 4), [width])
        let frequencies = try tensor(backend, [1, 0.1, 0.01, 0.001], [4])
        for (tokens, dtype) in [(3, KVDType.float32), (1, .fp8e4m3), (9, .float32)] {
            let layout = KVBlockLayout(layers: 2, kvHeads: kvHeads, headDim: d, blockTokens: 4, dtype: dtype)
            let step = try backend.prepare(
                try StepBatch.make(
                    chunks: [(tokens: Array(repeating: 0, count: tokens), startPosition: 5, blockTable: [2, 0, 1, 3], wantsLogits: true)],
                    blockTokens: 4))
            let x = try tensor(backend, values(tokens * hidden, seed: tokens), [tokens, hidden])
            let oneCall = try backend.makeKVCachePool(layout: layout, blocks: 4)
            let q = try backend.download(
                try backend.projectAttentionInputs(
                    x, qkv: weight, bias: bias, heads: heads, headDim: d, inverseFrequencies: frequencies, layer: 1, pool: oneCall,
                    step: step))
            let twoOps = try backend.makeKVCachePool(layout: layout, blocks: 4)
            let expected = try backend.download(
                try backend.attentionInputs(
                    qkv: try backend.linear(x, weight: weight, bias: bias), heads: heads, headDim: d, inverseFrequencies: frequencies,
                    layer: 1, pool: twoOps, step: step))
            XCTAssertEqual(q, expected, "\(tokens) tokens, \(dtype)")
            for block in 0..<4 {
                var a = [UInt8](repeating: 0, count: layout.blockBytes)
                var b = a
                try a.withUnsafeMutableBytes { try oneCall.copyBlock(block, to: $0) }
                try b.withUnsafeMutableBytes { try twoOps.copyBlock(block, to: $0) }
                XCTAssertEqual(a, b, "block \(block), \(tokens) tokens, \(dtype)")
            }
        }
    }

    func testAStepThatDoesNotFitThePoolIsRejectedByEveryLayersOps() throws {
        let backend = CPUBackend(blas: nil)
        let (heads, kvHeads, d) = (2, 1, 4)
        let layout = KVBlockLayout(layers: 2, kvHeads: kvHeads, headDim: d, blockTokens: 4, dtype: .float32)
        let small = try backend.makeKVCachePool(layout: layout, blocks: 2)
        let large = try backend.makeKVCachePool(layout: layout, blocks: 8)
        // Block 5: inside the large pool, outside the small one.
        let step = try backend.prepare(
            try StepBatch.make(chunks: [(tokens: [0, 0], startPosition: 0, blockTable: [5], wantsLogits: true)], blockTokens: 4))
        let width = (heads + 2 * kvHeads) * d
        let qkv = try tensor(backend, values(2 * width, seed: 2), [2, width])
        let frequencies = try tensor(backend, [1, 0.1], [2])
        let q = try backend.attentionInputs(
            qkv: qkv, heads: heads, headDim: d, inverseFrequencies: frequencies, layer: 0, pool: large, step: step)
        for layer in 0..<2 {
            XCTAssertNoThrow(try backend.pagedAttention(q: q, heads: heads, layer: layer, scale: 0.5, pool: large, step: step))
            // Checked once per pool and step, but a step that does not fit fails every time.
            XCTAssertThrowsError(try backend.pagedAttention(q: q, heads: heads, layer: layer, scale: 0.5, pool: small, step: step))
            XCTAssertThrowsError(
                try backend.attentionInputs(
                    qkv: qkv, heads: heads, headDim: d, inverseFrequencies: frequencies, layer: layer, pool: small, step: step))
        }
        // A step laid out in blocks of another size is not read from this pool.
        let otherBlocks = try backend.prepare(
            try StepBatch.make(chunks: [(tokens: [0, 0], startPosition: 0, blockTable: [1], wantsLogits: true)], blockTokens: 2))
        XCTAssertThrowsError(try backend.pagedAttention(q: q, heads: heads, layer: 0, scale: 0.5, pool: large, step: otherBlocks)) {
            XCTAssertTrue("\($0)".contains("2-token blocks"), "\($0)")
        }
    }

    func testFusedGateUpAndResidualNormMatchPlainLoops() throws {
        let backend = CPUBackend(blas: nil)
        let rows = 3
        // silu(gate) * up over the two halves of one fused gate|up row.
        let gateUp = values(rows * 6, seed: 5)
        let activated = try backend.download(try backend.siluAndMultiply(try tensor(backend, gateUp, [rows, 6])))
        for r in 0..<rows {
            for c in 0..<3 {
                let g = gateUp[r * 6 + c]
                let u = gateUp[r * 6 + 3 + c]
                XCTAssertEqual(activated[r * 3 + c], g / (1 + exp(-g)) * u, accuracy: 1e-6)
            }
        }
        XCTAssertThrowsError(try backend.siluAndMultiply(try tensor(backend, [1, 2, 3], [1, 3])))

        let x = values(rows * 4, seed: 8)
        let y = values(rows * 4, seed: 9)
        let w = values(4, seed: 10)
        let (sum, normed) = try backend.addAndNormalize(
            try tensor(backend, x, [rows, 4]), try tensor(backend, y, [rows, 4]),
            weight: try tensor(backend, w, [4]), epsilon: 1e-5)
        let expectedSum = zip(x, y).map { $0 + $1 }
        XCTAssertEqual(try backend.download(sum), expectedSum)
        let got = try backend.download(normed)
        for r in 0..<rows {
            let row = expectedSum[(r * 4)..<(r * 4 + 4)]
            let inverse = 1 / (row.reduce(0) { $0 + $1 * $1 } / 4 + 1e-5).squareRoot()
            for c in 0..<4 { XCTAssertEqual(got[r * 4 + c], expectedSum[r * 4 + c] * inverse * w[c], accuracy: 1e-5) }
        }
    }

    func testTheProductAddAndNormAreTheOpsTheyStandFor() throws {
        let backend = CPUBackend(blas: nil)
        let (rows, k, n, inter) = (3, 8, 4, 6)
        let x = try tensor(backend, values(rows * k, seed: 12), [rows, k])
        let weight = try tensor(backend, values(n * k, seed: 13), [n, k])
        let residual = try tensor(backend, values(rows * n, seed: 14), [rows, n])
        let norm = try tensor(backend, values(n, seed: 15), [n])
        let fused = try backend.linearAddAndNormalize(x, weight: weight, residual: residual, norm: norm, epsilon: 1e-5)
        let apart = try backend.addAndNormalize(residual, try backend.linear(x, weight: weight, bias: nil), weight: norm, epsilon: 1e-5)
        XCTAssertEqual(try backend.download(fused.sum), try backend.download(apart.sum))
        XCTAssertEqual(try backend.download(fused.normed), try backend.download(apart.normed))

        let hidden = try tensor(backend, values(rows * n, seed: 16), [rows, n])
        let gateUp = try tensor(backend, values(2 * inter * n, seed: 17), [2 * inter, n])
        let down = try tensor(backend, values(n * inter, seed: 18), [n, inter])
        let mlp = try backend.gatedMLPAddAndNormalize(hidden, gateUp: gateUp, down: down, residual: residual, norm: norm, epsilon: 1e-5)
        let mlpApart = try backend.addAndNormalize(
            residual, try backend.gatedMLP(hidden, gateUp: gateUp, down: down), weight: norm, epsilon: 1e-5)
        XCTAssertEqual(try backend.download(mlp.sum), try backend.download(mlpApart.sum))
        XCTAssertEqual(try backend.download(mlp.normed), try backend.download(mlpApart.normed))
    }

    func testDownloadRowsGivesEachRowItsOwnArray() throws {
        let backend = CPUBackend(blas: nil)
        let x = values(12, seed: 11)
        XCTAssertEqual(
            try backend.downloadRows(try tensor(backend, x, [3, 4])),
            [Array(x[0..<4]), Array(x[4..<8]), Array(x[8..<12])])
        XCTAssertThrowsError(try backend.downloadRows(try tensor(backend, x, [12])))
    }

    func testArgmaxRowsTakesTheFirstOfTiedMaxima() throws {
        let backend = CPUBackend(blas: nil)
        let x: [Float] = [0.5, 2, 2, -1, /**/ 3, 1, 0, 3, /**/ -4, -3, -2, -1]
        XCTAssertEqual(try backend.argmaxRows(try tensor(backend, x, [3, 4])), [1, 0, 3])
        XCTAssertThrowsError(try backend.argmaxRows(try tensor(backend, x, [12])))
    }

    func testArgmaxOfAVocabularyWideRowSplitIntoPiecesFindsTheFirstMaximum() throws {
        // 50,000 logits a row on 4 threads: four pieces, the maxima in different ones.
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 4))
        let width = 50_000
        var x = (0..<(3 * width)).map { Float(($0 * 7919) % 1000) / 1000 }
        x[10] = 5  // row 0: in the first piece
        x[width + 49_999] = 5  // row 1: the last logit
        x[2 * width + 30_000] = 5  // row 2: tied across pieces, the first wins
        x[2 * width + 45_000] = 5
        XCTAssertEqual(try backend.argmaxRows(try tensor(backend, x, [3, width])), [10, 49_999, 30_000])
    }

    func testArgmaxOfMoreRowsTimesPiecesThanTheStackHoldsFindsEachRowsMaximum() throws {
        // 200 rows of 8,192 logits on 4 threads: 4 pieces a row, 800 in all, past the 512 whose
        // maxima stay on the stack, so the pieces' maxima are allocated.
        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 4))
        let (rows, width) = (200, 8192)
        var x = (0..<(rows * width)).map { Float(($0 * 7919) % 1000) / 1000 }
        let expected = (0..<rows).map { ($0 * 4099) % width }
        for (r, at) in expected.enumerated() { x[r * width + at] = 2 }
        XCTAssertEqual(try backend.argmaxRows(try tensor(backend, x, [rows, width])), expected)
    }

    func testStackedWeightsKeepEveryRowInOrder() throws {
        let a: [UInt16] = [1, 2, 3, 4]
        let b: [UInt16] = [5, 6]
        let stacked = try a.withUnsafeBytes { pa in
            try b.withUnsafeBytes { pb in
                try HostTensor.stackingRows(
                    [
                        HostTensor(bytes: pa.baseAddress!, shape: [2, 2], dtype: .bfloat16, owner: nil, name: "a"),
                        HostTensor(bytes: pb.baseAddress!, shape: [1, 2], dtype: .bfloat16, owner: nil, name: "b"),
                    ], name: "ab")
            }
        }
        XCTAssertEqual(stacked.shape, [3, 2])
        XCTAssertEqual((0..<6).map { stacked.bytes.load(fromByteOffset: $0 * 2, as: UInt16.self) }, [1, 2, 3, 4, 5, 6])
        XCTAssertThrowsError(
            try a.withUnsafeBytes { pa in
                try HostTensor.stackingRows(
                    [
                        HostTensor(bytes: pa.baseAddress!, shape: [2, 2], dtype: .bfloat16, owner: nil, name: "a"),
                        HostTensor(bytes: pa.baseAddress!, shape: [1, 4], dtype: .bfloat16, owner: nil, name: "wide"),
                    ], name: "bad")
            }
        ) { XCTAssertTrue("\($0)".contains("wide"), "\($0)") }
    }

    func testKVPoolBlocksAre4KiBAlignedAndCopiesRoundTrip() throws {
        let layout = KVBlockLayout(layers: 3, kvHeads: 2, headDim: 8, blockTokens: 5, dtype: .float32)
        let pool = try CPUBackend(blas: nil).makeKVCachePool(layout: layout, blocks: 4)
        XCTAssertEqual(pool.blockStride % 4096, 0)
        XCTAssertGreaterThanOrEqual(pool.blockStride, layout.blockBytes)
        for block in 0..<4 {
            guard case .host(let pointer) = try pool.address(ofBlock: block) else { return XCTFail("not a host pool") }
            XCTAssertEqual(Int(bitPattern: pointer) % 4096, 0)
        }
        let source = (0..<(layout.blockBytes / 4)).map { Float($0) }
        try source.withUnsafeBytes { try pool.copyBlock(2, from: $0) }
        var back = [Float](repeating: 0, count: source.count)
        try back.withUnsafeMutableBytes { try pool.copyBlock(2, to: $0) }
        XCTAssertEqual(back, source)
        try back.withUnsafeMutableBytes { try pool.copyBlock(1, to: $0) }
        XCTAssertEqual(Set(back), [0], "a neighbouring block was touched")
        XCTAssertThrowsError(try back.withUnsafeMutableBytes { try pool.copyBlock(4, to: $0) })
        XCTAssertThrowsError(try Array(source.dropLast()).withUnsafeBytes { try pool.copyBlock(0, from: $0) })
    }

    func testBatchedCopiesThroughStagingBuffersRoundTripAndRefuseMismatchedCounts() async throws {
        let layout = KVBlockLayout(layers: 2, kvHeads: 1, headDim: 4, blockTokens: 3, dtype: .float32)
        let pool = try CPUBackend(blas: nil).makeKVCachePool(layout: layout, blocks: 4)
        let staging = pool.stagingBuffers(count: 2)
        defer { staging.release() }
        XCTAssertEqual(staging.buffers.count, 2)
        for buffer in staging.buffers {
            XCTAssertEqual(buffer.count, pool.blockStride)
            XCTAssertEqual(Int(bitPattern: buffer.baseAddress!) % 4096, 0, "O_DIRECT needs 4 KiB alignment")
        }
        let bytes = layout.blockBytes
        let halves = staging.buffers.map { UnsafeMutableRawBufferPointer(rebasing: $0[..<bytes]) }
        for (index, half) in halves.enumerated() {
            half.withMemoryRebound(to: Float.self) { floats in
                for i in floats.indices { floats[i] = Float(index * 1000 + i) }
            }
        }
        try await pool.copyBlocks([3, 1], from: halves.map { UnsafeRawBufferPointer($0) })
        let back = pool.stagingBuffers(count: 2)
        defer { back.release() }
        let backHalves = back.buffers.map { UnsafeMutableRawBufferPointer(rebasing: $0[..<bytes]) }
        try await pool.copyBlocks([3, 1], to: backHalves)
        for (sent, received) in zip(halves, backHalves) { XCTAssertEqual(Array(sent), Array(received)) }
        do {
            try await pool.copyBlocks([0, 1], to: Array(backHalves.prefix(1)))
            XCTFail("two blocks copied into one buffer")
        } catch {
            XCTAssertTrue("\(error)".contains("1 host buffers for 2 blocks"), "\(error)")
        }
    }

    func testPagedAttentionMatchesDenseCausalAttentionWithGroupedHeads() throws {
        let backend = CPUBackend(blas: nil)
        let heads = 4
        let kvHeads = 2
        let d = 4
        let blockTokens = 3
        let tokens = 7
        let layout = KVBlockLayout(layers: 2, kvHeads: kvHeads, headDim: d, blockTokens: blockTokens, dtype: .float32)
        let pool = try backend.makeKVCachePool(layout: layout, blocks: 6)
        // Blocks out of order, to check that the block table is followed.
        let table: [Int32] = [4, 1, 5]
        let step = try backend.prepare(
            try StepBatch.make(
                chunks: [(tokens: Array(repeating: 0, count: tokens), startPosition: 0, blockTable: table, wantsLogits: true)],
                blockTokens: blockTokens))
        let q = values(tokens * heads * d, seed: 4)
        let k = values(tokens * kvHeads * d, seed: 5)
        let v = values(tokens * kvHeads * d, seed: 6)
        try backend.writeKV(
            k: try tensor(backend, k, [tokens, kvHeads * d]), v: try tensor(backend, v, [tokens, kvHeads * d]),
            layer: 1, pool: pool, step: step)
        let scale: Float = 0.5
        let out = try backend.download(
            try backend.pagedAttention(
                q: try tensor(backend, q, [tokens, heads * d]), heads: heads, layer: 1, scale: scale, pool: pool, step: step))
        for t in 0..<tokens {
            for h in 0..<heads {
                let g = h / (heads / kvHeads)
                var scores = (0...t).map { j in
                    (0..<d).reduce(Float(0)) { $0 + q[(t * heads + h) * d + $1] * k[(j * kvHeads + g) * d + $1] } * scale
                }
                let m = scores.max()!
                scores = scores.map { exp($0 - m) }
                let total = scores.reduce(0, +)
                for e in 0..<d {
                    let expected = (0...t).reduce(Float(0)) { $0 + scores[$1] / total * v[($1 * kvHeads + g) * d + e] }
                    XCTAssertEqual(out[(t * heads + h) * d + e], expected, accuracy: 1e-5)
                }
            }
        }
    }

    func testStepValidationRejectsBlocksOutsideThePool() throws {
        let batch = try StepBatch.make(
            chunks: [(tokens: [1, 2], startPosition: 0, blockTable: [9], wantsLogits: true)], blockTokens: 4)
        XCTAssertThrowsError(try batch.validate(poolBlocks: 4))
        XCTAssertThrowsError(
            try StepBatch.make(
                chunks: [(tokens: [1, 2, 3], startPosition: 2, blockTable: [0], wantsLogits: true)], blockTokens: 4))
    }

    func testBLASCanBeTurnedOffByEnvironment() {
        XCTAssertNil(BLASLibrary.load(environment: ["HIFC_BLAS": "off"]))
        XCTAssertNil(BLASLibrary.load(environment: ["HIFC_BLAS_LIBRARY": "/nonexistent/libnothing.so"]))
    }
}
