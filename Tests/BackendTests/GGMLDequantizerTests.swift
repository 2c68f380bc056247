import CPUKernels
import Foundation
import XCTest

@testable import Backend

/// The GGML block decoders against gguf-py's (`gguf.quants.dequantize`) on random blocks.
final class GGMLDequantizerTests: XCTestCase {
    /// The types HiFC decodes, by the names gguf-py gives them.
    static let types: [(GGMLType, String)] = [
        (.f32, "F32"), (.f16, "F16"), (.bf16, "BF16"), (.q4_0, "Q4_0"), (.q4_1, "Q4_1"), (.q5_0, "Q5_0"),
        (.q5_1, "Q5_1"), (.q8_0, "Q8_0"), (.q2_K, "Q2_K"), (.q3_K, "Q3_K"), (.q4_K, "Q4_K"), (.q5_K, "Q5_K"),
        (.q6_K, "Q6_K"),
    ]

    /// Runs the Python reference into a new directory and returns it.
    private func reference(seed: Int) throws -> String {
        let directory = NSTemporaryDirectory() + "hifc-dequant-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Reference/dequantize_reference.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, directory, String(seed)]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if message.contains("No module named 'gguf'") { throw XCTSkip("the gguf Python package is not installed (scripts/test.sh installs it)") }
        XCTAssertEqual(process.terminationStatus, 0, "the gguf-py reference failed: \(message)")
        return directory
    }

