import HiFCCore

/// Why `CUDAKernels.prefillAttention` refused its arguments; each case names the argument.
public enum PrefillAttentionError: Error, CustomStringConvertible, Sendable, Equatable {
    /// `layout.headDim` has no kernel variant (64 and 128 do).
    case unsupportedHeadDim(Int)
    /// `qHeads` is not a multiple of `layout.kvHeads` with 1 to 8 query heads per KV head.
    case unsupportedGrouping(qHeads: Int, kvHeads: Int)
    /// `qStride` (floats) is shorter than a row of query heads or not a multiple of 4 (16-byte loads).
    case badQStride(qStride: Int, rowFloats: Int)
    /// `blockStride` (bytes) is not a multiple of 16, so K/V rows would be misaligned for cp.async.
    case misalignedBlockStride(Int)
    /// `tileCount` is not positive, or its blocks exceed the grid's 65535 rows.
    case badTileCount(tileCount: Int, limit: Int)
    /// `layout.dtype` is neither bf16 nor fp8e4m3.
    case unsupportedKVDType(KVDType)
    /// The sliding window is not positive.
    case badWindow(Int)

    public var description: String {
        switch self {
        case let .unsupportedHeadDim(d):
            return "prefillAttention: layout.headDim \(d) has no kernel (supported: \(CUDAKernels.prefillAttentionHeadDims))"
        case let .unsupportedGrouping(q, kv):
            return "prefillAttention: qHeads \(q) over layout.kvHeads \(kv) (needs 1 to 8 query heads per KV head)"
        case let .badQStride(stride, row):
            return "prefillAttention: qStride \(stride) floats for rows of \(row) (needs >= the row and a multiple of 4)"
        case let .misalignedBlockStride(s):
            return "prefillAttention: blockStride \(s) bytes is not a multiple of 16"
        case let .badTileCount(n, limit):
            return "prefillAttention: tileCount \(n) (needs 1 ... \(limit) for this grouping)"
        case let .unsupportedKVDType(t):
            return "prefillAttention: layout.dtype \(t); the kernels read bf16 or fp8e4m3"
        case let .badWindow(w):
            return "prefillAttention: a sliding window of \(w) tokens (needs at least 1)"
        }
    }
}

/// One prefill chunk of a step, as the tile table sees it: query rows `queryStart ..<
/// queryStart + queryLength`, the sequence's `contextLength` tokens cached (its new ones
/// included), and its block-table row.
public struct PrefillChunk: Sendable, Hashable {
    /// First query row of the chunk in the step.
    public var queryStart: Int
    /// Query rows (new tokens); 1 for a decode row.
    public var queryLength: Int
    /// Tokens of the sequence in the pool once the chunk's K/V are written.
    public var contextLength: Int
    /// Row of the step's block tables.
    public var tableRow: Int

    /// A chunk; `contextLength >= queryLength >= 1`.
    public init(queryStart: Int, queryLength: Int, contextLength: Int, tableRow: Int) {
        self.queryStart = queryStart
        self.queryLength = queryLength
        self.contextLength = contextLength
        self.tableRow = tableRow
    }
}

extension CUDAKernels {
    /// Query tokens per tile-table entry (`PA_TILE_TOKENS` in prefill_attention.cu).
    public static let prefillTileTokens = 64
    /// Head dims with a tensor-core prefill kernel; others take `pagedAttention`.
    public static let prefillAttentionHeadDims = [64, 128]
    /// Keys per shared-memory tile (the N of the kernel names).
    static let prefillKeyTile = 64
    /// Dynamic shared memory of `prefill_attention_d128_hopper`: Q (128 rows), three 128-key K
    /// and V stages of head dim 128 in bf16, 1024 bytes to align them, and the stages' mbarriers
    /// (K full and empty, V full and empty).
    public static let prefillHopperSharedBytes = (128 + 2 * 3 * 128) * 128 * 2 + 1024 + 4 * 3 * 8

    /// The warp-specialized wgmma kernel's name.
    public static let prefillHopperKernel = "prefill_attention_d128_hopper"

    /// Blocks of a `prefillHopperKernel` launch over `units` work units (KV heads × tile-table
    /// entries × slices): the kernel is persistent, one block a multiprocessor at most, each
    /// taking units in a snake order (`hopper_unit`), so that a unit's first K/V tiles are copied
    /// while the block finishes the one before; 0.92x the time of a block a unit at 1024 tokens
    /// and 0.96x at 2048 on an H100 (bench/results/prefill-attention-h200.md).
    public static func prefillHopperBlocks(units: Int, multiprocessors: Int) -> Int { max(1, min(units, multiprocessors)) }

