// Causal prefill attention over the paged KV pool on tensor cores, FlashAttention-2 style: each
// warp keeps 16 or 32 query rows (one or two m16 tiles) with their output in registers and the
// block streams the sequence's K/V through shared memory in 64-key tiles (cp.async, two or three
// tiles in flight), computing S = QKᵀ and O += PV with mma.sync m16n8k16 (bf16 in, fp32
// accumulate) and an online softmax held in registers; the scores never reach memory.
//
// Work comes from a tile table built on the host (CUDAPreparedStep): one int4 per tile of up to
// PA_TILE_TOKENS consecutive query tokens of one sequence, {first query row, tokens, block-table
// row, keys visible to the first token}; token j of the tile sees keys [0, visible + j). So any
// mix of prefill chunks (starting at position 0 or mid-sequence) and decode rows (1-token tiles)
// runs as one launch.
//
// Grouped-query heads are packed into the rows of a block: row m is token m / G, query head
// kv_head * G + m % G. The G heads sharing a KV head then read each K/V tile once, a decode row
// still fills G rows of the MMA, and the causal diagonal is cut at tokens rather than 64-row
// granularity. A block takes min(PA_TILE_TOKENS, BM / G) tokens of a tile ("a slice"); the grid is
// (kv_heads, tiles * slices_per_tile), so slices of one tile are neighbours and the host orders
// the table heaviest first.
//
// Over the fp8 pool (the _fp8 kernels, T = fp8_t; common.cuh) the STAGES tiles in flight are
// codes and scales, (2 * D + 8) * N bytes each, after one bf16 K and V tile that each key tile
// is turned into (scale applied) before the MMAs read it: one more barrier a tile, and the same
// code from there on.

#define PA_TILE_TOKENS 64
#define PA_LOG2E 1.4426950408889634f

