// Lab-only configurations of prefill_attention.cu's Hopper kernel, appended to it by
// lab_prefill_attention.py and named in its HOPPER_VARIANTS. The variants timed before (cp.async
// copies, intra-warpgroup overlap, ping-pong, a prologue that had the copying warp look up three
// tiles' blocks before its share of Q, early scores, and the split prologue that is hifc's now) are
// in bench/results/prefill-attention-h200.md.

// The online softmax's row maxima and sums in four independent partials (pa_online_softmax's ILP).
extern "C" __global__ void __launch_bounds__(384, 1) prefill_attention_d128_hopper_ilp(PA_PARAMS, const void* __restrict__ kv_map) {
    wait_for_previous_kernel();
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    prefill_attention_hopper_body<128, 3, 232, true>(PA_ARGS, kv_map);
#else
    __trap();
#endif
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// pa_take_slice for work unit `index` (a slice of the tile table) instead of blockIdx.y.
__device__ __forceinline__ bool lab_take_slice_at(const int4* __restrict__ tiles, int group, int window, unsigned int index, pa_slice& s) {
    constexpr int BM = 128, BN = 128;
    const int tpc = min(PA_TILE_TOKENS, BM / group);
    const int slices = (PA_TILE_TOKENS + tpc - 1) / tpc;
    s.tile = tiles[index / slices];
    s.tok0 = (index % slices) * tpc;
    if (s.tok0 >= s.tile.y) return false;
    const int ntok = min(tpc, s.tile.y - s.tok0);
    s.used_rows = ntok * group;
    s.first_visible = s.tile.w + s.tok0;
    s.kv_end = s.first_visible + ntok - 1;
    s.t_first = window > 0 ? max(0, s.first_visible - window) / BN : 0;
    s.window_top = window > 0 ? s.kv_end - window : 0;
    s.n_tiles = (s.kv_end + BN - 1) / BN - s.t_first;
    return true;
}

// Persistent CTAs (FlashAttention-3's scheduling, statically): one CTA a multiprocessor, grid
// (ctas), each taking work units blockIdx.x, + gridDim.x, ... of the kv_heads · `slices` units,
// KV head fastest (the slices come heaviest first, so each CTA's units cost about the same). The
// copying warp runs through its units' K/V tiles without a break: the stage ring and its phases
// continue from one unit to the next, so the next unit's first tiles are in flight while the
// computing warpgroups finish the current one, write its output and read the next Q. Otherwise the
// body of prefill_attention_hopper_body (split prologue, ILP softmax as a template flag).
template <bool ILP>
__device__ __forceinline__ void lab_hopper_persistent_body(
    const float* __restrict__ q, int q_stride, const bf16_t* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride, const int4* __restrict__ tiles,
    bf16_t* __restrict__ out, int q_heads, int kv_heads, int layer, int block_tokens, long block_stride,
    float scale, int window, const void* __restrict__ kv_map, int slices)
{
    constexpr int BN = 128, STAGES = 3, CONSUMER_REGS = 232;
    constexpr int D = 128, BM = 128, CH = D / 8, PRODUCERS = 128, CONSUMERS = 256;
    constexpr unsigned int Q_BYTES = 64 * D * 2, TILE_BYTES = BN * D * 2;
    extern __shared__ __align__(1024) unsigned char pa_smem[];
    const unsigned int base = (smem_addr(pa_smem) + 1023) & ~1023u;
    const unsigned int sQ = base, sK = sQ + 2 * Q_BYTES, sV = sK + STAGES * TILE_BYTES;
    const unsigned int full = sV + STAGES * TILE_BYTES, empty = full + STAGES * 8;
    unsigned char* gQ = pa_smem + (base - smem_addr(pa_smem));

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int group = q_heads / kv_heads;
    const int units = kv_heads * slices;
    if (tid == 0) {
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(full + s * 8, 1);
            mbar_init(empty + s * 8, CONSUMERS);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    const float qs = scale * PA_LOG2E;
    __syncthreads();

    if (wg == 0) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
        if (warp != 0) return;
        if (lane == 0) asm volatile("prefetch.tensormap [%0];\n" :: "l"(kv_map) : "memory");
        const unsigned int bt_magic = block_index_magic(block_tokens);
        const int keys = 8 * (lane & 15), half = lane >> 4;
        const unsigned int at = half * (BN * 128) + keys * 128;
        int it = 0;  // tiles copied so far, over all of this CTA's units: the ring's position
        for (int u = blockIdx.x; u < units; u += gridDim.x) {
            const int kvh = u % kv_heads;
            pa_slice slice;
            if (!lab_take_slice_at(tiles, group, window, u / kv_heads, slice)) continue;
            const int* table = block_tables + (long)slice.tile.z * table_stride;
            for (int t = 0; t < slice.n_tiles; ++t, ++it) {
                const int s = it % STAGES;
                if (it >= STAGES) mbar_wait(empty + s * 8, ((it / STAGES) - 1) & 1);
                const int pos = (slice.t_first + t) * BN + keys;
                int block = 0, token = block_tokens;
                if (pos < slice.kv_end) {
                    const int b = block_index(pos, bt_magic);
                    block = table[b];
                    token = pos - b * block_tokens;
                }
                if (lane == 0) mbar_expect_bytes(full + s * 8, 2 * TILE_BYTES);
                __syncwarp();
                tma_load_5d(sK + s * TILE_BYTES + at, kv_map, full + s * 8, 64 * half, kvh, token, 2 * layer, block);
                tma_load_5d(sV + s * TILE_BYTES + at, kv_map, full + s * 8, 64 * half, kvh, token, 2 * layer + 1, block);
            }
        }
        return;
    }

    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" :: "n"(CONSUMER_REGS) : "memory");
    const int cwarp = warp - 4, g = lane >> 2, tq = lane & 3;
    const unsigned int my_q = sQ + (wg - 1) * Q_BYTES;
    const long out_stride = (long)q_heads * D;
    int it = 0;
    bool first = true;
    for (int u = blockIdx.x; u < units; u += gridDim.x) {
        const int kvh = u % kv_heads;
        pa_slice slice;
        if (!lab_take_slice_at(tiles, group, window, u / kv_heads, slice)) continue;
        const int4 tile = slice.tile;
        const int tok0 = slice.tok0, used_rows = slice.used_rows, first_visible = slice.first_visible, kv_end = slice.kv_end;
        const int t_first = slice.t_first, window_top = slice.window_top, n_tiles = slice.n_tiles;
        // Both computing warpgroups have read the previous unit's Q (each thread writes rows of both halves).
        if (!first) asm volatile("bar.sync 3, %0;\n" :: "n"(CONSUMERS) : "memory");
        first = false;
        constexpr int Q_PASSES = BM * CH / CONSUMERS;
        uint4 qc[Q_PASSES];
#pragma unroll
        for (int k = 0; k < Q_PASSES; ++k) {
            const int i = tid - PRODUCERS + k * CONSUMERS;
            qc[k] = pa_q_chunk<D>(q, q_stride, tile.x + tok0, kvh * group, group, i / CH, i % CH, used_rows, qs);
        }
#pragma unroll
        for (int k = 0; k < Q_PASSES; ++k) {
            const int i = tid - PRODUCERS + k * CONSUMERS, m = i / CH;
            *reinterpret_cast<uint4*>(gQ + (m >> 6) * Q_BYTES + wg_swz<64>(m & 63, i % CH)) = qc[k];
        }
        fence_proxy_async();
        asm volatile("bar.sync 3, %0;\n" :: "n"(CONSUMERS) : "memory");
        int lim[2], lo[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = cwarp * 16 + g + 8 * h;
            lim[h] = row < used_rows ? first_visible + row / group : first_visible;
            lo[h] = window > 0 ? lim[h] - window : 0;
        }
        float o[D / 8][4];
#pragma unroll
        for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
        float mx[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};
        for (int t = 0; t < n_tiles; ++t, ++it) {
            const int s = it % STAGES;
            mbar_wait(full + s * 8, (it / STAGES) & 1);
            const int n0 = (t_first + t) * BN;
            const int seen = kv_end - n0;
            if (seen < BN && (seen & 7)) {
                const int i = tid - 128 * wg, row = seen + i / CH;
                if (row < ((seen + 7) & ~7))
                    asm volatile("st.shared.v4.b32 [%0], {%1, %1, %1, %1};\n" :: "r"(sV + s * TILE_BYTES + wg_swz<BN>(row, i % CH)), "r"(0)
                                 : "memory");
                fence_proxy_async();
                asm volatile("bar.sync %0, 128;\n" :: "r"(wg) : "memory");
            }
            float sc[BN / 8][4];
            wg_issue_s(sc, my_q, sK + s * TILE_BYTES);
            wgmma_wait0();
            fence_operands<BN / 8>(sc);
            wg_softmax_pv<BN, ILP>(sc, o, mx, l, lim, lo, n0, n0 + BN > first_visible || n0 < window_top, tq, sV + s * TILE_BYTES);
            wgmma_wait0();
            fence_operands<D / 8>(o);
            mbar_arrive(empty + s * 8);
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float sum = l[h];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const float inv = 1.0f / sum;
            const int row = cwarp * 16 + g + 8 * h;
            if (row < used_rows) {
                bf16_t* dst = out + (long)(tile.x + tok0 + row / group) * out_stride + (long)(kvh * group + row % group) * D + 2 * tq;
#pragma unroll
                for (int j = 0; j < D / 8; ++j)
                    *reinterpret_cast<unsigned int*>(dst + j * 8) = pack_bf16x2(o[j][2 * h] * inv, o[j][2 * h + 1] * inv);
            }
        }
    }
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

// Grid (ctas): at most one a multiprocessor; `slices`: the tile table's tiles times slices a tile
// (the non-persistent kernels' gridDim.y).
extern "C" __global__ void __launch_bounds__(384, 1) prefill_attention_d128_hopper_persistent(PA_PARAMS, const void* __restrict__ kv_map,
                                                                                              int slices) {
    wait_for_previous_kernel();
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    lab_hopper_persistent_body<false>(PA_ARGS, kv_map, slices);
#else
    __trap();
#endif
}
extern "C" __global__ void __launch_bounds__(384, 1) prefill_attention_d128_hopper_persistent_ilp(PA_PARAMS, const void* __restrict__ kv_map,
                                                                                                  int slices) {
    wait_for_previous_kernel();
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    lab_hopper_persistent_body<true>(PA_ARGS, kv_map, slices);
#else
    __trap();
#endif
}