    /// Whether `device` runs `prefill_attention_d128_hopper` (the `hopper` of `prefillLaunchShape`):
    /// warpgroup MMAs and the shared memory the kernel asks for.
    public static func prefillRunsHopperKernel(on device: CUDADeviceInfo) -> Bool {
        device.hasWarpgroupMMA && device.maxSharedMemoryPerBlock >= prefillHopperSharedBytes
    }

    /// Tokens of the smallest bulk copy (box) of `prefillKVMap`: blocks must hold a multiple of
    /// them, so that a box never spans two blocks and a 128-key tile takes at most 32 boxes of
    /// K and 32 of V, one each for a lane of the kernel's copying warp.
    public static let prefillMapMinBoxTokens = 8

    /// Tokens of one bulk copy (box) of `prefillKVMap` over blocks of `blockTokens`: the largest
    /// power of two dividing both the block and the kernel's 128-key tile (`hopper_box_tokens`
    /// in prefill_attention.cu reads the same rule). Fewer, larger copies: with 64-token blocks,
    /// 8 a tile instead of 64 took 14-20% off the kernel's time at 8192 tokens on an H100
    /// (bench/results/prefill-attention-h200.md).
    public static func prefillMapBoxTokens(blockTokens: Int) -> Int { min(128, blockTokens & -blockTokens) }

    /// Whether a pool of `layout` on `device` gets a `prefillKVMap`: where the Hopper kernel runs
    /// (head dim 128 over bf16) and its blocks hold whole boxes of at least 8 tokens.
    public static func prefillKVMapApplies(layout: KVBlockLayout, on device: CUDADeviceInfo) -> Bool {
        prefillRunsHopperKernel(on: device) && layout.headDim == 128 && layout.dtype == .bfloat16
            && layout.blockTokens % prefillMapMinBoxTokens == 0
    }

    /// The tensor map through which `prefill_attention_d128_hopper` copies its K/V tiles: the
    /// pool at `pool` (`blocks` blocks `blockStride` bytes apart, bf16) as the array
    /// [block][layer · 2 + K|V][token][KV head][dim], in boxes of `prefillMapBoxTokens` tokens ×
    /// 64 dims of one head, so that one thread brings a box of keys' half rows with one
    /// instruction, the block's index (read from the block table) a coordinate. Nil where that
    /// kernel does not run: other devices, head dims or dtypes, and blocks of a token count that
    /// is not a multiple of 8.
    public func prefillKVMap(pool: CUdeviceptr, blocks: Int, blockStride: Int, layout: KVBlockLayout) throws -> TensorMap? {
        let device = library.device
        guard Self.prefillKVMapApplies(layout: layout, on: device.info), device.api.cuTensorMapEncodeTiled != nil else { return nil }
        let row = layout.headDim * 2
        return try TensorMap(
            device: device, element: .bfloat16, base: pool,
            dims: [layout.headDim, layout.kvHeads, layout.blockTokens, 2 * layout.layers, blocks],
            strides: [row, layout.kvHeads * row, layout.blockTokens * layout.kvHeads * row, blockStride],
            box: [64, 1, Self.prefillMapBoxTokens(blockTokens: layout.blockTokens), 1, 1])
    }

    /// Whether `prefillAttention` runs this shape.
    public static func prefillAttentionSupports(headDim: Int, qHeads: Int, kvHeads: Int) -> Bool {
        prefillAttentionHeadDims.contains(headDim) && kvHeads > 0 && qHeads % kvHeads == 0
            && (1...8).contains(qHeads / kvHeads)
    }

    /// The tile table of a step: four Int32 per tile of up to `prefillTileTokens` consecutive
    /// query tokens of one chunk — first query row, tokens, block-table row, keys visible to the
    /// tile's first token (token j of the tile sees one more than token 0 per j, causally). Tiles
    /// are ordered by descending work (keys their last token sees), so that under a causal mask
    /// the long tiles start first and the short ones fill the tail of the launch.
    public static func prefillTiles(_ chunks: [PrefillChunk]) -> [Int32] {
        var tiles: [(first: Int, rows: Int, table: Int, visible: Int)] = []
        for c in chunks {
            var off = 0
            while off < c.queryLength {
                let rows = min(prefillTileTokens, c.queryLength - off)
                tiles.append((c.queryStart + off, rows, c.tableRow, c.contextLength - c.queryLength + off + 1))
                off += rows
            }
        }
        // Stable for equal work, so the table (and the launch) is the same for the same step.
        let order = tiles.indices.sorted {
            let a = tiles[$0].visible + tiles[$0].rows
            let b = tiles[$1].visible + tiles[$1].rows
            return a != b ? a > b : $0 < $1
        }
        return order.flatMap { i in [tiles[i].first, tiles[i].rows, tiles[i].table, tiles[i].visible].map { Int32($0) } }
    }