// ex2.approx with denormals flushed: exp2f's denormal handling would add three instructions per
// score, and a probability under 2^-126 of the row's largest adds nothing to its sum.
__device__ __forceinline__ float pa_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// STAGES K/V tiles are in flight: tile t + STAGES - 1 is requested right after the barrier that
// opens iteration t, into the buffer of tile t - 1, which every warp has finished reading by then;
// so one barrier per key tile suffices.
template <int D, int WARPS, int MT, int BN, int STAGES, typename T>
__device__ __forceinline__ void prefill_attention_body(
    const float* __restrict__ q, int q_stride, const T* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride, const int4* __restrict__ tiles,
    bf16_t* __restrict__ out, int q_heads, int kv_heads, int layer, int block_tokens, long block_stride,
    float scale, int window, long scale_offset)
{
    constexpr bool FP8 = sizeof(T) == 1;
    constexpr int BM = 16 * MT * WARPS, CH = D / 8, THREADS = 32 * WARPS;
    constexpr int BUFS = FP8 ? 1 : STAGES;             // bf16 K/V tiles
    constexpr int RAW = 2 * BN * D + 8 * BN;           // bytes per fp8 tile: K codes, V codes, K scales, V scales
    constexpr int C16 = D / 16;                        // 16-byte chunks of an fp8 row
    static_assert(!FP8 || (BN * C16) % THREADS == 0, "fp8 copies must tile the key tile");
    constexpr int COPY_ROWS = THREADS / CH;            // K/V rows one pass of the block copies
    static_assert(THREADS % CH == 0 && BN % COPY_ROWS == 0, "copy passes must tile the key tile");
    constexpr unsigned int TILE_BYTES = BN * D * 2;
    extern __shared__ __align__(128) unsigned char pa_smem[];
    bf16_t* sQ = reinterpret_cast<bf16_t*>(pa_smem);   // [BM][D]
    bf16_t* sK = sQ + BM * D;                          // [BUFS][BN][D]
    bf16_t* sV = sK + BUFS * BN * D;                   // [BUFS][BN][D]
    unsigned char* sRaw = reinterpret_cast<unsigned char*>(sV + BUFS * BN * D);  // fp8: [STAGES][RAW]

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int kvh = blockIdx.x;
    const int group = q_heads / kv_heads;
    const int tpc = min(PA_TILE_TOKENS, BM / group);
    const int slices = (PA_TILE_TOKENS + tpc - 1) / tpc;
    const int4 tile = tiles[blockIdx.y / slices];      // {first row, tokens, table row, visible}
    const int tok0 = (blockIdx.y % slices) * tpc;
    if (tok0 >= tile.y) return;
    const int ntok = min(tpc, tile.y - tok0);
    const int used_rows = ntok * group;
    const int first_visible = tile.w + tok0;           // keys the slice's first token sees
    const int kv_end = first_visible + ntok - 1;       // keys its last token sees
    // With a sliding window (window > 0) token j of the slice sees keys [first_visible + j -
    // window, first_visible + j): key tiles wholly before the first token's window are skipped.
    const int t_first = window > 0 ? max(0, first_visible - window) / BN : 0;
    const int window_top = window > 0 ? kv_end - window : 0;   // no row masks keys from here up
    const int n_tiles = (kv_end + BN - 1) / BN - t_first;
    const int* table = block_tables + (long)tile.z * table_stride;
    const int token_elems = kv_heads * D;
    const long v_offset = (long)block_tokens * token_elems;

    // Each thread copies one 16-byte chunk column of rows copy_row + k * COPY_ROWS of every tile.
    const int copy_chunk = tid % CH, copy_row = tid / CH;
    const T* k_layer = pool + (long)(layer * 2) * block_tokens * token_elems + (long)kvh * D;
    const T* k_src = k_layer + copy_chunk * 8;
    const unsigned int bt_magic = block_index_magic(block_tokens);
    const unsigned int sK_addr = smem_addr(sK), sV_addr = smem_addr(sV);
    auto load_kv = [&](int t, int buf) {
        const int n0 = (t_first + t) * BN;
        if constexpr (FP8) {
            const unsigned int kb = smem_addr(sRaw) + buf * RAW, vb = kb + BN * D, ksb = vb + BN * D, vsb = ksb + BN * 4;
#pragma unroll 1
            for (int it = 0; it < BN * C16 / THREADS; ++it) {
                const int i = tid + it * THREADS;
                const int r = i / C16, c = i % C16, pos = n0 + r;
                const bool valid = pos < kv_end;
                const T* src = pool;
                if (valid) {
                    const int blk = block_index(pos, bt_magic);
                    src = k_layer + table[blk] * block_stride + (long)(pos - blk * block_tokens) * token_elems + c * 16;
                }
                cp_async16(kb + r * D + c * 16, src, valid);
                cp_async16(vb + r * D + c * 16, valid ? src + v_offset : src, valid);
            }
            for (int r = tid; r < BN; r += THREADS) {
                const int pos = n0 + r;
                const bool valid = pos < kv_end;
                const T* ks = pool;
                const T* vs = pool;
                if (valid) {
                    const int blk = block_index(pos, bt_magic), off = pos - blk * block_tokens;
                    const T* block = pool + table[blk] * block_stride;
                    ks = block + kv_scale_offset(scale_offset, layer, 0, off, block_tokens, kv_heads, kvh);
                    vs = block + kv_scale_offset(scale_offset, layer, 1, off, block_tokens, kv_heads, kvh);
                }
                cp_async4(ksb + r * 4, ks, valid);
                cp_async4(vsb + r * 4, vs, valid);
            }
            return;
        }
        const unsigned int kb = sK_addr + buf * TILE_BYTES, vb = sV_addr + buf * TILE_BYTES;
        // One row at a time: unrolled, the rows' addresses would take registers the MMAs need.
#pragma unroll 1
        for (int k = 0; k < BN / COPY_ROWS; ++k) {
            const int r = copy_row + k * COPY_ROWS, pos = n0 + r;
            const bool valid = pos < kv_end;
            const T* src = pool;
            if (valid) {
                const int blk = block_index(pos, bt_magic);
                src = k_src + table[blk] * block_stride + (long)(pos - blk * block_tokens) * token_elems;
            }
            const unsigned int so = swz<D>(r, copy_chunk) * 2;
            cp_async16(kb + so, src, valid);
            cp_async16(vb + so, valid ? src + v_offset : src, valid);
        }
    };

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < n_tiles) load_kv(s, s);
        cp_async_commit();
    }

    // Q: fp32 -> scaled bf16 in shared (rows past the slice are zero and never stored). The scale
    // carries log2(e) so the softmax can use exp2.
    const float qs = scale * PA_LOG2E;
