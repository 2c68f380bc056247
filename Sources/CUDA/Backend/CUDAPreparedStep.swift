import Backend

/// A step's metadata uploaded once to the GPU, as Int32 arrays in one allocation: token ids,
/// positions, KV slots, block tables (one row per sequence), and per query row its sequence and
/// visible context length (causal masking), the logit rows, the prefill attention kernel's
/// tile table (`CUDAKernels.prefillTiles`), and per row the previous step's logit row whose
/// picked token it takes (`StepBatch.feedRows`; -1 for every row of a step that feeds none). A
/// decode step that a CUDA graph replays is padded to the graph's shape and uploaded into the
/// graph's own input buffer (`CUDAStepGraph`).
final class CUDAPreparedStep: PreparedStep, @unchecked Sendable {
    // Immutable after init.
    enum Part: Int, CaseIterable { case tokenIDs, positions, slots, blockTables, rowSequence, rowContext, logitRows, prefillTiles, feedRows }

    /// The batch the kernels see: the caller's, or for a graph step that one with padding rows.
    let batch: StepBatch
    /// Rows of the caller's batch (the first `realRows` of `batch`).
    let realRows: Int
    /// Entries per block-table row (the longest table, or the graph shape's stride).
    let tableStride: Int
    /// The longest context any query row sees (a graph step: its shape's context class).
    let maxContext: Int
    /// Entries (four Int32 each) of the `.prefillTiles` part.
    let prefillTileCount: Int
    /// Whether some sequence has more than one query row (a prefill chunk): then the tensor-core
    /// prefill kernel serves the whole step, else the decode kernel.
    let hasMultiRowChunk: Bool
    /// The graph that replays this step; nil for a step launched kernel by kernel as it comes.
    let graph: CUDAStepGraph?
    private let buffer: DeviceBuffer
    private let offsets: [Int]
    /// Where `buffer` goes back to; nil when a graph owns it.
    private let cache: DeviceMemoryCache?

    /// Uploads `batch` as it is into memory of the backend's cache (`CUDABackend.uploadStepMetadata`).
    init(batch: StepBatch, backend: CUDABackend) throws {
        let m = try Self.metadata(batch, tableStride: max(1, batch.sequences.map(\.blockTable.count).max() ?? 1))
        self.batch = batch
        realRows = batch.tokenCount
        tableStride = m.tableStride
        maxContext = m.maxContext
        prefillTileCount = m.prefillTileCount
        hasMultiRowChunk = m.hasMultiRowChunk
        offsets = m.offsets
        graph = nil
        let cache = backend.memory
        self.cache = cache
        buffer = try cache.take(max(16, m.flat.count * 4))
        try backend.uploadStepMetadata(m.flat, to: buffer.address)
    }

    /// Pads `batch` to `graph`'s shape and uploads it into the graph's fixed input buffer: one
    /// asynchronous copy from pinned memory on the compute stream, which the replay follows.
    init(batch: StepBatch, graph: CUDAStepGraph, backend: CUDABackend) throws {
        let shape = graph.shape
        let padded = shape.padded(batch)
        let m = try Self.metadata(padded, tableStride: shape.tableStride(blockTokens: batch.blockTokens))
        self.batch = padded
        realRows = batch.tokenCount
        tableStride = m.tableStride
        maxContext = shape.contextClass
        prefillTileCount = m.prefillTileCount
        hasMultiRowChunk = false
        offsets = m.offsets
        self.graph = graph
        cache = nil
        buffer = try graph.upload(m.flat, on: backend.computeStream)
    }

    deinit { cache?.give(buffer) }

    /// Device address of one part (Int32 elements).
    func address(_ part: Part) -> CUdeviceptr { buffer.address + UInt64(offsets[part.rawValue]) }

    /// A step's parts as one Int32 array, each part 16-byte aligned, with the facts the ops need.
    private struct Metadata {
        var flat: [Int32]
        var offsets: [Int]
        var tableStride: Int
        var maxContext: Int
        var prefillTileCount: Int
        var hasMultiRowChunk: Bool
    }

    /// Lays out `batch` with block-table rows of `tableStride` entries; entries past a row's
    /// stride are past its context (a graph's stride covers its context class) and are left out.
    private static func metadata(_ batch: StepBatch, tableStride: Int) throws -> Metadata {
        let n = batch.tokenCount
        guard batch.positions.count == n, batch.slotMapping.count == n else {
            throw BackendError.badStep("\(n) tokens but \(batch.positions.count) positions and \(batch.slotMapping.count) slots")
        }
        var rowSequence = [Int32](repeating: 0, count: n)
        var rowContext = [Int32](repeating: 0, count: n)
        var tables = [Int32](repeating: 0, count: batch.sequences.count * tableStride)
        var longest = 1
        for (i, s) in batch.sequences.enumerated() {
            guard s.queryStart >= 0, s.queryStart + s.queryLength <= n, s.contextLength >= s.queryLength else {
                throw BackendError.badStep("sequence \(i): rows \(s.queryStart)+\(s.queryLength) of \(n), context \(s.contextLength)")
            }
            for (j, b) in s.blockTable.prefix(tableStride).enumerated() { tables[i * tableStride + j] = b }
            for r in 0..<s.queryLength {
                rowSequence[s.queryStart + r] = Int32(i)
                rowContext[s.queryStart + r] = Int32(s.contextLength - s.queryLength + r + 1)
            }
            longest = max(longest, s.contextLength)
        }
        // Once a step rather than in every layer's attention: both attention kernels find a
        // position's block by common.cuh's block_index.
        try CUDAKernels.checkBlockIndexing(maxContext: longest, blockTokens: batch.blockTokens)
        let tiles = CUDAKernels.prefillTiles(
            batch.sequences.enumerated().map { i, s in
                PrefillChunk(queryStart: s.queryStart, queryLength: s.queryLength, contextLength: s.contextLength, tableRow: i)
            })
        if let bad = batch.slotMapping.first(where: { $0 < 0 || $0 > Int64(Int32.max) }) {
            throw BackendError.badStep("KV slot \(bad) outside 0..<2^31")
        }
        let slots = batch.slotMapping.map { Int32($0) }
        // Every step has the feed part, so that the steps of a graph's shape have one size.
        let feedRows = batch.feedRows.isEmpty ? [Int32](repeating: -1, count: n) : batch.feedRows
        let parts: [[Int32]] = [batch.tokenIDs, batch.positions, slots, tables, rowSequence, rowContext, batch.logitRows, tiles, feedRows]
        var flat: [Int32] = []
        var offsets: [Int] = []
        for p in parts {
            offsets.append(flat.count * 4)
            flat += p
            // Keep each part 16-byte aligned (the tile table is read as int4).
            while flat.count % 4 != 0 { flat.append(0) }
        }
        return Metadata(
            flat: flat, offsets: offsets, tableStride: tableStride, maxContext: longest, prefillTileCount: tiles.count / 4,
            hasMultiRowChunk: batch.sequences.contains { $0.queryLength > 1 })
    }
}