    /// The kernel variant for a shape: warps per block, m16 row tiles per warp (a row is a token
    /// × one of its grouped query heads), keys per shared-memory tile, the blocks each table tile
    /// is split into, and the dynamic shared memory. `wide` picks two row tiles per warp (nil:
    /// when the launch still has a block per multiprocessor with them). Over fp8 (`dtype`) the
    /// tiles in flight hold codes and scales, after one bf16 K and V tile they are decoded into.
    public static func prefillLaunchShape(
        headDim: Int, group: Int, tileCount: Int = 1, kvHeads: Int = 1, multiprocessors: Int = 132, wide: Bool? = nil,
        dtype: KVDType = .bfloat16, hopper: Bool = false
    ) -> (name: String, warps: Int, rowTiles: Int, keyTile: Int, slices: Int, sharedBytes: Int) {
        func slicesFor(rows: Int) -> Int {
            let tokens = min(prefillTileTokens, rows / group)
            return (prefillTileTokens + tokens - 1) / tokens
        }
        // Hopper (`hopper`: a compute capability 9.0 device with the shared memory for it), head
        // dim 128 over bf16, the choice not forced: the warp-specialized wgmma kernel, 0.58x the
        // wide kernel's time at 8192 tokens on an H100 (bench/results/prefill-attention-h200.md).
        // 12 warps: one warpgroup copies, two compute 128 rows; shared memory for Q, three 128-key
        // K/V stages, alignment and mbarriers; `slices` sizes its work units (prefillHopperBlocks).
        if hopper, headDim == 128, dtype == .bfloat16, wide == nil {
            return (prefillHopperKernel, 12, 1, 128, slicesFor(rows: 128), prefillHopperSharedBytes)
        }
        // A block covers at most one table tile (64 tokens). Narrow: 4 warps of one row tile,
        // two blocks per multiprocessor, the most blocks for a small launch. Wide (grouped heads
        // only: without them a tile has just 64 rows): 8 warps of two row tiles, so each K and V
        // fragment a warp loads from shared memory feeds four MMAs instead of two, at one block
        // per multiprocessor. Measured on H100, 8B layer shape (bench/results/prefill-attention-h100.md):
        // wide takes 0.77x narrow's time at T=2048 (256 blocks), 1.22x at T=1024 (128 blocks)
        // and 1.64x at T=512 (64 blocks).
        let (warps, rowTiles): (Int, Int)
        if group == 1 {
            (warps, rowTiles) = (4, 1)
        } else {
            let wideBlocks = tileCount * slicesFor(rows: 16 * 8 * 2) * kvHeads
            (warps, rowTiles) = (wide ?? (wideBlocks >= multiprocessors)) ? (8, 2) : (4, 1)
        }
        // A third K/V tile in flight measured 1% faster for the wide variant at head dim 128 (T =
        // 2048 and 8192); the others keep two, which leaves the narrow one room for two blocks per
        // multiprocessor.
        let stages = rowTiles == 2 && headDim > 64 ? 3 : 2
        let keyTile = prefillKeyTile
        let rows = 16 * warps * rowTiles
        let fp8 = dtype == .fp8e4m3
        let shared =
            fp8
            ? (rows + 2 * keyTile) * headDim * 2 + stages * (2 * headDim + 8) * keyTile
            : (rows + 2 * stages * keyTile) * headDim * 2
        return (
            "prefill_attention_d\(headDim)_w\(warps)m\(rowTiles)n\(keyTile)s\(stages)" + (fp8 ? "_fp8" : ""), warps, rowTiles, keyTile,
            slicesFor(rows: rows), shared
        )
    }

    /// Checks `prefillAttention`'s arguments.
    public static func validatePrefillAttention(
        qStride: Int, blockStride: Int, tileCount: Int, qHeads: Int, layout: KVBlockLayout
    ) throws(PrefillAttentionError) {
        guard CUDAKernels.kvDTypes.contains(layout.dtype) else { throw .unsupportedKVDType(layout.dtype) }
        guard prefillAttentionHeadDims.contains(layout.headDim) else { throw .unsupportedHeadDim(layout.headDim) }
        guard prefillAttentionSupports(headDim: layout.headDim, qHeads: qHeads, kvHeads: layout.kvHeads) else {
            throw .unsupportedGrouping(qHeads: qHeads, kvHeads: layout.kvHeads)
        }
        guard qStride >= qHeads * layout.headDim, qStride % 4 == 0 else {
            throw .badQStride(qStride: qStride, rowFloats: qHeads * layout.headDim)
        }
        guard blockStride % 16 == 0 else { throw .misalignedBlockStride(blockStride) }
        // The narrowest variant splits a tile into the most blocks.
        let slices = prefillLaunchShape(headDim: layout.headDim, group: qHeads / layout.kvHeads, wide: false).slices
        let limit = 65535 / slices
        guard tileCount >= 1, tileCount <= limit else { throw .badTileCount(tileCount: tileCount, limit: limit) }
    }