#pragma unroll
    for (int it = 0; it < BM * CH / THREADS; ++it) {
        const int i = tid + it * THREADS;
        const int m = i / CH, c = i % CH;
        uint4 w = make_uint4(0, 0, 0, 0);
        if (m < used_rows) {
            const float* src = q + (long)(tile.x + tok0 + m / group) * q_stride + (long)(kvh * group + m % group) * D + c * 8;
            const float4 a = *reinterpret_cast<const float4*>(src), b = *reinterpret_cast<const float4*>(src + 4);
            w = make_uint4(pack_bf16x2(a.x * qs, a.y * qs), pack_bf16x2(a.z * qs, a.w * qs),
                           pack_bf16x2(b.x * qs, b.y * qs), pack_bf16x2(b.z * qs, b.w * qs));
        }
        *reinterpret_cast<uint4*>(sQ + swz<D>(m, c)) = w;
    }
    __syncthreads();

    // Warp w owns MT m16 tiles: rows (w * MT + i) * 16 ... + 15. With one tile, Q stays in
    // registers; with two, Q is re-read from shared memory for every key tile (FlashAttention-2
    // does the same) so that the registers go to the second tile, whose rows reuse every K and V
    // fragment a warp loads: half the shared-memory traffic per MMA.
    const unsigned int sQ_addr = smem_addr(sQ);
    unsigned int qf[MT == 1 ? D / 16 : 1][4];
    if constexpr (MT == 1) {
        const int row = warp * 16 + (lane & 15);
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
            ldmatrix_x4(sQ_addr + swz<D>(row, kk * 2 + (lane >> 4)) * 2, qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3]);
    }

    // This thread's rows (fragment rows lane/4 and lane/4 + 8 of each of its m16 tiles) and how
    // many keys each sees; rows past the slice copy the first row's limit so they stay finite.
    const int g = lane >> 2, tq = lane & 3;
    int lim[MT][2], lo[MT][2];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = (warp * MT + i) * 16 + g + 8 * h;
            lim[i][h] = row < used_rows ? first_visible + row / group : first_visible;
            lo[i][h] = window > 0 ? lim[i][h] - window : 0;
        }

    float o[MT][D / 8][4];
    float mx[MT][2], l[MT][2];
#pragma unroll
    for (int i = 0; i < MT; ++i) {
#pragma unroll
        for (int j = 0; j < D / 8; ++j) o[i][j][0] = o[i][j][1] = o[i][j][2] = o[i][j][3] = 0.0f;
        mx[i][0] = mx[i][1] = NEG_INF;
        l[i][0] = l[i][1] = 0.0f;
    }

    int buf = 0;                                       // t % STAGES
    for (int t = 0; t < n_tiles; ++t) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        {
            const int t_load = t + STAGES - 1, b_load = buf == 0 ? STAGES - 1 : buf - 1;
            if (t_load < n_tiles) load_kv(t_load, b_load);
            cp_async_commit();
        }
        if constexpr (FP8) {
            // Tile t's codes times their rows' scales into the bf16 tiles, which every warp is
            // done reading (the barrier above).
            const unsigned char* raw = sRaw + buf * RAW;
            const float* scales = reinterpret_cast<const float*>(raw + 2 * BN * D);   // K rows', then V rows'
            for (int i = tid; i < 2 * BN * CH; i += THREADS) {
                const int v = i / (BN * CH), r = (i / CH) % BN, c = i % CH;
                const uint2 codes = *reinterpret_cast<const uint2*>(raw + (v * BN + r) * D + c * 8);
                *reinterpret_cast<uint4*>((v ? sV : sK) + swz<D>(r, c)) = e4m3x8_to_bf16x8(codes, scales[v * BN + r]);
            }
            __syncthreads();
        }
        const unsigned int kb = sK_addr + (FP8 ? 0 : buf * TILE_BYTES), vb = sV_addr + (FP8 ? 0 : buf * TILE_BYTES);
        buf = buf + 1 == STAGES ? 0 : buf + 1;

        float s[MT][BN / 8][4];
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int j = 0; j < BN / 8; ++j) s[i][j][0] = s[i][j][1] = s[i][j][2] = s[i][j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            unsigned int a[MT][4];
#pragma unroll
            for (int i = 0; i < MT; ++i) {
                if constexpr (MT == 1) {
                    a[i][0] = qf[kk][0]; a[i][1] = qf[kk][1]; a[i][2] = qf[kk][2]; a[i][3] = qf[kk][3];
                } else {
                    const int row = (warp * MT + i) * 16 + (lane & 15);
                    ldmatrix_x4(sQ_addr + swz<D>(row, kk * 2 + (lane >> 4)) * 2, a[i][0], a[i][1], a[i][2], a[i][3]);
                }
            }
#pragma unroll
            for (int j = 0; j < BN / 8; j += 2) {
                unsigned int b0, b1, b2, b3;
                const int key = j * 8 + (lane & 7) + ((lane >> 4) << 3);
                ldmatrix_x4(kb + swz<D>(key, kk * 2 + ((lane >> 3) & 1)) * 2, b0, b1, b2, b3);
#pragma unroll
                for (int i = 0; i < MT; ++i) {
                    mma_bf16(s[i][j], a[i][0], a[i][1], a[i][2], a[i][3], b0, b1);
                    mma_bf16(s[i][j + 1], a[i][0], a[i][1], a[i][2], a[i][3], b2, b3);
                }
            }
        }

        const int n0 = (t_first + t) * BN;
        if (n0 + BN > first_visible || n0 < window_top) {
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int j = 0; j < BN / 8; ++j) {
                    const int key = n0 + j * 8 + 2 * tq;
                    if (key >= lim[i][0] || key < lo[i][0]) s[i][j][0] = NEG_INF;
                    if (key + 1 >= lim[i][0] || key + 1 < lo[i][0]) s[i][j][1] = NEG_INF;
                    if (key >= lim[i][1] || key < lo[i][1]) s[i][j][2] = NEG_INF;
                    if (key + 1 >= lim[i][1] || key + 1 < lo[i][1]) s[i][j][3] = NEG_INF;
                }
        }

        // Online softmax; the running max is shared by the four lanes of a row (quad), the running
        // sum stays per lane until the end. A row that has seen no key yet (its max still -inf:
        // under a sliding window, a tile wholly before the row's window) takes 0 as its
        // reference, so its P and its rescale are 0, not NaN. Once the maxima settle most tiles
        // raise none of a warp's rows, and then the rescale (a multiply per output element) is
        // skipped: it would multiply by exactly 1.
        unsigned int pf[MT][BN / 16][4];
