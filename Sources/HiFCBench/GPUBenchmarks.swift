import CUDA
import Foundation
import HiFCCore

/// Timings of the pieces a decode step is made of, against the device's own ceilings (a large
/// device-to-device copy, a large bf16 product): METHOD.md's "two numbers".
public struct GPUBenchmarks {
    let device: CUDADevice
    let kernels: CUDAKernels
    let blas: CUBLAS
    let stream: CUDAStream

    /// Benchmarks over `kernels`' device.
    public init(kernels: CUDAKernels, blas: CUBLAS) throws {
        self.kernels = kernels
        self.blas = blas
        device = kernels.library.device
        stream = try device.makeStream()
    }

    /// Median milliseconds of `body` over `iterations` runs after `warmup`, timed with events.
    func time(warmup: Int = 3, iterations: Int = 20, _ body: () throws -> Void) throws -> Double {
        for _ in 0..<warmup { try body() }
        var samples: [Double] = []
        let start = try device.makeEvent(timing: true)
        let end = try device.makeEvent(timing: true)
        for _ in 0..<iterations {
            try start.record(on: stream)
            try body()
            try end.record(on: stream)
            try end.synchronize()
            samples.append(try end.milliseconds(since: start))
        }
        return samples.sorted()[samples.count / 2]
    }