    /// Causal attention of a step's query rows over their sequences' K/V in the bf16 or fp8 pool, on
    /// tensor cores (flash attention: no scores in memory), for every chunk of the step in one
    /// launch — prefill chunks from position 0 or mid-sequence, and decode rows as 1-token chunks.
    ///
    /// - `q`: fp32 `[rows, qHeads · headDim]`, rows `qStride` floats apart; `scale` multiplies
    ///   q·k (applied to q before it is rounded to bf16).
    /// - `pool`: blocks `blockStride` bytes apart; the chunks' own K/V must already be written.
    /// - `blockTables`: Int32 rows `tableStride` apart; `tiles`: `tileCount` entries of
    ///   `prefillTiles` (16-byte aligned).
    /// - `output`: bf16 `[rows, qHeads · headDim]`; rows no tile covers are left alone.
    /// - `wide`: forces (true) or forbids (false) the variant with two row tiles per warp for
    ///   grouped heads; nil chooses by the launch's size (the self check tries both).
    /// - `window`: a sliding window; a token at position p then sees only keys `p - window + 1 ... p`.
    /// - `kvMap`: the pool's `prefillKVMap`, where it has one: the Hopper kernel runs with it, and
    ///   only with it (the map exists only where that kernel does, `prefillKVMapApplies`).
    /// - `persistentBlocks`: at most this many blocks for the Hopper kernel, which is persistent
    ///   (nil: one a multiprocessor); the self check takes a few, so that each block runs through
    ///   several work units on a small step.
    public func prefillAttention(
        q: CUdeviceptr, qStride: Int, pool: CUdeviceptr, blockStride: Int, blockTables: CUdeviceptr, tableStride: Int,
        tiles: CUdeviceptr, tileCount: Int, output: CUdeviceptr, qHeads: Int, layer: Int, layout: KVBlockLayout,
        scale: Float, window: Int? = nil, wide: Bool? = nil, kvMap: TensorMap? = nil, persistentBlocks: Int? = nil, stream: CUDAStream
    ) throws {
        try Self.validatePrefillAttention(qStride: qStride, blockStride: blockStride, tileCount: tileCount, qHeads: qHeads, layout: layout)
        if let window, window < 1 { throw PrefillAttentionError.badWindow(window) }
        let info = library.device.info
        let shape = Self.prefillLaunchShape(
            headDim: layout.headDim, group: qHeads / layout.kvHeads, tileCount: tileCount, kvHeads: layout.kvHeads,
            multiprocessors: info.multiprocessors, wide: wide, dtype: layout.dtype,
            hopper: kvMap != nil)
        var a = KernelArguments()
        a.add(q)
        a.add(int: qStride)
        a.add(pool)
        a.add(blockTables)
        a.add(int: tableStride)
        a.add(tiles)
        a.add(output)
        a.add(int: qHeads)
        a.add(int: layout.kvHeads)
        a.add(int: layer)
        a.add(int: layout.blockTokens)
        a.add(Int64Arg(blockStride / layout.dtype.size))
        a.add(scale)
        a.add(int: window.map { min($0, Int(Int32.max)) } ?? 0)
        if layout.dtype.isScaled { a.add(Int64Arg(layout.elementBytes)) }
        let sliceUnits = tileCount * shape.slices
        var grid = (layout.kvHeads, sliceUnits, 1)
        if shape.name == Self.prefillHopperKernel {
            // Persistent: at most one block a multiprocessor, each taking work units in turn.
            a.add(kvMap?.address ?? 0)
            a.add(int: sliceUnits)
            let units = layout.kvHeads * sliceUnits
            grid = (Self.prefillHopperBlocks(units: units, multiprocessors: persistentBlocks ?? info.multiprocessors), 1, 1)
        }
        try library.function(shape.name).launch(
            grid: grid, block: (32 * shape.warps, 1, 1), sharedBytes: shape.sharedBytes, stream: stream, arguments: a)
    }
}