#pragma unroll
        for (int i = 0; i < MT; ++i) {
            float x0 = mx[i][0], x1 = mx[i][1];
#pragma unroll
            for (int j = 0; j < BN / 8; ++j) {
                x0 = fmaxf(x0, fmaxf(s[i][j][0], s[i][j][1]));
                x1 = fmaxf(x1, fmaxf(s[i][j][2], s[i][j][3]));
            }
            x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 1));
            x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 2));
            x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 1));
            x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 2));
            const float r0 = x0 == NEG_INF ? 0.0f : x0, r1 = x1 == NEG_INF ? 0.0f : x1;
            if (__any_sync(0xffffffffu, x0 != mx[i][0] || x1 != mx[i][1])) {
                const float c0 = pa_exp2(mx[i][0] - r0), c1 = pa_exp2(mx[i][1] - r1);
                l[i][0] *= c0; l[i][1] *= c1;
#pragma unroll
                for (int j = 0; j < D / 8; ++j) { o[i][j][0] *= c0; o[i][j][1] *= c0; o[i][j][2] *= c1; o[i][j][3] *= c1; }
                mx[i][0] = x0; mx[i][1] = x1;
            }
            float l0 = l[i][0], l1 = l[i][1];
#pragma unroll
            for (int j = 0; j < BN / 8; ++j) {
                const float p0 = pa_exp2(s[i][j][0] - r0), p1 = pa_exp2(s[i][j][1] - r0);
                const float p2 = pa_exp2(s[i][j][2] - r1), p3 = pa_exp2(s[i][j][3] - r1);
                l0 += p0 + p1; l1 += p2 + p3;
                // S's accumulator layout is the A-operand layout of the next product.
                pf[i][j >> 1][(j & 1) * 2] = pack_bf16x2(p0, p1);
                pf[i][j >> 1][(j & 1) * 2 + 1] = pack_bf16x2(p2, p3);
            }
            l[i][0] = l0; l[i][1] = l1;
        }