    /// One line per measurement.
    public func run() throws -> [String] {
        var lines: [String] = []
        // Ceiling 1: device-to-device copy, bytes read plus written.
        let copyBytes = 1 << 30
        let a = try device.allocate(copyBytes)
        let b = try device.allocate(copyBytes)
        try kernels.fillRandom(a.address, bytes: copyBytes, seed: UInt64.random(in: 1...UInt64.max), stream: stream)
        let copyMs = try time { try stream.copy(from: a.address, to: b.address, bytes: copyBytes) }
        let copyBW = 2 * Double(copyBytes) / copyMs / 1e6
        lines.append(String(format: "d2d copy 1 GiB: %.3f ms, %.0f GB/s (read+write)", copyMs, copyBW))

        // Ceiling 2: a large bf16 product.
        let n = 8192
        let x = try device.allocate(n * n * 2)
        let w = try device.allocate(n * n * 2)
        let y = try device.allocate(n * n * 2)
        try kernels.fillRandom(x.address, bytes: n * n * 2, seed: 11, stream: stream)
        try kernels.fillRandom(w.address, bytes: n * n * 2, seed: 12, stream: stream)
        // Random bits include NaN/Inf patterns in bf16; scale them into ordinary numbers first.
        try sanitizeBF16(x.address, count: n * n)
        try sanitizeBF16(w.address, count: n * n)
        let gemmMs = try time(iterations: 10) {
            try blas.linear(x: x.address, w: w.address, y: y.address, yType: .bfloat16, m: n, n: n, k: n, stream: stream)
        }
        lines.append(String(format: "bf16 gemm 8192^3: %.3f ms, %.0f TFLOP/s", gemmMs, 2 * pow(Double(n), 3) / gemmMs / 1e9))

        // Decode products of an 8B Llama layer (batch 1 and 16): weight-read bound.
        let shapes = [("qkv", 6144, 4096), ("o", 4096, 4096), ("gate_up", 28672, 4096), ("down", 4096, 14336)]
        // Each product twice: cuBLAS, then the skinny kernel CUDABackend.linear uses at these batches.
        for batch in [1, 16] {
            var totalMs = 0.0
            var totalBytes = 0.0
            var skinnyMs = 0.0
            for (name, outF, inF) in shapes {
                let wt = try device.allocate(outF * inF * 2)
                try kernels.fillRandom(wt.address, bytes: outF * inF * 2, seed: 13, stream: stream)
                try sanitizeBF16(wt.address, count: outF * inF)
                let out = try device.allocate(batch * outF * 4)
                let ms = try time {
                    try blas.linear(x: x.address, w: wt.address, y: out.address, yType: .float32, m: batch, n: outF, k: inF, stream: stream)
                }
                let bytes = Double(outF * inF * 2)
                let roof = bytes / copyBW / 1e6
                totalMs += ms
                totalBytes += bytes
                lines.append(
                    "decode gemm batch \(batch) \(name) \(outF)x\(inF): "
                        + String(format: "%.4f ms, %.0f GB/s of weights, %.2fx roofline", ms, bytes / ms / 1e6, ms / roof))
                let sms = try time {
                    try kernels.skinnyLinear(x: x.address, w: wt.address, y: out.address, m: batch, n: outF, k: inF, stream: stream)
                }
                skinnyMs += sms
                lines.append(
                    "decode skinny gemm batch \(batch) \(name) \(outF)x\(inF): "
                        + String(format: "%.4f ms, %.0f GB/s of weights, %.2fx roofline (cuBLAS %.4f ms)", sms, bytes / sms / 1e6, sms / roof, ms))
            }
            let roof = totalBytes / copyBW / 1e6
            lines.append(
                String(
                    format: "decode gemms of one 8B layer, batch %2d: %.3f ms = %.2fx the roofline (weights read at the copy's %.0f GB/s)", batch,
                    totalMs, totalMs / roof, copyBW))
            lines.append(
                String(
                    format: "decode skinny gemms of one 8B layer, batch %2d: %.3f ms = %.2fx the roofline (cuBLAS %.3f ms)", batch, skinnyMs,
                    skinnyMs / roof, totalMs))
        }

        // Paged decode attention of one 8B layer: 32 query heads over 8 KV heads of 128, 64-token blocks.
        let layout = KVBlockLayout(layers: 32, kvHeads: 8, headDim: 128, blockTokens: 64, dtype: .bfloat16)
        for (batch, context) in [(1, 4096), (16, 4096), (1, 32768)] {
            let blocksPerSeq = layout.blocks(forTokens: context)
            let pool = try DeviceBlockPool(device: device, layout: layout, blocks: batch * blocksPerSeq)
            try kernels.fillRandom(pool.buffer.address, bytes: pool.buffer.bytes, seed: 14, stream: stream)
            try sanitizeBF16(pool.buffer.address, count: pool.buffer.bytes / 2)
            let tables = (0..<batch * blocksPerSeq).map { Int32($0) }.shuffled()
            let tb = try device.allocate(tables.count * 4)
            try tb.upload(tables)
            let rows = try device.allocate(batch * 4)
            try rows.upload((0..<batch).map { Int32($0) })
            let lens = try device.allocate(batch * 4)
            try lens.upload([Int32](repeating: Int32(context), count: batch))
            let q = try device.allocate(batch * 32 * 128 * 4)
            try kernels.fillRandom(q.address, bytes: batch * 32 * 128 * 4, seed: 15, stream: stream)
            try sanitizeF32(q.address, count: batch * 32 * 128)
            let out = try device.allocate(batch * 32 * 128 * 2)
            let splits = kernels.attentionSplits(maxContext: context, rows: batch, layout: layout)
            let scratch = try device.allocate(CUDAKernels.attentionScratchFloats(rows: batch, qHeads: 32, headDim: 128, splits: splits) * 4)
            let ms = try time {
                try kernels.pagedAttention(
                    q: q.address, qStride: 32 * 128, pool: pool.buffer.address, blockStride: pool.blockStride, blockTables: tb.address,
                    tableStride: blocksPerSeq,
                    rowTable: rows.address, contextLengths: lens.address, maxContext: context, output: out.address,
                    rows: batch, qHeads: 32, layer: 5, layout: layout, scale: 0.088, splits: splits, freshTokens: 1,
                    scratch: scratch.address, stream: stream)
            }
            let kvBytes = Double(batch * context * 2 * layout.tokenElements * 2)
            lines.append(
                String(
                    format: "paged decode attention, batch %2d, context %5d, %d splits: %.4f ms, %.0f GB/s of KV (%.2fx the roofline)",
                    batch, context, splits, ms, kvBytes / ms / 1e6, ms / (kvBytes / copyBW / 1e6)))
        }
        // Prefill attention of one 8B layer over one sequence of T tokens (causal), on the same
        // inputs through both paths: the tensor-core kernel the backend uses for prefill (one
        // tile-table launch), and up to T=2048 the decode kernel with one query row per token.
        for t in [512, 2048, 8192] {
            let blocksPerSeq = layout.blocks(forTokens: t)
            let pool = try DeviceBlockPool(device: device, layout: layout, blocks: blocksPerSeq)
            try kernels.fillRandom(pool.buffer.address, bytes: pool.buffer.bytes, seed: 16, stream: stream)
            try sanitizeBF16(pool.buffer.address, count: pool.buffer.bytes / 2)
            let tb = try device.allocate(blocksPerSeq * 4)
            try tb.upload((0..<blocksPerSeq).map { Int32($0) }.shuffled())
            let q = try device.allocate(t * 32 * 128 * 4)
            try kernels.fillRandom(q.address, bytes: t * 32 * 128 * 4, seed: 17, stream: stream)
            try sanitizeF32(q.address, count: t * 32 * 128)
            let out = try device.allocate(t * 32 * 128 * 2)
            let flops = 4.0 * 32 * Double(t) * Double(t) * 128 / 2
            if t <= 2048 {
                let rows = try device.allocate(t * 4)
                try rows.upload([Int32](repeating: 0, count: t))
                let lens = try device.allocate(t * 4)
                try lens.upload((1...t).map { Int32($0) })
                let splits = kernels.attentionSplits(maxContext: t, rows: t, layout: layout)
                let scratch = try device.allocate(CUDAKernels.attentionScratchFloats(rows: t, qHeads: 32, headDim: 128, splits: splits) * 4)
                let ms = try time(iterations: 5) {
                    try kernels.pagedAttention(
                        q: q.address, qStride: 32 * 128, pool: pool.buffer.address, blockStride: pool.blockStride, blockTables: tb.address,
                        tableStride: blocksPerSeq, rowTable: rows.address, contextLengths: lens.address, maxContext: t, output: out.address,
                        rows: t, qHeads: 32, layer: 5, layout: layout, scale: 0.088, splits: splits, freshTokens: Int(Int32.max),
                        scratch: scratch.address, stream: stream)
                }
                lines.append(
                    String(format: "paged prefill attention, T=%d (one layer, 32/8 heads of 128): %.4f ms, %.1f TFLOP/s", t, ms, flops / ms / 1e9))
            }
            let kvMap = try kernels.prefillKVMap(pool: pool.buffer.address, blocks: pool.blocks, blockStride: pool.blockStride, layout: layout)
            let tiles = CUDAKernels.prefillTiles([PrefillChunk(queryStart: 0, queryLength: t, contextLength: t, tableRow: 0)])
            let tib = try device.allocate(tiles.count * 4)
            try tib.upload(tiles)
            let ms = try time(iterations: 10) {
                try kernels.prefillAttention(
                    q: q.address, qStride: 32 * 128, pool: pool.buffer.address, blockStride: pool.blockStride, blockTables: tb.address,
                    tableStride: blocksPerSeq, tiles: tib.address, tileCount: tiles.count / 4, output: out.address, qHeads: 32,
                    layer: 5, layout: layout, scale: 0.088, kvMap: kvMap, stream: stream)
            }
            lines.append(
                String(format: "tensor-core prefill attention, T=%d (one layer, 32/8 heads of 128): %.4f ms, %.1f TFLOP/s", t, ms, flops / ms / 1e9))
        }
        return lines
    }

    /// Makes random bf16 bits into ordinary numbers in [-0.5, 0.5).
    func sanitizeBF16(_ p: CUdeviceptr, count: Int) throws {
        try kernels.normalizeRandomBF16(p, count: count, stream: stream)
    }

    /// Makes random fp32 bits into ordinary numbers: keeps sign and mantissa, sets the exponent of [1, 2), subtracts 1.5.
    func sanitizeF32(_ p: CUdeviceptr, count: Int) throws {
        try kernels.normalizeRandomF32(p, count: count, stream: stream)
    }
}
