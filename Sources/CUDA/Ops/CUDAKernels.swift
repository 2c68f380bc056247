import Backend
import Foundation
import HiFCCore

/// Typed launchers for the NVRTC-compiled kernels of `Sources/CUDA/Kernels/`.
///
/// Tensors are device addresses with element counts; activations are fp32 and weights and GEMM
/// inputs bf16 (fp32 accumulation everywhere). The KV pool is bf16 or fp8 (E4M3 codes with an
/// f32 scale per token and KV head, `KVBlockLayout`); its launchers pick the kernels of the
/// layout's dtype. Each launcher checks what the host can check (shapes, limits) and names the
/// kernel in any error.
public struct CUDAKernels: Sendable {
    /// The compiled kernels.
    public let library: KernelLibrary
    /// How many CTAs of each skinny-GEMM launch fit on one multiprocessor (SkinnyGEMM.swift).
    let skinnyGEMMResidency: [SkinnyGEMMLaunch: Int]
    /// Whether 2-split decode attention combines its splits in a thread block cluster
    /// (`decodeAttentionLaunch`): on devices with clusters, unless `HIFC_CUDA_DECODE_CLUSTERS=0`
    /// asks for the split kernel and `paged_attention_combine`, to compare the two in one run.
    let decodeClusters: Bool
    /// Whether a row's pick, its draw (`sampleRows`) or its argmax (`argmax`), is made by a
    /// cluster of 8 blocks rather than one: on devices with clusters, unless
    /// `HIFC_CUDA_DRAW_CLUSTERS=0` asks for one block a row (on an H200 the cluster's sampled 8B
    /// decode step is 1.05 ms shorter at batch 1, logprobs.md).
    let pickClusters: Bool
    /// The longest span of a row's context one decode attention split takes (`attentionSplits`):
    /// `HIFC_CUDA_DECODE_SPLIT_TOKENS`, 8192 by default.
    let decodeSplitTokens: Int
    /// A split count every decode attention launch takes instead of the rule's
    /// (`HIFC_CUDA_DECODE_SPLITS`, to time counts the rule does not pick in one binary); nil when
    /// not set.
    let decodeSplitsOverride: Int?
    /// How many blocks of each tensor-core decode attention kernel fit on one multiprocessor, by
    /// the head dim and KV dtype that pick the kernel, from the driver (`attentionSplits` fills
    /// the device with them).
    let decodeAttentionResidency: [DecodeKernelKey: Int]

    /// What picks a tensor-core decode attention kernel's shared memory, hence its residency.
    struct DecodeKernelKey: Hashable {
        var headDim: Int
        var dtype: KVDType
    }

    /// Launchers over `library`.
    public init(library: KernelLibrary) throws {
        self.library = library
        skinnyGEMMResidency = try CUDAKernels.skinnyGEMMResidency(library: library)
        let environment = ProcessInfo.processInfo.environment
        decodeClusters = library.device.info.hasClusters && environment["HIFC_CUDA_DECODE_CLUSTERS"] != "0"
        pickClusters = library.device.info.hasClusters && environment["HIFC_CUDA_DRAW_CLUSTERS"] != "0"
        decodeSplitTokens = try CUDAKernels.decodeSplitTokens(environment: environment)
        decodeSplitsOverride = try CUDAKernels.decodeSplitsOverride(environment: environment)
        decodeAttentionResidency = try CUDAKernels.decodeAttentionResidency(library: library)
    }

    /// `HIFC_CUDA_DECODE_SPLIT_TOKENS` read from `environment`: a whole number of tokens, at least
    /// 128 (the least a split takes); 8192 when it is not set.
    static func decodeSplitTokens(environment: [String: String]) throws -> Int {
        try wholeNumberSetting(
            "HIFC_CUDA_DECODE_SPLIT_TOKENS", in: environment, range: leastSplitTokens...Int.max,
            expected: "a whole number of tokens, at least \(leastSplitTokens)") ?? 8192
    }

    /// `HIFC_CUDA_DECODE_SPLITS` read from `environment`: a whole number of splits, 1 to 256; nil
    /// when it is not set.
    static func decodeSplitsOverride(environment: [String: String]) throws -> Int? {
        try wholeNumberSetting("HIFC_CUDA_DECODE_SPLITS", in: environment, range: 1...256, expected: "a whole number of splits, 1 to 256")
    }

    private func gridFor(_ n: Int, threads: Int = 256) -> Int { max(1, min((n + threads - 1) / threads, 65535)) }

