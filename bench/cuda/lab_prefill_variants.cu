// Lab-only configurations of prefill_attention.cu's Hopper kernel, appended to it by
// lab_prefill_attention.py and named in its HOPPER_VARIANTS: `wide` below (prepared 2026-12-06, not yet run on a GPU). Those timed before
// (cp.async copies, intra-warpgroup overlap, ping-pong, early scores, the split prologue, the online
// softmax in four independent partials, persistent CTAs over 8-token copies, ping-pong alone on
// the TMA kernel, and the FlashAttention-3 schedule with boxes of 8 and of whole blocks, and
// persistent CTAs in a snake order over it, both hifc's now) are in
// bench/results/prefill-attention-h200.md and -h100.md with the commits that had them.

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// `wide`: the epilogue in 16-byte stores. hopper_store_rows has each thread store its rows in
// sixteen 4-byte pieces (a warp's store: 8 rows x 16 bytes, half of each 32-byte sector); Nsight
// Compute at 512 tokens found 5% of the warps' samples draining stores at EXIT (2026-12-06). Here
// the four lanes of a quad, which hold 2 columns each of every 8, swap their words in a 4 x 4
// transpose (two rounds of shuffles, 2 and 1 apart), so that a lane holds 8 consecutive columns:
// four 16-byte stores a row, a warp's store 8 rows x 64 bytes.
struct hopper_store_rows_wide {
    __device__ __forceinline__ void operator()(const hopper_rows& r, const pa_slice& slice, bf16_t* __restrict__ out, int q_heads, int kvh,
                                               int group, int cwarp, int g, int tq) const {
        constexpr int D = 128;
        const long out_stride = (long)q_heads * D;
        const bool b0 = tq & 1, b1 = tq & 2;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const float inv = r.inverse_sum(h);
            const int row = cwarp * 16 + g + 8 * h;
            bf16_t* dst = out + (long)(slice.tile.x + slice.tok0 + row / group) * out_stride + (long)(kvh * group + row % group) * D;
#pragma unroll
            for (int k = 0; k < D / 32; ++k) {
                // w[u]: this lane's columns 8 (4k + u) + 2 tq, + 1. After the transpose w[t] holds lane
                // t's columns of 8 (4k + tq) + 2t, + 1.
                unsigned int w[4];
#pragma unroll
                for (int u = 0; u < 4; ++u) w[u] = pack_bf16x2(r.o[4 * k + u][2 * h] * inv, r.o[4 * k + u][2 * h + 1] * inv);
                // The off-diagonal 2 x 2 blocks (lanes 2 apart, words 2 apart), then within each block.
#pragma unroll
                for (int s = 0; s < 2; ++s) {
                    const unsigned int got = __shfl_xor_sync(0xffffffffu, b1 ? w[s] : w[2 + s], 2);
                    if (b1) w[s] = got; else w[2 + s] = got;
                }
#pragma unroll
                for (int t = 0; t < 2; ++t) {
                    const unsigned int got = __shfl_xor_sync(0xffffffffu, b0 ? w[2 * t] : w[2 * t + 1], 1);
                    if (b0) w[2 * t] = got; else w[2 * t + 1] = got;
                }
                if (row < slice.used_rows) *reinterpret_cast<uint4*>(dst + (4 * k + tq) * 8) = make_uint4(w[0], w[1], w[2], w[3]);
            }
        }
    }
};

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

extern "C" __global__ void __launch_bounds__(384, 1) prefill_attention_d128_hopper_wide(PA_PARAMS, const void* __restrict__ kv_map, int slice_units) {
    wait_for_previous_kernel();
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    prefill_attention_hopper_body<128, 3, 232, hopper_store_rows_wide>(PA_ARGS, kv_map, slice_units);
#else
    __trap();
#endif
}
