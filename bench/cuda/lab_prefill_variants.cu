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

// Persistent CTAs (FlashAttention-3's scheduling, statically): one CTA a multiprocessor, grid
// (ctas), each taking work units blockIdx.x, + gridDim.x, ... of the kv_heads · `slices` units,
// KV head fastest (the slices come heaviest first, so each CTA's units cost about the same). The
// copying warp runs through its units' K/V tiles without a break: the stage ring and its phases
// continue from one unit to the next (`it`), so the next unit's first tiles are in flight while the
// computing warpgroups finish the current one, write its output and read the next Q. Otherwise
// prefill_attention_hopper_body, through the same pieces.
template <bool ILP>
__device__ __forceinline__ void lab_hopper_persistent_body(
    const float* __restrict__ q, int q_stride, const bf16_t* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride, const int4* __restrict__ tiles,
    bf16_t* __restrict__ out, int q_heads, int kv_heads, int layer, int block_tokens, long block_stride,
    float scale, int window, const void* __restrict__ kv_map, int slices)
{
    constexpr int STAGES = 3, CONSUMER_REGS = 232, PRODUCERS = 128, CONSUMERS = 256;
    extern __shared__ __align__(1024) unsigned char pa_smem[];
    const hopper_smem<STAGES> sm(pa_smem);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int group = q_heads / kv_heads;
    const int units = kv_heads * slices;
    if (tid == 0) hopper_init_barriers(sm);
    const float qs = scale * PA_LOG2E;
    __syncthreads();

    if (wg == 0) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
        if (warp != 0) return;
        if (lane == 0) asm volatile("prefetch.tensormap [%0];\n" :: "l"(kv_map) : "memory");
        const unsigned int bt_magic = block_index_magic(block_tokens);
        const hopper_copier copier(lane);
        int it = 0;
        for (int u = blockIdx.x; u < units; u += gridDim.x) {
            pa_slice slice;
            if (!pa_take_slice<128, 128>(tiles, group, window, u / kv_heads, slice)) continue;
            const int* table = block_tables + (long)slice.tile.z * table_stride;
            for (int t = 0; t < slice.n_tiles; ++t, ++it)
                hopper_copy_tile(sm, slice, table, bt_magic, block_tokens, u % kv_heads, layer, kv_map, t, it, copier);
        }
        return;
    }

    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" :: "n"(CONSUMER_REGS) : "memory");
    const int cwarp = warp - 4, g = lane >> 2, tq = lane & 3;
    int it = 0;
    bool first = true;
    for (int u = blockIdx.x; u < units; u += gridDim.x) {
        const int kvh = u % kv_heads;
        pa_slice slice;
        if (!pa_take_slice<128, 128>(tiles, group, window, u / kv_heads, slice)) continue;
        // Both computing warpgroups have read the previous unit's Q (each thread writes rows of both halves).
        if (!first) asm volatile("bar.sync 3, %0;\n" :: "n"(CONSUMERS) : "memory");
        first = false;
        hopper_load_q(sm, q, q_stride, slice, kvh, group, qs, tid - PRODUCERS);
        hopper_rows r(slice, cwarp, g, group, window);
        for (int t = 0; t < slice.n_tiles; ++t, ++it) hopper_consume_tile<STAGES, ILP>(sm, slice, r, t, it, wg, tid, tq);
        hopper_store_rows(r, slice, out, q_heads, kvh, group, cwarp, g, tq);
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