    /// `out[i] = bf16(in[i])`.
    public func f32ToBF16(_ input: CUdeviceptr, _ output: CUdeviceptr, count n: Int, stream: CUDAStream) throws {
        var a = KernelArguments()
        a.add(input)
        a.add(output)
        a.add(Int64Arg(n))
        try library.function("f32_to_bf16_kernel").launch(grid: (gridFor(n), 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }

    /// `out[i] = f32(in[i])`.
    public func bf16ToF32(_ input: CUdeviceptr, _ output: CUdeviceptr, count n: Int, stream: CUDAStream) throws {
        var a = KernelArguments()
        a.add(input)
        a.add(output)
        a.add(Int64Arg(n))
        try library.function("bf16_to_f32_kernel").launch(grid: (gridFor(n), 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }

    /// `x += y` over `n` fp32 values.
    public func residualAdd(_ x: CUdeviceptr, _ y: CUdeviceptr, count n: Int, stream: CUDAStream) throws {
        var a = KernelArguments()
        a.add(x)
        a.add(y)
        a.add(Int64Arg(n))
        try library.function("residual_add_f32").launch(grid: (gridFor(n), 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }

    /// `out[r, i] = silu(gate[r, i]) · up[r, i]` (bf16 out); gate/up rows `stride` floats apart.
    public func siluMul(gate: CUdeviceptr, up: CUdeviceptr, stride: Int, output: CUdeviceptr, inter: Int, rows: Int, stream: CUDAStream) throws {
        // The kernel takes four columns a thread when both counts are multiples of 4.
        let fourColumns = inter % 4 == 0 && stride % 4 == 0
        if fourColumns, ![gate, up, output].allSatisfy({ $0 % 16 == 0 }) {
            throw CUDAError.invalidArgument("silu_mul: gate, up and output must be 16-byte aligned")
        }
        var a = KernelArguments()
        a.add(gate)
        a.add(up)
        a.add(int: stride)
        a.add(output)
        a.add(int: inter)
        a.add(int: rows)
        try library.function("silu_mul_f32_to_bf16").launch(
            grid: (gridFor(rows * inter / (fourColumns ? 4 : 1)), 1, 1), block: (256, 1, 1),
            stream: stream, arguments: a)
    }

    /// `y[r, c] += bias[c]` over `rows` fp32 rows of `cols`, bf16 bias.
    public func addBias(_ y: CUdeviceptr, bias: CUdeviceptr, rows: Int, cols: Int, stream: CUDAStream) throws {
        var a = KernelArguments()
        a.add(y)
        a.add(bias)
        a.add(int: cols)
        a.add(Int64Arg(rows * cols))
        try library.function("add_bias_f32").launch(grid: (gridFor(rows * cols), 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }

    /// `out = a + b` over `n` fp32 values.
    public func add(_ x: CUdeviceptr, _ y: CUdeviceptr, output: CUdeviceptr, count n: Int, stream: CUDAStream) throws {
        var a = KernelArguments()
        a.add(x)
        a.add(y)
        a.add(output)
        a.add(Int64Arg(n))
        try library.function("add_f32").launch(grid: (gridFor(n), 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }

    /// `out[i, :] = x[rows[i], :]` for rows of `rowBytes` bytes (a multiple of 4); `rows` is Int32.
    public func gatherRows(_ x: CUdeviceptr, rows: CUdeviceptr, count: Int, rowBytes: Int, output: CUdeviceptr, stream: CUDAStream) throws {
        guard rowBytes % 4 == 0 else { throw CUDAError.invalidArgument("gather of \(rowBytes)-byte rows") }
        var a = KernelArguments()
        a.add(x)
        a.add(rows)
        a.add(output)
        a.add(int: rowBytes / 4)
        try library.function("gather_rows_u32").launch(grid: (count, 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }

    /// `out[t, :] = table[ids[t], :]` (bf16 table, fp32 out); ids must be checked by the caller.
    public func embedding(table: CUdeviceptr, ids: CUdeviceptr, output: CUdeviceptr, tokens: Int, dim: Int, stream: CUDAStream) throws {
        var a = KernelArguments()
        a.add(table)
        a.add(ids)
        a.add(output)
        a.add(int: dim)
        try library.function("embedding_bf16_to_f32").launch(grid: (tokens, 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }

    /// RMSNorm of `rows` fp32 rows with a bf16 weight; `bf16Output` picks the output type.
    public func rmsNorm(
        _ x: CUdeviceptr, weight: CUdeviceptr, output: CUdeviceptr, rows: Int, dim: Int, eps: Float, bf16Output: Bool, stream: CUDAStream
    ) throws {
        let name = bf16Output ? Self.normKernel("rmsnorm_f32_to_bf16", rows: rows) : "rmsnorm_f32"
        let block = try Self.normBlock(name, dim: dim, addresses: [x, weight, output])
        var a = KernelArguments()
        a.add(x)
        a.add(weight)
        a.add(output)
        a.add(int: dim)
        a.add(eps)
        try library.function(name).launch(grid: (rows, 1, 1), block: (block, 1, 1), stream: stream, arguments: a)
    }

    /// `sum = x + y` (fp32) and `out = rmsNorm(sum) · weight` (bf16) over `rows` rows of `dim`.
    public func addRMSNorm(
        _ x: CUdeviceptr, _ y: CUdeviceptr, sum: CUdeviceptr, weight: CUdeviceptr, output: CUdeviceptr,
        rows: Int, dim: Int, eps: Float, stream: CUDAStream
    ) throws {
        let name = Self.normKernel("add_rmsnorm_f32_to_bf16", rows: rows)
        let block = try Self.normBlock(name, dim: dim, addresses: [x, y, sum, weight, output])
        var a = KernelArguments()
        a.add(x)
        a.add(y)
        a.add(sum)
        a.add(weight)
        a.add(output)
        a.add(int: dim)
        a.add(eps)
        try library.function(name).launch(grid: (rows, 1, 1), block: (block, 1, 1), stream: stream, arguments: a)
    }

    /// `out = bf16(values · factor)` for a residual form's `normed` rows (`skinnyResidualLinear`),
    /// each row's factor from `rowScale`: the rows made whole for an op that does not take a row
    /// scale.
    public func applyRowScale(values: CUdeviceptr, rowScale: SkinnyRowScale, output: CUdeviceptr, rows: Int, dim: Int, stream: CUDAStream) throws {
        guard rows >= 1, rows <= Self.skinnyGEMMMaxRows, dim >= 1 else {
            throw CUDAError.invalidArgument("apply row scale: \(rows) rows of \(dim); a residual form has 1...\(Self.skinnyGEMMMaxRows) rows")
        }
        var a = KernelArguments()
        a.add(values)
        a.add(rowScale.squares)
        a.add(int: rowScale.parts)
        a.add(rowScale.epsilon)
        a.add(output)
        a.add(int: dim)
        try library.function("apply_row_scale_bf16").launch(grid: (rows, 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }

    /// The bf16-output norm kernel for `rows` rows: a single row takes the twin that lets the next
    /// kernel (the product reading the row) in before its own wait, so the product's first weight
    /// loads overlap the drain of the product before the norm. Whole 8B decode steps on an H100
    /// took 1.6% less at batch 1 (1B: 1.0-1.2%) and 18% more at batches 8 and 16, where the products
    /// after it ran a third slower (bench/results/cuda-graphs-h200.md, 2026-12-06).
    static func normKernel(_ kernel: String, rows: Int) -> String {
        rows == 1 ? kernel + "_next_first" : kernel
    }

    /// Threads per row of the norm kernels, which keep a row in registers as float4 chunks, at
    /// most four a thread (norm_rope.cu).
    static func normBlock(_ kernel: String, dim: Int, addresses: [CUdeviceptr]) throws -> Int {
        guard dim > 0, dim % 4 == 0, dim <= 4 * 4 * 1024 else {
            throw CUDAError.invalidArgument("\(kernel): rows of \(dim) elements; the kernel takes a multiple of 4 up to 16384")
        }
        guard addresses.allSatisfy({ $0 % 16 == 0 }) else { throw CUDAError.invalidArgument("\(kernel): tensors must be 16-byte aligned") }
        // Four chunks a thread: fewer warps to sum over, and every load still in flight at once.
        return min(1024, ((dim / 4 + 3) / 4 + 31) / 32 * 32)
    }

    /// The KV dtypes the kernels read and write.
    public static let kvDTypes: [KVDType] = [.bfloat16, .fp8e4m3]

    /// Checks that the kernels keep `layout`'s dtype and that `blockStride` (bytes) holds whole
    /// elements; answers the suffix of its kernels' names ("" for bf16, "_fp8").
    static func kvKernelSuffix(_ layout: KVBlockLayout, blockStride: Int, op: String) throws -> String {
        guard kvDTypes.contains(layout.dtype) else {
            throw CUDAError.invalidArgument("\(op): KV pool dtype \(layout.dtype); the CUDA kernels keep bf16 or fp8e4m3")
        }
        guard blockStride >= layout.blockBytes, blockStride % 16 == 0 else {
            throw CUDAError.invalidArgument(
                "\(op): a block stride of \(blockStride) bytes for blocks of \(layout.blockBytes) (needs at least that, a multiple of 16)")
        }
        // A warp holds an fp8 row for its scale search, 8 elements a lane (common.cuh, warp_row_load).
        if layout.dtype == .fp8e4m3, layout.headDim > 256 {
            throw CUDAError.invalidArgument("\(op): an fp8 pool's head dim \(layout.headDim) is over 256, the most its kernels code")
        }
        return layout.dtype == .fp8e4m3 ? "_fp8" : ""
    }

    /// Rotates the q and k heads of the fused q|k|v rows `qkv` (fp32, `tokens` rows of
    /// `(heads + 2·kvHeads)·headDim`) by `positions`, writes q to `qOutput` (fp32) and k, v into
    /// `layer` of the bf16 or fp8 pool (blocks `blockStride` bytes apart) at `slots` (Int32).
    public func ropeAndWriteKV(
        qkv: CUdeviceptr, heads: Int, positions: CUdeviceptr, inverseFrequencies: CUdeviceptr,
        slots: CUdeviceptr, qOutput: CUdeviceptr, pool: CUdeviceptr, blockStride: Int,
        tokens: Int, layer: Int, layout: KVBlockLayout, stream: CUDAStream
    ) throws {
        let suffix = try Self.kvKernelSuffix(layout, blockStride: blockStride, op: "rope + kv write")
        guard layout.headDim % 2 == 0 else { throw CUDAError.invalidArgument("rope: head dim \(layout.headDim) is odd") }
        guard layout.headDim <= 1024 else { throw CUDAError.invalidArgument("rope: head dim \(layout.headDim) is over 1024") }
        // About 128 threads a block: enough blocks for a decode batch to spread over the GPU.
        let half = layout.headDim / 2
        let perBlock = max(1, 128 / half)
        let allHeads = heads + 2 * layout.kvHeads
        var a = KernelArguments()
        a.add(qkv)
        a.add(int: heads)
        a.add(int: layout.kvHeads)
        a.add(int: layout.headDim)
        a.add(int: perBlock)
        a.add(positions)
        a.add(inverseFrequencies)
        a.add(slots)
        a.add(qOutput)
        a.add(pool)
        a.add(int: layer)
        a.add(int: layout.blockTokens)
        a.add(Int64Arg(blockStride / layout.dtype.size))
        if layout.dtype.isScaled { a.add(Int64Arg(layout.elementBytes)) }
        // cos and sin; an fp8 pool adds each head's row, largest |x|, scale and inverse.
        let shared = (layout.headDim + (layout.dtype.isScaled ? perBlock * (layout.headDim + 3) : 0)) * 4
        try library.function("rope_qkv_write_kv" + suffix).launch(
            grid: (tokens, (allHeads + perBlock - 1) / perBlock, 1), block: (perBlock * half, 1, 1),
            sharedBytes: shared, stream: stream, arguments: a)
    }

    /// Writes `tokens` new K/V rows (fp32, rows `kvStride` apart) into the bf16 or fp8 block-major
    /// pool (blocks `blockStride` bytes apart) at `slots` (Int32 block · blockTokens + offset) for
    /// `layer`, unrotated: how the checks and benchmarks fill a pool (the model uses
    /// `ropeAndWriteKV`). An fp8 pool takes at most 32 KV heads (a warp each).
    public func writeKV(
        pool: CUdeviceptr, blockStride: Int, k: CUdeviceptr, v: CUdeviceptr, kvStride: Int, slots: CUdeviceptr,
        tokens: Int, layer: Int, layout: KVBlockLayout, stream: CUDAStream
    ) throws {
        let fp8 = try Self.kvKernelSuffix(layout, blockStride: blockStride, op: "kv write") == "_fp8"
        if fp8, layout.kvHeads > 32 {
            throw CUDAError.invalidArgument("kv write (fp8): \(layout.kvHeads) KV heads; the kernel takes up to 32")
        }
        // Both kernels take the same leading arguments; their layouts' own follow.
        var a = KernelArguments()
        a.add(pool)
        a.add(k)
        a.add(v)
        a.add(int: kvStride)
        a.add(slots)
        a.add(int: layer)
        a.add(int: layout.blockTokens)
        if fp8 {
            a.add(int: layout.kvHeads)
            a.add(int: layout.headDim)
            a.add(Int64Arg(blockStride))
            a.add(Int64Arg(layout.elementBytes))
            try library.function("kv_write_fp8").launch(grid: (tokens, 1, 1), block: (32 * layout.kvHeads, 1, 1), stream: stream, arguments: a)
            return
        }
        a.add(int: layout.tokenElements)
        a.add(Int64Arg(blockStride / 2))
        try library.function("kv_write_bf16").launch(
            grid: (tokens, 1, 1), block: (min(1024, (layout.tokenElements + 31) / 32 * 32), 1, 1), stream: stream, arguments: a)
    }

    /// Scratch sizes (floats) that `pagedAttention` needs for `rows` query rows.
    public static func attentionScratchFloats(rows: Int, qHeads: Int, headDim: Int, splits: Int) -> Int {
        rows * qHeads * splits * (2 + headDim)
    }

    /// The number of context splits for a longest context of `maxContext` tokens, where `resident`
    /// blocks of the decode kernel fit on one multiprocessor: at least blocks (query row, KV head,
    /// split) for half the places the device has for them (half the multiprocessors for bf16's one
    /// block each, as many blocks as multiprocessors for fp8's two); as many as fit on them all
    /// where each split still reads 2048 tokens or more; at least one split per `splitTokens`
    /// tokens (8192 by default), so that one long row among short ones is still spread over
    /// several multiprocessors; at least 128 tokens per split. A graph step's `maxContext` is its
    /// context class, up to twice its longest context.
    ///
    /// From whole decode steps of the 8B shape on an H100 (fp8-kv.md, 2026-12-05): fp8 blocks of
    /// head dim 128 fit two to a multiprocessor, and at batch 16 the second block's split won at
    /// 2K (1.5%) and 8K (4.5%) contexts, and at batch 8 x 8K 4 splits beat 2 (0.6%); bf16 blocks
    /// fit one, and at batch 16 one split beat two at 2K (2.9%) and 8K (1.2%). At batch 1 the
    /// second block's 32 splits of 128-256 tokens lost 1% to 16. Past 8192 tokens at batch 16, 2
    /// splits beat 4 by 0.7-1.9% (fp8 and bf16, up to 12K), hence the 8192-token span. Half the
    /// places rather than one block a multiprocessor (2026-12-06, H100, cuda-graphs-h200.md): over
    /// bf16 at 2K contexts 8 splits at batch 1 took 0.6% off the step, 4 at batch 2 2.5%, 2 at batch
    /// 4 0.5% (batch 8: 1 split, a tie; 8 beat 16 at batch 1 on an H200 too), and at 8K 0.5% (batch
    /// 1) and 0.3% (2); over fp8 half the multiprocessors lost 1.6% at batch 2 x 2K.
    public static func attentionSplits(
        maxContext: Int, rows: Int, kvHeads: Int, multiprocessors: Int, resident: Int = 1, splitTokens: Int = 8192
    ) -> Int {
        let work = max(1, rows * kvHeads)
        let places = multiprocessors * max(1, resident)
        let halfThePlaces = places / (2 * work)
        let allResident = min(places / work, maxContext / 2048)
        let span = max(leastSplitTokens, splitTokens)
        let wanted = max(halfThePlaces, allResident, (maxContext + span - 1) / span)
        return max(1, min(wanted, mostSplits(maxContext: maxContext)))
    }

    /// `attentionSplits` on this device for a pool of `layout`, with the residency of the decode
    /// kernel its head dim and dtype take and the `HIFC_CUDA_DECODE_SPLIT_TOKENS` setting: what
    /// every decode attention launch of hifc uses. `HIFC_CUDA_DECODE_SPLITS` replaces the count,
    /// still at least 128 tokens a split.
    public func attentionSplits(maxContext: Int, rows: Int, layout: KVBlockLayout) -> Int {
        if let decodeSplitsOverride { return min(decodeSplitsOverride, CUDAKernels.mostSplits(maxContext: maxContext)) }
        return CUDAKernels.attentionSplits(
            maxContext: maxContext, rows: rows, kvHeads: layout.kvHeads, multiprocessors: library.device.info.multiprocessors,
            resident: decodeAttentionResidency[DecodeKernelKey(headDim: layout.headDim, dtype: layout.dtype)] ?? 1,
            splitTokens: decodeSplitTokens)
    }

    /// The fewest tokens a decode attention split takes: one stage of the head-dim-128 kernel (8
    /// warps of 16 keys), so that no split leaves its block's warps without keys.
    static let leastSplitTokens = 128

    /// The most splits a longest context of `maxContext` tokens takes: at least
    /// `leastSplitTokens` each, and always one.
    static func mostSplits(maxContext: Int) -> Int {
        max(1, (maxContext + leastSplitTokens - 1) / leastSplitTokens)
    }

    /// How many blocks of each tensor-core decode kernel (the split form, whose shared memory the
    /// cluster form shares) fit on one multiprocessor, from the driver. A kernel whose shared
    /// memory is more than this device lets a block have is left out: it cannot launch here, and
    /// asking would fail the whole backend's start for models that never use it.
    static func decodeAttentionResidency(library: KernelLibrary) throws -> [DecodeKernelKey: Int] {
        var resident: [DecodeKernelKey: Int] = [:]
        for headDim in [64, 128, 256] {
            for dtype in [KVDType.bfloat16, .fp8e4m3] {
                guard let launch = decodeAttentionLaunch(headDim: headDim, group: 1, dtype: dtype),
                    launch.sharedBytes <= library.device.info.maxSharedMemoryPerBlock
                else { continue }
                resident[DecodeKernelKey(headDim: headDim, dtype: dtype)] = try library.function(launch.kernel).residentBlocksPerMultiprocessor(
                    threads: launch.threads, sharedBytes: launch.sharedBytes)
            }
        }
        return resident
    }

    /// The most keys one query row attends to: the longest context, or a shorter sliding window.
    public static func attendedSpan(maxContext: Int, window: Int?) -> Int {
        min(maxContext, window ?? maxContext)
    }

    /// Checks that the attention kernels' division-free block lookup (`block_index`, common.cuh)
    /// is exact for every position of a context: it is while context · blockTokens <= 2^32.
    public static func checkBlockIndexing(maxContext: Int, blockTokens: Int) throws {
        guard maxContext * blockTokens <= 1 << 32 else {
            throw CUDAError.invalidArgument(
                "attention: a context of \(maxContext) tokens in blocks of \(blockTokens) exceeds the kernels' 2^32 limit on context x block tokens")
        }
    }

    /// The tensor-core decode kernel for a head dim of 64, 128 or 256 and up to 8 query heads per
    /// KV head; nil where only the general kernel applies.
    static func wideAttentionKernel(headDim: Int, group: Int, dtype: KVDType = .bfloat16, splits: Int = 1, clusters: Bool = false) -> String? {
        decodeAttentionLaunch(headDim: headDim, group: group, dtype: dtype, splits: splits, clusters: clusters)?.kernel
    }

    /// The decode kernel's name, threads per block and dynamic shared memory, as attention.cu
    /// instantiates it: over bf16, Q's 16-row tile, then three stages of K and V rows, 16 keys per
    /// warp each; over fp8, stages of K and V codes and their scales (Q stays in registers): three
    /// at head dim 128, so that two blocks share a multiprocessor, five at 64 and 256. At head dim
    /// 128 and exactly 2 `splits`, on a device with thread block `clusters`, the kernel is the
    /// `_cluster2` form, whose two blocks combine their splits themselves (`combinesSplits`: no
    /// `paged_attention_combine` after it): a whole fp8 decode step at batch 16 x 7936 took 1.5%
    /// less with it than with the split kernel and the combine (fp8-kv.md, H100). A cluster of 4
    /// at 4 splits made the step 5.7% slower (branch `experiment/cluster4-decode`).
    static func decodeAttentionLaunch(headDim: Int, group: Int, dtype: KVDType = .bfloat16, splits: Int = 1, clusters: Bool = false)
        -> (kernel: String, threads: Int, sharedBytes: Int, combinesSplits: Bool)?
    {
        guard [64, 128, 256].contains(headDim), group >= 1, group <= 8 else { return nil }
        let warps = headDim == 128 ? 8 : 4
        let keysPerStage = warps * 16
        let cluster = clusters && headDim == 128 && splits == 2
        let name = "paged_attention_decode_d\(headDim)" + (dtype == .fp8e4m3 ? "_fp8" : "") + (cluster ? "_cluster2" : "")
        if dtype == .fp8e4m3 {
            return (name, 32 * warps, (headDim == 128 ? 3 : 5) * (2 * headDim + 8) * keysPerStage, cluster)
        }
        return (name, 32 * warps, (16 + 2 * 3 * keysPerStage) * headDim * 2, cluster)
    }

    /// Paged attention for `rows` query rows (fp32 q, rows `qStride` apart) over the bf16 or fp8
    /// pool (blocks `blockStride` bytes apart);
    /// row r reads the block table row `rowTable[r]` and attends to its first `contextLengths[r]`
    /// tokens. Output is bf16 `[rows, qHeads · headDim]`. `scratch` holds
    /// `attentionScratchFloats` floats. `freshTokens`: how many of each row's newest positions the
    /// kernel queued just before this one may still be writing (1 in a decode step, after
    /// `ropeAndWriteKV`); the tensor-core kernel reads older ones before it waits for that kernel.
    /// Pass `Int(Int32.max)` when the pool may be written anywhere. With a sliding `window`, row r
    /// attends only to its last `window` tokens, and `splits` divide those: into equal spans of
    /// `maxContext`'s, or with `splitsEachRow` each row's own keys into `splits` equal spans
    /// (a CUDA graph's launch, whose `maxContext` is a bound rather than the step's longest row).
    public func pagedAttention(
        q: CUdeviceptr, qStride: Int, pool: CUdeviceptr, blockStride: Int, blockTables: CUdeviceptr, tableStride: Int,
        rowTable: CUdeviceptr, contextLengths: CUdeviceptr, maxContext: Int, output: CUdeviceptr,
        rows: Int, qHeads: Int, layer: Int, layout: KVBlockLayout, scale: Float, window: Int? = nil, splits: Int, freshTokens: Int,
        splitsEachRow: Bool = false, scratch: CUdeviceptr, stream: CUDAStream
    ) throws {
        let hd = layout.headDim
        guard hd > 0, hd <= 256 else { throw CUDAError.invalidArgument("attention: head dim \(hd) must be at most 256") }
        guard qHeads % layout.kvHeads == 0, qHeads / layout.kvHeads <= 8 else {
            throw CUDAError.invalidArgument("attention: \(qHeads) query heads over \(layout.kvHeads) KV heads (at most 8 per KV head)")
        }
        let suffix = try Self.kvKernelSuffix(layout, blockStride: blockStride, op: "attention")
        try Self.checkBlockIndexing(maxContext: maxContext, blockTokens: layout.blockTokens)
        if let window, window < 1 { throw CUDAError.invalidArgument("attention: a sliding window of \(window) tokens") }
        let splits = max(1, splits)
        // 0 tells the kernels to split each row's own span (attention.cu, split_span).
        let tokensPerSplit = splitsEachRow ? 0 : max(1, (Self.attendedSpan(maxContext: maxContext, window: window) + splits - 1) / splits)
        let parts = rows * qHeads * splits
        let partM = scratch
        let partL = scratch + UInt64(parts * 4)
        let partAcc = scratch + UInt64(parts * 8)
        var a = KernelArguments()
        a.add(q)
        a.add(int: qStride)
        a.add(pool)
        a.add(blockTables)
        a.add(int: tableStride)
        a.add(rowTable)
        a.add(contextLengths)
        a.add(partM)
        a.add(partL)
        a.add(partAcc)
        a.add(int: qHeads)
        a.add(int: layout.kvHeads)
        a.add(int: hd)
        a.add(int: layer)
        a.add(int: layout.blockTokens)
        a.add(Int64Arg(blockStride / layout.dtype.size))
        a.add(int: tokensPerSplit)
        a.add(scale)
        a.add(int: window.map { min($0, Int(Int32.max)) } ?? 0)
        let group = qHeads / layout.kvHeads
        if let decode = CUDAKernels.decodeAttentionLaunch(
            headDim: hd, group: group, dtype: layout.dtype, splits: splits, clusters: decodeClusters)
        {
            a.add(output)
            a.add(int: min(max(0, freshTokens), Int(Int32.max)))
            if layout.dtype.isScaled { a.add(Int64Arg(layout.elementBytes)) }
            try library.function(decode.kernel).launch(
                grid: (rows, layout.kvHeads, splits), block: (decode.threads, 1, 1),
                sharedBytes: decode.sharedBytes, stream: stream, arguments: a)
            // One split's block, or a cluster of the splits' blocks, wrote the output itself.
            if splits == 1 || decode.combinesSplits { return }
        } else {
            if layout.dtype.isScaled { a.add(Int64Arg(layout.elementBytes)) }
            let general = "paged_attention_partial_" + (hd <= 128 && group <= 4 ? "e4g4" : hd <= 128 ? "e4g8" : "e8g8") + suffix
            try library.function(general).launch(grid: (rows, layout.kvHeads, splits), block: (128, 1, 1), stream: stream, arguments: a)
        }
        var c = KernelArguments()
        c.add(partM)
        c.add(partL)
        c.add(partAcc)
        c.add(output)
        c.add(int: qHeads)
        c.add(int: hd)
        c.add(int: splits)
        try library.function("paged_attention_combine").launch(grid: (rows, qHeads, 1), block: (hd, 1, 1), stream: stream, arguments: c)
    }

    /// `out[r]` = index of the largest of row r's `vocab` fp32 logits (Int32), the smallest such
    /// index on ties. `clustered` (by default `pickClusters`; only on a device with clusters) has
    /// eight blocks share each row: one block alone took 10 us of every 8B decode step for a
    /// 128K-logit row (H200).
    public func argmax(logits: CUdeviceptr, rows: Int, vocab: Int, output: CUdeviceptr, stream: CUDAStream, clustered: Bool? = nil) throws {
        var a = KernelArguments()
        a.add(logits)
        a.add(int: vocab)
        a.add(output)
        let (kernel, blocksPerRow) = try clusterForm(clustered, "argmax_f32")
        try library.function(kernel).launch(grid: (rows * blocksPerRow, 1, 1), block: (1024, 1, 1), stream: stream, arguments: a)
    }

    /// The kernel `name` or its cluster-of-8 form `name_cluster8` as `clustered` asks (by default
    /// `pickClusters`), with the blocks it takes a row; the cluster form only where the device has
    /// clusters.
    private func clusterForm(_ clustered: Bool?, _ name: String) throws -> (kernel: String, blocksPerRow: Int) {
        guard clustered != true || library.device.info.hasClusters else {
            throw CUDAError.invalidArgument("\(name)_cluster8 needs thread block clusters (compute capability 9.0 or later)")
        }
        return clustered ?? pickClusters ? ("\(name)_cluster8", 8) : (name, 1)
    }

    /// Overwrites `output[r]` (Int32) with the token row r's draw picks from its logits (f32,
    /// `vocab` apart), soft-capped by `softcap` when it is above 0, as `TokenDraw.pick` does on the
    /// host; rows whose draw has no temperature keep what `output` held (the argmax queued
    /// before). `draws` holds `packedDraws`' words. `clustered` (by default `pickClusters`; only
    /// on a device with clusters) has eight blocks share each row: one block alone walked a
    /// 128K-logit row for 1.2 ms (H100, top-p).
    public func sampleRows(
        logits: CUdeviceptr, rows: Int, vocab: Int, draws: CUdeviceptr, softcap: Float, output: CUdeviceptr, stream: CUDAStream,
        clustered: Bool? = nil
    ) throws {
        var a = KernelArguments()
        a.add(logits)
        a.add(int: vocab)
        a.add(draws)
        a.add(softcap)
        a.add(output)
        let (kernel, blocksPerRow) = try clusterForm(clustered, "sample_rows_f32")
        try library.function(kernel).launch(grid: (rows * blocksPerRow, 1, 1), block: (1024, 1, 1), stream: stream, arguments: a)
    }

    /// `draws` as sampling.cu's `RowDraw` array: per row six 32-bit words (temperature, top_p and
    /// min_p as f32 bits, top_k, then the uniform as f64 bits, low word first); a row without a
    /// draw has temperature 0.
    public static func packedDraws(_ draws: [TokenDraw?]) -> [Int32] {
        draws.flatMap { draw -> [Int32] in
            guard let draw else { return [0, 0, 0, 0, 0, 0] }
            let uniform = draw.uniform.bitPattern
            return [
                Int32(bitPattern: draw.temperature.bitPattern), Int32(bitPattern: draw.topP.bitPattern),
                Int32(bitPattern: draw.minP.bitPattern), Int32(clamping: draw.topK),
                Int32(bitPattern: UInt32(truncatingIfNeeded: uniform)), Int32(bitPattern: UInt32(truncatingIfNeeded: uniform >> 32)),
            ]
        }
    }

    /// `tokenIDs[r] = previous[feedRows[r]]` for each of `rows` rows whose `feedRows` entry is in
    /// `0..<previousRows` (Int32 arrays): a step's token ids from the step before's picks.
    public func feedTokens(
        tokenIDs: CUdeviceptr, feedRows: CUdeviceptr, rows: Int, previous: CUdeviceptr, previousRows: Int, stream: CUDAStream
    ) throws {
        var a = KernelArguments()
        a.add(tokenIDs)
        a.add(feedRows)
        a.add(int: rows)
        a.add(previous)
        a.add(int: previousRows)
        try library.function("feed_tokens").launch(grid: ((rows + 255) / 256, 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }

}

/// A C `long` kernel argument.
struct Int64Arg {
    let value: Int64
    init(_ v: Int) { value = Int64(v) }
}

extension KernelArguments {
    /// Appends a C `long`.
    mutating func add(_ v: Int64Arg) { add(raw: v.value) }
}

extension CUDAKernels {
    /// Pieces the GPU checksums separately before the host combines them.
    public static let checksumPieceBytes = 16 * 1024

    /// Joins the pieces' CRCs; its shift operator depends only on the piece size, so one serves
    /// every call.
    static let checksumCombiner = CRC32CCombiner(pieceBytes: checksumPieceBytes)

    /// Bytes of device scratch `crc32c` needs for `blocks` blocks of `bytes` bytes each: the
    /// blocks' addresses, then the CRC of every piece.
    public static func checksumScratchBytes(blocks: Int, bytes: Int) -> Int {
        blocks * (8 + (bytes + checksumPieceBytes - 1) / checksumPieceBytes * 4)
    }

    /// CRC32C of each of `blocks` buffers of `bytes` bytes each (16-byte aligned), after the work
    /// queued on `stream`: one launch checksums the pieces of all of them into `scratch` (at least
    /// `checksumScratchBytes`), then one wait and one copy bring the pieces to the host to be
    /// combined. `scratch` must not be in use by another call meanwhile.
    public func crc32c(blocks: [CUdeviceptr], bytes: Int, scratch: DeviceBuffer, stream: CUDAStream) throws -> [UInt32] {
        let piece = CUDAKernels.checksumPieceBytes
        guard !blocks.isEmpty else { return [] }
        let needed = CUDAKernels.checksumScratchBytes(blocks: blocks.count, bytes: bytes)
        guard scratch.bytes >= needed else {
            throw CUDAError.invalidArgument(
                "checksum scratch of \(scratch.bytes) bytes for \(blocks.count) blocks of \(bytes) bytes (needs \(needed))")
        }
        let pieces = (bytes + piece - 1) / piece
        let crcs = scratch.address + UInt64(blocks.count * 8)
        try blocks.withUnsafeBytes { try stream.copy(from: $0.baseAddress!, to: scratch.address, bytes: $0.count) }
        // grid.y is at most 65535 blocks a launch.
        for first in stride(from: 0, to: blocks.count, by: 65535) {
            let count = min(65535, blocks.count - first)
            var a = KernelArguments()
            a.add(scratch.address + UInt64(first * 8))
            a.add(Int64Arg(bytes))
            a.add(int: piece)
            a.add(crcs + UInt64(first * pieces * 4))
            try library.function("crc32c_blocks").launch(grid: ((pieces + 127) / 128, count, 1), block: (128, 1, 1), stream: stream, arguments: a)
        }
        var host = [UInt32](repeating: 0, count: blocks.count * pieces)
        try stream.synchronize()
        try host.withUnsafeMutableBytes { try library.device.copy(from: crcs, to: $0.baseAddress!, bytes: $0.count) }
        return (0..<blocks.count).map {
            CUDAKernels.checksumCombiner.combine(pieces: Array(host[($0 * pieces)..<(($0 + 1) * pieces)]), lastBytes: bytes - (pieces - 1) * piece)
        }
    }

    /// Fills `bytes` (a multiple of 4) with pseudo-random bits from `seed`.
    public func fillRandom(_ data: CUdeviceptr, bytes: Int, seed: UInt64, stream: CUDAStream) throws {
        var a = KernelArguments()
        a.add(data)
        a.add(Int64Arg(bytes / 4))
        a.add(raw: seed)
        try library.function("fill_random_u32").launch(grid: (4096, 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }
}

extension CUDAKernels {
    /// Turns random fp32 bit patterns into ordinary numbers in [-0.5, 0.5).
    public func normalizeRandomF32(_ x: CUdeviceptr, count n: Int, stream: CUDAStream) throws {
        var a = KernelArguments()
        a.add(x)
        a.add(Int64Arg(n))
        try library.function("normalize_random_f32").launch(grid: (4096, 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }

    /// Turns random bf16 bit patterns into ordinary numbers in [-0.5, 0.5).
    public func normalizeRandomBF16(_ x: CUdeviceptr, count n: Int, stream: CUDAStream) throws {
        var a = KernelArguments()
        a.add(x)
        a.add(Int64Arg(n))
        try library.function("normalize_random_bf16").launch(grid: (4096, 1, 1), block: (256, 1, 1), stream: stream, arguments: a)
    }
}
