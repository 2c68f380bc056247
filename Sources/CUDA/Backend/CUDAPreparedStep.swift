import Backend

/// A step's metadata uploaded once to the GPU, as Int32 arrays in one allocation: token ids,
/// positions, KV slots, block tables (one row per sequence), and per query row its sequence and
/// visible context length (causal masking), the logit rows, and the prefill attention kernel's
/// tile table (`CUDAKernels.prefillTiles`).
final class CUDAPreparedStep: PreparedStep, @unchecked Sendable {
    // Immutable after init.
    enum Part: Int, CaseIterable { case tokenIDs, positions, slots, blockTables, rowSequence, rowContext, logitRows, prefillTiles }

    let batch: StepBatch
    /// Entries per block-table row (the longest table).
    let tableStride: Int
    /// The longest context any query row sees.
    let maxContext: Int
    /// Entries (four Int32 each) of the `.prefillTiles` part.
    let prefillTileCount: Int
    /// Whether some sequence has more than one query row (a prefill chunk): then the tensor-core
    /// prefill kernel serves the whole step, else the decode kernel.
    let hasMultiRowChunk: Bool
    private let buffer: DeviceBuffer
    private let offsets: [Int]
    private let cache: DeviceMemoryCache

    init(batch: StepBatch, backend: CUDABackend) throws {
        self.batch = batch
        let n = batch.tokenCount
        guard batch.positions.count == n, batch.slotMapping.count == n else {
            throw BackendError.badStep("\(n) tokens but \(batch.positions.count) positions and \(batch.slotMapping.count) slots")
        }
        tableStride = max(1, batch.sequences.map(\.blockTable.count).max() ?? 1)
        var rowSequence = [Int32](repeating: 0, count: n)
        var rowContext = [Int32](repeating: 0, count: n)
        var tables = [Int32](repeating: 0, count: batch.sequences.count * tableStride)
        var longest = 1
        for (i, s) in batch.sequences.enumerated() {
            guard s.queryStart >= 0, s.queryStart + s.queryLength <= n, s.contextLength >= s.queryLength else {
                throw BackendError.badStep("sequence \(i): rows \(s.queryStart)+\(s.queryLength) of \(n), context \(s.contextLength)")
            }
            for (j, b) in s.blockTable.enumerated() { tables[i * tableStride + j] = b }
            for r in 0..<s.queryLength {
                rowSequence[s.queryStart + r] = Int32(i)
                rowContext[s.queryStart + r] = Int32(s.contextLength - s.queryLength + r + 1)
            }
            longest = max(longest, s.contextLength)
        }
        maxContext = longest
        // Once a step rather than in every layer's attention: both attention kernels find a
        // position's block by common.cuh's block_index.
        try CUDAKernels.checkBlockIndexing(maxContext: longest, blockTokens: batch.blockTokens)
        hasMultiRowChunk = batch.sequences.contains { $0.queryLength > 1 }
        let tiles = CUDAKernels.prefillTiles(
            batch.sequences.enumerated().map { i, s in
                PrefillChunk(queryStart: s.queryStart, queryLength: s.queryLength, contextLength: s.contextLength, tableRow: i)
            })
        prefillTileCount = tiles.count / 4
        if let bad = batch.slotMapping.first(where: { $0 < 0 || $0 > Int64(Int32.max) }) {
            throw BackendError.badStep("KV slot \(bad) outside 0..<2^31")
        }
        let slots = batch.slotMapping.map { Int32($0) }
        let parts: [[Int32]] = [batch.tokenIDs, batch.positions, slots, tables, rowSequence, rowContext, batch.logitRows, tiles]
        var flat: [Int32] = []
        var offsets: [Int] = []
        for p in parts {
            offsets.append(flat.count * 4)
            flat += p
            // Keep each part 16-byte aligned (the tile table is read as int4).
            while flat.count % 4 != 0 { flat.append(0) }
        }
        self.offsets = offsets
        cache = backend.memory
        buffer = try backend.memory.take(max(16, flat.count * 4))
        try flat.withUnsafeBytes { try backend.stream.copy(from: $0.baseAddress!, to: buffer.address, bytes: flat.count * 4) }
        // The host array dies at the end of this scope: the copy must have finished by then.
        try backend.stream.synchronize()
    }

    deinit { cache.give(buffer) }

    /// Device address of one part (Int32 elements).
    func address(_ part: Part) -> CUdeviceptr { buffer.address + UInt64(offsets[part.rawValue]) }
}
