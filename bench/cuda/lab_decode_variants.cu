// Lab-only configurations of attention.cu's decode kernels, appended to it by lab_decode_attention.py
// and named in its LAB_VARIANTS (bf16) and LAB_VARIANTS_FP8. Those timed before are in
// bench/results/decode-attention-h100.md, -h200.md and fp8-kv.md with the commits that had them;
// the set before this one (other warps, keys and stages for fp8, clusters of 8 and 16 blocks, one
// pool lookup a row, 2-block clusters) was timed on 2026-12-05 and is in commit 32f0cfc.

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// paged_attention_decode_d128 with its K/V stages brought by bulk tensor copies (TMA, the prefill
// Hopper kernel's tensor map of the pool: boxes of `box` tokens x 64 dims, 128-byte swizzle) in
// place of cp.async: at batch 16 the decode attention reads its K/V at 1.21x the copy time on the
// H200 (cuda-graphs-h200.md), where each thread queues 16 row pieces a stage; here one lane a box.
// The math is attention_decode_mma's. A tile's K (and V) is two 64-dim halves of BN rows of 128
// bytes, chunk c of row r at 16 · (c ^ (r & 7)) within its line (the copy's swizzle, so the
// ldmatrix reads of one chunk by eight rows still fall in eight bank groups). Tiles start on a box
// boundary at or before the split's first key, so that no box spans two pool blocks; keys before
// the split's first and from its end on are masked, and V rows past the sequence (pool slots of
// its last block not yet written, which may hold anything) are zeroed, since 0 · NaN is NaN.
template <int W, int KW, int S>
__device__ __forceinline__ void attention_decode_tma(DECODE_PARAMS, const void* __restrict__ kv_map) {
    constexpr int D = 128, CH = D / 8, BN = W * KW;
    constexpr unsigned int HALF = BN * 128, TILE = 2 * HALF, STAGE = 2 * TILE;  // bytes
    static_assert(KW % 16 == 0 && S * STAGE >= W * 8 * D * 4, "the warps' merge reuses the stages");
    extern __shared__ __align__(128) unsigned char decode_smem[];
    bf16_t* sQ = reinterpret_cast<bf16_t*>(decode_smem);  // [16][D], swz
    const unsigned int sQ_addr = smem_addr(sQ);
    // The stages from the first 1024-byte boundary past Q (the swizzle's period), then S mbarriers.
    const unsigned int stages = (sQ_addr + 16 * D * 2 + 1023) & ~1023u, full = stages + S * STAGE;
    __shared__ float sm_m[W * 8], sm_l[W * 8];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const decode_split<bf16_t> sp = decode_take_split<D, BN>(pool, block_tables, table_stride, row_table, ctx_len, q_heads, kv_heads, layer,
                                                             block_tokens, tokens_per_split, window);
    const int r = sp.r, kvh = sp.kvh, group = sp.group, start = sp.start, end = sp.end;
    const int box = min(128, block_tokens & -block_tokens);  // hopper_box_tokens (prefill_attention.cu)
    const int first = start - start % box;
    const int n_tiles = end > start ? (end - first + BN - 1) / BN : 0;
    auto at = [](int row, int c) { return (unsigned int)((c >> 3) * HALF + row * 128 + (((c & 7) ^ (row & 7)) << 4)); };

    if (tid == 0) {
        for (int s = 0; s < S; ++s) mbar_init(full + s * 8, 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    // Warp 0 queues tile t: lane i < 2 · BN / box brings keys box · (i mod (BN / box)) of the tile's
    // half i / (BN / box), of K and of V. A box from the split's end on is asked at a token past
    // its block, which the copy fills with zeros (and counts).
    auto load_kv = [&](int t) {
        if (warp != 0) return;
        const int per_half = BN / box;
        const unsigned int kb = stages + (t % S) * STAGE, bar = full + (t % S) * 8;
        if (lane == 0) mbar_expect_bytes(bar, 2 * TILE);
        __syncwarp();
        if (lane < 2 * per_half) {
            const int half = lane / per_half, keys = box * (lane % per_half), pos = first + t * BN + keys;
            int block = 0, token = block_tokens;
            if (pos < end) {
                const int bi = block_index(pos, sp.bt_magic);
                block = sp.table[bi];
                token = pos - bi * block_tokens;
            }
            const unsigned int dst = kb + half * HALF + keys * 128;
            tma_load_5d(dst, kv_map, bar, 64 * half, kvh, token, 2 * layer, block);
            tma_load_5d(dst + TILE, kv_map, bar, 64 * half, kvh, token, 2 * layer + 1, block);
        }
    };
    // As decode_first_stages: the first stages go before the wait for the previous kernel when they
    // hold only positions that predate it.
    const bool early = (long)min(end, start + (S - 1) * BN) + fresh_tokens <= (long)sp.len;
    auto load_first_stages = [&]() {
        for (int t = 0; t < S - 1 && t < n_tiles; ++t) load_kv(t);
    };
    if (early) load_first_stages();
    wait_for_previous_kernel();
    if (!early) load_first_stages();

    const float qs = scale * 1.4426950408889634f;
    for (int i = tid; i < 16 * CH; i += 32 * W) {
        const int m = i / CH, c = i % CH;
        uint4 w = make_uint4(0, 0, 0, 0);
        if (m < group) {
            const float* src = q + (long)r * q_stride + (long)(kvh * group + m) * D + c * 8;
            const float4 a = *reinterpret_cast<const float4*>(src), b = *reinterpret_cast<const float4*>(src + 4);
            w = make_uint4(pack_bf16x2(a.x * qs, a.y * qs), pack_bf16x2(a.z * qs, a.w * qs),
                           pack_bf16x2(b.x * qs, b.y * qs), pack_bf16x2(b.z * qs, b.w * qs));
        }
        *reinterpret_cast<uint4*>(sQ + swz<D>(m, c)) = w;
    }
    __syncthreads();
    unsigned int qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
        ldmatrix_x4(sQ_addr + swz<D>(lane & 15, kk * 2 + (lane >> 4)) * 2, qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3]);

    const int g = lane >> 2, tq = lane & 3;
    float o[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float mx = NEG_INF, l = 0.0f;

    for (int t = 0; t < n_tiles; ++t) {
        // Every warp is done with tile t - 1, whose stage the next copy overwrites.
        __syncthreads();
        if (t + S - 1 < n_tiles) load_kv(t + S - 1);
        const unsigned int kb = stages + (t % S) * STAGE, vb = kb + TILE;
        mbar_wait(full + (t % S) * 8, (t / S) & 1);
        const int tile0 = first + t * BN, past = sp.len - tile0;
        if (past >= 0 && past < BN && past % box) {
            // The box that the sequence's end cuts: its V rows from there on are zeroed.
            const int rows = box - past % box;
            for (int i = tid; i < rows * CH; i += 32 * W) {
                const int row = past + i / CH, c = i % CH;
                asm volatile("st.shared.v4.b32 [%0], {%1, %1, %1, %1};\n" :: "r"(vb + at(row, c)), "r"(0) : "memory");
            }
            __syncthreads();
        }
        const int key0 = warp * KW;

        float s[KW / 8][4];
#pragma unroll
        for (int j = 0; j < KW / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
            for (int j = 0; j < KW / 8; j += 2) {
                unsigned int b0, b1, b2, b3;
                const int key = key0 + j * 8 + (lane & 7) + ((lane >> 4) << 3);
                ldmatrix_x4(kb + at(key, kk * 2 + ((lane >> 3) & 1)), b0, b1, b2, b3);
                mma_bf16(s[j], qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], b0, b1);
                mma_bf16(s[j + 1], qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], b2, b3);
            }
        }

        const int pos0 = tile0 + key0 + 2 * tq;
        float x = mx;
#pragma unroll
        for (int j = 0; j < KW / 8; ++j) {
            const int p = pos0 + j * 8;
            if (p < start || p >= end) s[j][0] = NEG_INF;
            if (p + 1 < start || p + 1 >= end) s[j][1] = NEG_INF;
            x = fmaxf(x, fmaxf(s[j][0], s[j][1]));
        }
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
        float ref;
        const float corr = decode_rescale(x, mx, l, ref);
#pragma unroll
        for (int j = 0; j < D / 8; ++j) { o[j][0] *= corr; o[j][1] *= corr; }
        unsigned int pf[KW / 16][4];
#pragma unroll
        for (int j = 0; j < KW / 8; ++j) {
            const float p0 = exp2f(s[j][0] - ref), p1 = exp2f(s[j][1] - ref);
            l += p0 + p1;
            pf[j >> 1][(j & 1) * 2] = pack_bf16x2(p0, p1);
            pf[j >> 1][(j & 1) * 2 + 1] = 0u;
        }
#pragma unroll
        for (int kk = 0; kk < KW / 16; ++kk) {
#pragma unroll
            for (int j = 0; j < D / 8; j += 2) {
                unsigned int b0, b1, b2, b3;
                const int key = key0 + kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
                ldmatrix_x4_trans(vb + at(key, j + (lane >> 4)), b0, b1, b2, b3);
                mma_bf16(o[j], pf[kk][0], pf[kk][1], pf[kk][2], pf[kk][3], b0, b1);
                mma_bf16(o[j + 1], pf[kk][0], pf[kk][1], pf[kk][2], pf[kk][3], b2, b3);
            }
        }
    }

    // Merge the warps in the stages' memory: every copy queued was waited for above.
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    __syncthreads();
    float* sm_acc = reinterpret_cast<float*>(decode_smem + (stages - sQ_addr));  // [W][8][D]
    if (tq == 0) { sm_m[warp * 8 + g] = mx; sm_l[warp * 8 + g] = l; }
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
        sm_acc[(warp * 8 + g) * D + j * 8 + 2 * tq] = o[j][0];
        sm_acc[(warp * 8 + g) * D + j * 8 + 2 * tq + 1] = o[j][1];
    }
    __syncthreads();
    finish_decode_block<W, 8, D>(sm_m, sm_l, sm_acc, part_m, part_l, part_acc, out, q_heads, kv_heads);
}

extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_tma(DECODE_PARAMS, const void* __restrict__ kv_map) {
    attention_decode_tma<8, 16, 3>(DECODE_ARGS, kv_map);
}
#endif