#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
#pragma unroll
            for (int j = 0; j < D / 8; j += 2) {
                unsigned int b0, b1, b2, b3;
                const int key = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
                ldmatrix_x4_trans(vb + swz<D>(key, j + (lane >> 4)) * 2, b0, b1, b2, b3);
#pragma unroll
                for (int i = 0; i < MT; ++i) {
                    mma_bf16(o[i][j], pf[i][kk][0], pf[i][kk][1], pf[i][kk][2], pf[i][kk][3], b0, b1);
                    mma_bf16(o[i][j + 1], pf[i][kk][0], pf[i][kk][1], pf[i][kk][2], pf[i][kk][3], b2, b3);
                }
            }
        }
    }

    const long out_stride = (long)q_heads * D;
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float sum = l[i][h];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const float inv = 1.0f / sum;
            const int row = (warp * MT + i) * 16 + g + 8 * h;
            if (row < used_rows) {
                bf16_t* dst = out + (long)(tile.x + tok0 + row / group) * out_stride + (long)(kvh * group + row % group) * D + 2 * tq;
#pragma unroll
                for (int j = 0; j < D / 8; ++j)
                    *reinterpret_cast<unsigned int*>(dst + j * 8) = pack_bf16x2(o[i][j][2 * h] * inv, o[i][j][2 * h + 1] * inv);
            }
        }
}

#define PA_PARAMS_T(T) \
    const float* __restrict__ q, int q_stride, const T* __restrict__ pool, \
    const int* __restrict__ block_tables, int table_stride, const int4* __restrict__ tiles, \
    bf16_t* __restrict__ out, int q_heads, int kv_heads, int layer, int block_tokens, long block_stride, float scale, int window
#define PA_PARAMS PA_PARAMS_T(bf16_t)
#define PA_PARAMS_FP8 PA_PARAMS_T(fp8_t), long scale_offset
#define PA_ARGS q, q_stride, pool, block_tables, table_stride, tiles, out, q_heads, kv_heads, layer, block_tokens, block_stride, scale, window

// Grid (kv_heads, tiles * slices), 32 * W threads, dynamic shared memory (16 * M * W + 2 * S * N) * D * 2
// bytes. Names: head dim D, W warps, M m16 row tiles per warp, N keys per shared tile, S K/V tiles
// in flight. The 1 in __launch_bounds__ lets ptxas use every register a thread may have: without
// it, it held a 256-thread variant to 128 registers and spilled. Written out rather than made by
// a macro: the host finds kernels by scanning for `extern "C" __global__` lines.
extern "C" __global__ void __launch_bounds__(128, 1) prefill_attention_d64_w4m1n64s2(PA_PARAMS) {
    wait_for_previous_kernel();
    prefill_attention_body<64, 4, 1, 64, 2, bf16_t>(PA_ARGS, 0);
}
extern "C" __global__ void __launch_bounds__(256, 1) prefill_attention_d64_w8m2n64s2(PA_PARAMS) {
    wait_for_previous_kernel();
    prefill_attention_body<64, 8, 2, 64, 2, bf16_t>(PA_ARGS, 0);
}
extern "C" __global__ void __launch_bounds__(128, 1) prefill_attention_d128_w4m1n64s2(PA_PARAMS) {
    wait_for_previous_kernel();
    prefill_attention_body<128, 4, 1, 64, 2, bf16_t>(PA_ARGS, 0);
}
extern "C" __global__ void __launch_bounds__(256, 1) prefill_attention_d128_w8m2n64s3(PA_PARAMS) {
    wait_for_previous_kernel();
    prefill_attention_body<128, 8, 2, 64, 3, bf16_t>(PA_ARGS, 0);
}
// The fp8 pool's, same shapes (not timed against other shapes).
extern "C" __global__ void __launch_bounds__(128, 1) prefill_attention_d64_w4m1n64s2_fp8(PA_PARAMS_FP8) {
    wait_for_previous_kernel();
    prefill_attention_body<64, 4, 1, 64, 2, fp8_t>(PA_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(256, 1) prefill_attention_d64_w8m2n64s2_fp8(PA_PARAMS_FP8) {
    wait_for_previous_kernel();
    prefill_attention_body<64, 8, 2, 64, 2, fp8_t>(PA_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(128, 1) prefill_attention_d128_w4m1n64s2_fp8(PA_PARAMS_FP8) {
    wait_for_previous_kernel();
    prefill_attention_body<128, 4, 1, 64, 2, fp8_t>(PA_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(256, 1) prefill_attention_d128_w8m2n64s3_fp8(PA_PARAMS_FP8) {
    wait_for_previous_kernel();
    prefill_attention_body<128, 8, 2, 64, 3, fp8_t>(PA_ARGS, scale_offset);
}