    func testEveryTypeDecodesLikeGGUFPy() throws {
        let directory = try reference(seed: 11)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (type, name) in Self.types {
            let blocks = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name).blocks"))
            let expected = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name).f32"))
            let count = expected.count / 4
            XCTAssertEqual(type.byteCount(elements: count), blocks.count, "\(name): block size")
            var decoded = [Float](repeating: .nan, count: count)
            try blocks.withUnsafeBytes { raw in
                try GGMLDequantizer.dequantize(type, elements: count, from: raw.baseAddress!, into: &decoded, tensor: name)
            }
            let reference = expected.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let mismatches = zip(decoded, reference).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }
            XCTAssertTrue(
                mismatches.isEmpty,
                "\(name): \(mismatches.count) of \(count) values differ from gguf-py, first at \(mismatches.first.map { "\($0.offset): \($0.element.0) vs \($0.element.1)" } ?? "")"
            )
        }
    }

    func testParallelDecodingEqualsBlockByBlock() throws {
        // 2 MiB of Q4_K: enough blocks to spread over the cores.
        let type = GGMLType.q4_K
        let blocks = 4096
        var bytes = [UInt8](repeating: 0, count: blocks * type.blockBytes)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in bytes.indices {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            bytes[i] = UInt8(truncatingIfNeeded: state >> 56)
        }
        for b in 0..<blocks {  // finite scales
            bytes[b * type.blockBytes + 1] &= 0x3B
            bytes[b * type.blockBytes + 3] &= 0x3B
        }
        let count = blocks * type.blockElements
        var whole = [Float](repeating: 0, count: count)
        try GGMLDequantizer.dequantize(type, elements: count, from: bytes, into: &whole)
        for b in stride(from: 0, to: blocks, by: 397) {
            var one = [Float](repeating: 0, count: type.blockElements)
            try bytes.withUnsafeBytes { raw in
                try GGMLDequantizer.dequantize(type, elements: type.blockElements, from: raw.baseAddress! + b * type.blockBytes, into: &one)
            }
            XCTAssertEqual(Array(whole[(b * type.blockElements)..<((b + 1) * type.blockElements)]), one, "block \(b)")
        }
    }

    func testUndecodableTypeIsAnErrorNamingTensorAndType() {
        let bytes = [UInt8](repeating: 0, count: 64)
        var out = [Float](repeating: 0, count: 256)
        XCTAssertThrowsError(try GGMLDequantizer.dequantize(.iq2_xxs, elements: 256, from: bytes, into: &out, tensor: "blk.3.ffn_up.weight")) {
            let message = "\($0)"
            XCTAssertTrue(message.contains("blk.3.ffn_up.weight") && message.contains("IQ2_XXS"), message)
        }
        XCTAssertThrowsError(try GGMLDequantizer.dequantize(.q8_0, elements: 33, from: bytes, into: &out, tensor: "t")) {
            XCTAssertTrue("\($0)".contains("33 elements"), "\($0)")
        }
    }

    func testQuantizedRowsStackAndReorderWithoutDecoding() throws {
        let type = GGMLType.q8_0
        // Row r of `a` (3 rows of 64) holds blocks with scale 1 and quants r*10 + column % 32.
        func tensor(rows: Int, base: Int, name: String) throws -> QuantizedTensor {
            var bytes: [UInt8] = []
            for r in 0..<rows {
                for _ in 0..<2 {
                    bytes += [0x00, 0x3C]  // f16 1.0
                    bytes += (0..<32).map { UInt8((base + r) * 2 + $0 % 3) }
                }
            }
            let storage = Storage(bytes)
            return try QuantizedTensor(type: type, shape: [rows, 64], bytes: storage.pointer, owner: storage, name: name)
        }
        let a = try tensor(rows: 3, base: 0, name: "a")
        let b = try tensor(rows: 2, base: 10, name: "b")
        let stacked = try XCTUnwrap(QuantizedTensor.stackingRows([a, b], name: "ab"))
        XCTAssertEqual(stacked.shape, [5, 64])
        let permuted = try stacked.permutingRows([4, 0, 3, 1, 2])
        let rows = try floats(permuted.dequantized())
        let original = try floats(stacked.dequantized())
        for (i, source) in [4, 0, 3, 1, 2].enumerated() {
            XCTAssertEqual(Array(rows[(i * 64)..<((i + 1) * 64)]), Array(original[(source * 64)..<((source + 1) * 64)]))
        }
        XCTAssertNil(QuantizedTensor.stackingRows([a, try tensor(rows: 1, base: 0, name: "c").reshaped(type: .q4_0)], name: "x"))
    }

    func testQ5_0KeepsItsBlocksOnTheCPUAndStacksWithQ8_0RowsAsQ8_0OfTheSameValues() throws {
        // Random Q5_0 blocks (scales of either sign, every fifth bit and nibble) in 3 rows of 64.
        let bytes: [UInt8] = (0..<6).flatMap { _ in
            Array(Float16(Float.random(in: -2...2)).bitPattern.littleEndianBytes) + (0..<20).map { _ in UInt8.random(in: 0...255) }
        }
        let storage = Storage(bytes)
        let q5 = try QuantizedTensor(type: .q5_0, shape: [3, 64], bytes: storage.pointer, owner: storage, name: "w")
        let q8 = try q5.widenedQ5_0ToQ8_0()
        XCTAssertEqual(q8.type, .q8_0)
        XCTAssertEqual(try floats(q8.dequantized()), try floats(q5.dequantized()), "the same values, bit for bit")
        XCTAssertThrowsError(try q8.widenedQ5_0ToQ8_0(), "only Q5_0 widens")
        // q|k|v of a Q4_K_M file: Q5_0 q and k, a Q8_0 v.
        let mixed = try XCTUnwrap(QuantizedTensor.stackingRows([q5, q8, q5], name: "qkv"), "stacked still quantized")
        XCTAssertEqual(mixed.type, .q8_0)
        XCTAssertEqual(mixed.shape, [9, 64])
        let parts = try floats(q5.dequantized())
        XCTAssertEqual(try floats(mixed.dequantized()), parts + parts + parts)
        XCTAssertEqual(try XCTUnwrap(QuantizedTensor.stackingRows([q5, q5], name: "qk")).type, .q5_0, "Q5_0 alone stays Q5_0")

        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2))
        let x = (0..<2 * 64).map { _ in Float.random(in: -1...1) }
        let input = try backend.uploadFloat32(x, shape: [2, 64])
        let kept = try backend.linear(input, weight: try backend.upload(q5), bias: nil)
        let decoded = try backend.linear(input, weight: try backend.upload(try q5.dequantized()), bias: nil)
        XCTAssertEqual(try backend.upload(q5).cpuQuantized?.kernelType, Int32(HIFC_QUANT_Q5_0.rawValue), "kept as Q5_0 blocks")
        let (a, b) = (try backend.download(kept), try backend.download(decoded))
        // Each activation is rounded to a step of its 32-block's max / 127, so an output can move by
        // at most half a step times the weights' magnitudes over each block (random inputs: a
        // fixed share of the largest output is not a bound when outputs cancel).
        let w = try floats(q5.dequantized())
        let top = b.map(abs).max()!
        for row in 0..<2 {
            for column in 0..<3 {
                var bound: Float = 0
                for block in 0..<2 {
                    let range = (block * 32)..<((block + 1) * 32)
                    let step = range.map { abs(x[row * 64 + $0]) }.max()! / 127
                    bound += step / 2 * range.map { abs(w[column * 64 + $0]) }.reduce(0, +)
                }
                let difference = abs(a[row * 3 + column] - b[row * 3 + column])
                XCTAssertLessThanOrEqual(difference, bound * 1.001 + 1e-5 * top, "8-bit activations against f32, output \(row), \(column)")
            }
        }
    }

    func testRowsOfDifferentFormatsStayQuantizedAndEachPartMultipliesAsAlone() throws {
        // q|k|v of a Q4_K_M file: Q4_K q and k, a Q6_K v (random codes, f16 scales that are sane).
        func part(_ type: GGMLType, rows: Int, name: String) throws -> QuantizedTensor {
            let scaleOffsets = type == .q6_K ? [208] : [0, 2]
            let bytes: [UInt8] = (0..<rows).flatMap { _ in
                var block = (0..<type.blockBytes).map { _ in UInt8.random(in: 0...255) }
                for offset in scaleOffsets {
                    let scale = Float16(Float.random(in: 0.001...0.05)).bitPattern.littleEndianBytes
                    block[offset] = scale[0]
                    block[offset + 1] = scale[1]
                }
                return block
            }
            let storage = Storage(bytes)
            return try QuantizedTensor(type: type, shape: [rows, 256], bytes: storage.pointer, owner: storage, name: name)
        }
        let parts = [try part(.q4_K, rows: 5, name: "q"), try part(.q4_K, rows: 3, name: "k"), try part(.q6_K, rows: 3, name: "v")]
        let stacked = try WeightTensor.stackingRows(parts.map(WeightTensor.quantized), name: "qkv")
        guard case .stackedQuantized = stacked else { return XCTFail("\(stacked) is not kept as its quantized parts") }
        XCTAssertEqual(stacked.shape, [11, 256])

        let backend = CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2))
        let weight = try backend.upload(stacked)
        XCTAssertEqual(weight.cpuStackedQuantized?.parts.map(\.kernelType), [12, 12, 14].map(Int32.init))
        XCTAssertEqual(try backend.download(weight), try floats(try stacked.dense()))
        let x = (0..<3 * 256).map { _ in Float.random(in: -1...1) }
        let input = try backend.uploadFloat32(x, shape: [3, 256])
        let bias = try backend.uploadFloat32((0..<11).map { Float($0) }, shape: [11])
        let whole = try backend.download(try backend.linear(input, weight: weight, bias: bias))
        var column = 0
        for p in parts {
            let alone = try backend.download(try backend.linear(input, weight: try backend.upload(p), bias: nil))
            for row in 0..<3 {
                for j in 0..<p.rows {
                    XCTAssertEqual(whole[row * 11 + column + j], alone[row * p.rows + j] + Float(column + j), "\(p.name) [\(row), \(j)]")
                }
            }
            column += p.rows
        }
        // Decoded at load instead, the same weight as f32.
        let decoded = try CPUBackend(blas: nil, pool: CPUThreadPool(threads: 2), dequantizesAtLoad: true).upload(stacked)
        XCTAssertNil(decoded.cpuStackedQuantized)
        XCTAssertEqual(try backend.download(decoded), try floats(try stacked.dense()))
    }

    private func floats(_ t: HostTensor) -> [Float] { (0..<t.count).map { t.float(at: $0) } }
}

/// Bytes kept alive as a tensor's owner.
private final class Storage {
    let pointer: UnsafeMutableRawPointer
    init(_ bytes: [UInt8]) {
        pointer = .allocate(byteCount: bytes.count, alignment: 16)
        pointer.copyMemory(from: bytes, byteCount: bytes.count)
    }
    deinit { pointer.deallocate() }
}

extension UInt16 {
    fileprivate var littleEndianBytes: [UInt8] { [UInt8(self & 0xFF), UInt8(self >> 8)] }
}

extension QuantizedTensor {
    /// The same bytes read as another type with the same row length (for a stacking mismatch).
    fileprivate func reshaped(type: GGMLType) throws -> QuantizedTensor {
        try QuantizedTensor(type: type, shape: shape, bytes: bytes, owner: owner, name: name)
    }
}
