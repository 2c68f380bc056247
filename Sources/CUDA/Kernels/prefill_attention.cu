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

// The part of the tile table work unit `unit` takes (a block's blockIdx.y): up to BM / group tokens
// of one tile (a "slice"), and the keys they see. False when the slice is past the tile's tokens.
struct pa_slice {
    int4 tile;          // {first row, tokens, table row, visible}
    int tok0;           // the slice's first token in the tile
    int used_rows;      // its tokens times the grouped heads
    int first_visible;  // keys the slice's first token sees
    int kv_end;         // keys its last token sees
    int t_first;        // the first key tile not wholly before the first token's window
    int window_top;     // no row masks keys from here up
    int n_tiles;        // key tiles from t_first on
};

template <int BM, int BN>
__device__ __forceinline__ bool pa_take_slice(const int4* __restrict__ tiles, int group, int window, unsigned int unit, pa_slice& s) {
    const int tpc = min(PA_TILE_TOKENS, BM / group);
    const int slices = (PA_TILE_TOKENS + tpc - 1) / tpc;
    s.tile = tiles[unit / slices];
    s.tok0 = (unit % slices) * tpc;
    if (s.tok0 >= s.tile.y) return false;
    const int ntok = min(tpc, s.tile.y - s.tok0);
    s.used_rows = ntok * group;
    s.first_visible = s.tile.w + s.tok0;
    s.kv_end = s.first_visible + ntok - 1;
    // With a sliding window (window > 0) token j of the slice sees keys [first_visible + j -
    // window, first_visible + j): key tiles wholly before the first token's window are skipped.
    s.t_first = window > 0 ? max(0, s.first_visible - window) / BN : 0;
    s.window_top = window > 0 ? s.kv_end - window : 0;
    s.n_tiles = (s.kv_end + BN - 1) / BN - s.t_first;
    return true;
}

// Row m of a slice (token m / group, grouped head m % group from `first_head`), 16-byte chunk c of
// q (rows from `first_row`, `q_stride` floats apart) times `qs`, as 8 bf16; zero past the slice's
// rows (which are never stored). group_magic: block_index_magic(group), so that m / group is a
// multiply-high rather than a division (some 60 instructions a chunk at run-time group sizes). A
// row past the slice reads q's first chunk and drops it, with no branch: a branch a chunk kept the
// compiler from issuing a thread's loads of all its chunks before the first conversion, so the
// Hopper kernel waited for its eight chunks one after another (Nsight Compute at 512 tokens,
// prefill-attention-h200.md).
template <int D>
__device__ __forceinline__ uint4 pa_q_chunk(const float* __restrict__ q, int q_stride, int first_row, int first_head, int group,
                                            unsigned int group_magic, int m, int c, int used_rows, float qs) {
    const bool in = m < used_rows;
    const int token = block_index(m, group_magic);
    const float* src = in ? q + (long)(first_row + token) * q_stride + (long)(first_head + m - token * group) * D + c * 8 : q;
    const float4 a = *reinterpret_cast<const float4*>(src), b = *reinterpret_cast<const float4*>(src + 4);
    const uint4 w = make_uint4(pack_bf16x2(a.x * qs, a.y * qs), pack_bf16x2(a.z * qs, a.w * qs), pack_bf16x2(b.x * qs, b.y * qs),
                               pack_bf16x2(b.z * qs, b.w * qs));
    return in ? w : make_uint4(0, 0, 0, 0);
}

// Copies rows copy_row, copy_row + COPY_ROWS, ... of a BN-key K/V tile starting at key n0 (this
// thread's 16-byte column of each row, at `k_src` of the pool's first block) into shared memory,
// K at kb and V at vb plus the byte offset `at(row)`; rows from kv_end on are zero-filled. One row at
// a time: unrolled, the rows' addresses would take registers the MMAs need.
template <int BN, int COPY_ROWS, typename T, typename Offset>
__device__ __forceinline__ void pa_copy_kv_rows(const T* __restrict__ pool, const T* k_src, const int* __restrict__ table,
                                                unsigned int bt_magic, int block_tokens, long block_stride, int token_elems,
                                                long v_offset, int n0, int kv_end, int copy_row, unsigned int kb, unsigned int vb,
                                                Offset at) {
#pragma unroll 1
    for (int k = 0; k < BN / COPY_ROWS; ++k) {
        const int r = copy_row + k * COPY_ROWS, pos = n0 + r;
        const bool valid = pos < kv_end;
        const T* src = pool;
        if (valid) {
            const int blk = block_index(pos, bt_magic);
            src = k_src + table[blk] * block_stride + (long)(pos - blk * block_tokens) * token_elems;
        }
        const unsigned int so = at(r);
        cp_async16(kb + so, src, valid);
        cp_async16(vb + so, valid ? src + v_offset : src, valid);
    }
}

// O's two rows of this thread (the m16n8 accumulator layout: elements 0-1 row lane/4, 2-3 row
// lane/4 + 8) times c0 and c1: the online softmax's rescale when a row's max rises.
template <int N>
__device__ __forceinline__ void pa_scale_rows(float (&o)[N][4], float c0, float c1) {
#pragma unroll
    for (int j = 0; j < N; ++j) { o[j][0] *= c0; o[j][1] *= c0; o[j][2] *= c1; o[j][3] *= c1; }
}

// A key tile's masking and new row maxima (pa_online_softmax's first half): masks `s` when
// `masked`, writes this thread's two rows' maxima over the running max `mx` and the tile to `x`
// (shared by the row's quad), and to `r` the reference each row's exponents subtract (0 for a row
// that has seen no key yet). True when some row of the warp has a new maximum.
template <int BN>
__device__ __forceinline__ bool pa_tile_max(float (&s)[BN / 8][4], const float (&mx)[2], const int (&lim)[2], const int (&lo)[2], int n0,
                                            bool masked, int tq, float (&x)[2], float (&r)[2]) {
    if (masked) {
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
            const int key = n0 + j * 8 + 2 * tq;
            if (key >= lim[0] || key < lo[0]) s[j][0] = NEG_INF;
            if (key + 1 >= lim[0] || key + 1 < lo[0]) s[j][1] = NEG_INF;
            if (key >= lim[1] || key < lo[1]) s[j][2] = NEG_INF;
            if (key + 1 >= lim[1] || key + 1 < lo[1]) s[j][3] = NEG_INF;
        }
    }
    float x0 = mx[0], x1 = mx[1];
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
        x0 = fmaxf(x0, fmaxf(s[j][0], s[j][1]));
        x1 = fmaxf(x1, fmaxf(s[j][2], s[j][3]));
    }
    x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 1));
    x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 2));
    x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 1));
    x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 2));
    x[0] = x0; x[1] = x1;
    r[0] = x0 == NEG_INF ? 0.0f : x0;
    r[1] = x1 == NEG_INF ? 0.0f : x1;
    return __any_sync(0xffffffffu, x0 != mx[0] || x1 != mx[1]);
}

// One key tile of one m16 tile's rows, on this thread's scores `s` (the m16n8 accumulator layout,
// keys from n0; wgmma's m64nN accumulator holds a warp's 16 rows in the same order): masks them
// when `masked` (some row of the tile sees only part of it; key k of a row is visible when lo <= k
// < lim), updates the online softmax (running max `mx` and sum `l` of this thread's two rows,
// fragment rows lane/4 and lane/4 + 8) and writes P as bf16 A fragments `pf`. The running max is
// shared by the four lanes of a row (quad), the running sum stays per lane until the end. A row
// that has seen no key yet (its max still -inf: under a sliding window, a tile wholly before the
// row's window) takes 0 as its reference, so its P and its rescale are 0, not NaN. Once the maxima
// settle most tiles raise none of a warp's rows, and then the rescale of O (a multiply per output
// element) is skipped: it would multiply by exactly 1.
template <int BN, int D>
__device__ __forceinline__ void pa_online_softmax(float (&s)[BN / 8][4], float (&o)[D / 8][4], float (&mx)[2], float (&l)[2],
                                                  const int (&lim)[2], const int (&lo)[2], int n0, bool masked, int tq,
                                                  unsigned int (&pf)[BN / 16][4]) {
    float x[2], r[2];
    if (pa_tile_max<BN>(s, mx, lim, lo, n0, masked, tq, x, r)) {
        const float c0 = pa_exp2(mx[0] - r[0]), c1 = pa_exp2(mx[1] - r[1]);
        l[0] *= c0; l[1] *= c1;
        pa_scale_rows<D / 8>(o, c0, c1);
        mx[0] = x[0]; mx[1] = x[1];
    }
    const float r0 = r[0], r1 = r[1];
    float l0 = l[0], l1 = l[1];
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
        const float p0 = pa_exp2(s[j][0] - r0), p1 = pa_exp2(s[j][1] - r0);
        const float p2 = pa_exp2(s[j][2] - r1), p3 = pa_exp2(s[j][3] - r1);
        l0 += p0 + p1; l1 += p2 + p3;
        // S's accumulator layout is the A-operand layout of the next product.
        pf[j >> 1][(j & 1) * 2] = pack_bf16x2(p0, p1);
        pf[j >> 1][(j & 1) * 2 + 1] = pack_bf16x2(p2, p3);
    }
    l[0] = l0; l[1] = l1;
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
    pa_slice slice;
    if (!pa_take_slice<BM, BN>(tiles, group, window, blockIdx.y, slice)) return;
    const int4 tile = slice.tile;
    const int tok0 = slice.tok0, used_rows = slice.used_rows, first_visible = slice.first_visible, kv_end = slice.kv_end;
    const int t_first = slice.t_first, window_top = slice.window_top, n_tiles = slice.n_tiles;
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
        pa_copy_kv_rows<BN, COPY_ROWS>(pool, k_src, table, bt_magic, block_tokens, block_stride, token_elems, v_offset, n0, kv_end, copy_row,
                                       sK_addr + buf * TILE_BYTES, sV_addr + buf * TILE_BYTES,
                                       [&](int r) { return (unsigned int)swz<D>(r, copy_chunk) * 2; });
    };

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < n_tiles) load_kv(s, s);
        cp_async_commit();
    }

    // Q: fp32 -> scaled bf16 in shared (rows past the slice are zero and never stored). The scale
    // carries log2(e) so the softmax can use exp2.
    const float qs = scale * PA_LOG2E;
    const unsigned int group_magic = block_index_magic(group);
#pragma unroll
    for (int it = 0; it < BM * CH / THREADS; ++it) {
        const int i = tid + it * THREADS;
        const int m = i / CH, c = i % CH;
        *reinterpret_cast<uint4*>(sQ + swz<D>(m, c)) =
            pa_q_chunk<D>(q, q_stride, tile.x + tok0, kvh * group, group, group_magic, m, c, used_rows, qs);
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
        const bool masked = n0 + BN > first_visible || n0 < window_top;
        unsigned int pf[MT][BN / 16][4];
#pragma unroll
        for (int i = 0; i < MT; ++i) pa_online_softmax<BN, D>(s[i], o[i], mx[i], l[i], lim[i], lo[i], n0, masked, tq, pf[i]);

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

// MARK: Hopper (compute capability 9.0, compiled for sm_90a)
//
// The same attention on Hopper's warpgroup MMAs (wgmma), warp-specialized and scheduled as
// FlashAttention-3 is. 384 threads: one warp of warpgroup 0 copies 128-key K and V tiles into
// three stages by bulk tensor copies (TMA) through a tensor map of the whole pool, the block index
// (from the block table) a coordinate, in boxes of as many tokens as the block and the tile allow
// (64 for 64-token blocks: 8 copies a tile), whose bytes complete the stage's K or V "full"
// mbarrier; warpgroups 1 and 2 only compute, 64 query rows each, and hand K and V back through
// their "empty" mbarriers: no block-wide barrier a key tile, and the copies never wait behind the
// MMAs. S = Q·Kᵀ takes Q and the K tile from shared memory (descriptors); O += P·V takes P from
// registers (the S accumulator's layout is the A fragment's, as with mma.sync) and V from shared
// memory, transposed. The two warpgroups take turns at the tensor cores: a turn issues tile t's
// scores and tile t - 1's P·V, and the warpgroup then runs tile t's softmax while its P·V and the
// other warpgroup's turn keep the tensor cores busy. Persistent: one CTA a multiprocessor at most,
// taking work units (a KV head's slice of the tile table) in turn. The tiles sit in the layout
// wgmma's 128-byte swizzle reads: each 64-element half of a 256-byte row is one 128-byte line of
// its own region, 16-byte chunk c of line r stored at c XOR (r mod 8), regions 1024-byte aligned.
// On an H100, 8B layer shape: 1.00x sdpa's time at 8192 tokens, 0.94x at 2048, 0.80x at 1024,
// 1.03x at 512 (bench/results/prefill-attention-h200.md, where the variants that lost are too).
// Other architectures compile the entry point only, to a trap: the launcher never picks it there.

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// d (64 x 128 fp32, this thread's 64 in the m16n8 accumulator layout of its warp's 16 rows: element
// [j][c] is column 8j + 2(lane mod 4) + (c mod 2), row lane/4 + 8(c/2)) (+)= A · B for one k16 step,
// both operands in shared memory (K-major descriptors): the scores of a 128-key tile.
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (&d)[16][4], unsigned long long da, unsigned long long db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
        : "l"(da), "l"(db), "r"(scale_d));
}

// d (as above) += A · B for one k16 step: A 64 x 16 bf16 in registers (the mma.sync m16n8k16 A
// fragment of this warp's 16 rows), B 16 (keys) x 128 bf16 MN-major in shared memory (descriptor,
// transposed).
__device__ __forceinline__ void wgmma_m64n128k16_rs(float (&d)[16][4], unsigned int a0, unsigned int a1, unsigned int a2, unsigned int a3,
                                                    unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(db), "r"(1));
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Waits until at most one committed group (the newest) is still in flight.
__device__ __forceinline__ void wgmma_wait1() { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
// Pins registers that an in-flight wgmma writes: the compiler must not move or read them across
// this point (it does not know the MMA is asynchronous).
template <int N>
__device__ __forceinline__ void fence_operands(float (&r)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; ++i)
#pragma unroll
        for (int c = 0; c < 4; ++c) asm volatile("" : "+f"(r[i][c])::"memory");
}

// A shared-memory matrix descriptor with the 128-byte swizzle: start address, leading and stride
// byte offsets (each >> 4 in 14 bits).
__device__ __forceinline__ unsigned long long wg_desc(unsigned int addr, unsigned int lbo, unsigned int sbo) {
    return (unsigned long long)((addr & 0x3ffff) >> 4) | ((unsigned long long)(lbo >> 4) << 16) |
           ((unsigned long long)(sbo >> 4) << 32) | (1ull << 62);
}

// Byte offset of 16-byte chunk c (0..15) of row r of a [R][128 bf16] tile in the swizzled layout.
template <int R>
__device__ __forceinline__ unsigned int wg_swz(int r, int c) { return (c >> 3) * (R * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4); }

// O += P·V for a warpgroup's 64 rows, P this thread's A fragments `pf`, the V tile at shared
// address `vb`: issued and committed (not waited for).
__device__ __forceinline__ void wg_issue_pv(float (&o)[16][4], const unsigned int (&pf)[8][4], unsigned int vb) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) {
        // MN-major: the leading offset steps between the two 64-column halves of V, the stride
        // offset between groups of 8 keys (with the two swapped every check fails).
        wgmma_m64n128k16_rs(o, pf[kk][0], pf[kk][1], pf[kk][2], pf[kk][3], wg_desc(vb + kk * 16 * 128, 128 * 128, 1024));
    }
    wgmma_commit();
    fence_operands<16>(o);
}

// Pins P's registers while a P·V that reads them may be in flight (as fence_operands does an
// accumulator's): otherwise the next P could be given the same registers.
__device__ __forceinline__ void fence_p(unsigned int (&pf)[8][4]) {
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int c = 0; c < 4; ++c) asm volatile("" : "+r"(pf[i][c])::"memory");
}

// S = Q·Kᵀ for a warpgroup's 64 rows (Q at shared address `q`) and the 128-key tile at `kb`,
// issued and committed (not waited for).
__device__ __forceinline__ void wg_issue_s(float (&s)[16][4], unsigned int q, unsigned int kb) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) {
        // k16 steps: 32 bytes along a 128-byte line, four a line, then the other half's region
        // (64 lines of Q, 128 of K).
        const unsigned int half = kk >> 2, along = (kk & 3) * 32;
        wgmma_m64n128k16_ss(s, wg_desc(q + half * (64 * 128) + along, 16, 1024), wg_desc(kb + half * (128 * 128) + along, 16, 1024), kk > 0);
    }
    wgmma_commit();
    fence_operands<16>(s);
}

// The Hopper kernel's shared memory: Q's two 64-row halves, STAGES K and V tiles of 128 keys,
// then the stages' mbarriers (8 bytes each): K full, K empty, V full, V empty, STAGES of each, from
// the first 1024-byte boundary.
template <int STAGES>
struct hopper_smem {
    static constexpr unsigned int Q_BYTES = 64 * 128 * 2, TILE_BYTES = 128 * 128 * 2;
    unsigned int q, k, v, full_k, empty_k, full_v, empty_v;
    unsigned char* q_generic;
    __device__ __forceinline__ explicit hopper_smem(unsigned char* raw) {
        const unsigned int base = (smem_addr(raw) + 1023) & ~1023u;
        q = base; k = q + 2 * Q_BYTES; v = k + STAGES * TILE_BYTES;
        full_k = v + STAGES * TILE_BYTES; empty_k = full_k + STAGES * 8;
        full_v = empty_k + STAGES * 8; empty_v = full_v + STAGES * 8;
        q_generic = raw + (base - smem_addr(raw));
    }
};

// Tokens of one bulk copy (box) of the pool's tensor map: the largest power of two dividing both
// the block and the 128-key tile, so that a box never spans two blocks (CUDAKernels.prefillMapBoxTokens
// makes the map with the same rule; blocks hold a multiple of 8 tokens, so a tile takes at most 32
// boxes of K and 32 of V, a copying lane's one of each). Bigger boxes are fewer copies: with 64-token
// blocks, 8 a tile instead of 64 took 14-20% off at 8192 tokens on an H100 (prefill-attention-h200.md).
__device__ __forceinline__ int hopper_box_tokens(int block_tokens) { return min(128, block_tokens & -block_tokens); }

// The copying lane's part of every tile (hopper_copy_tile) for boxes of `box` tokens, worked out
// once: which half of the dims and which keys of a tile it brings, if any.
struct hopper_copier {
    int lane, half, keys;
    bool copies;       // whether the lane has a box of each tile
    unsigned int at;   // its box's byte offset in a stage's K (and V) tile
    __device__ __forceinline__ hopper_copier(int lane_, int box) : lane(lane_) {
        const int per_half = 128 / box;
        half = lane / per_half;
        keys = box * (lane % per_half);
        copies = lane < 2 * per_half;
        at = half * (128 * 128) + keys * 128;
    }
};

// The copying warp's tile t of a slice, at ring position it + t (`it`: the slice's first tile's),
// into stage (it + t) mod STAGES, K then V, each once its stage's previous tile has been handed
// back: lane i < 2 · 128 / box brings keys box · (i mod (128 / box)) ... of the tile, dims 64 ·
// (i / (128 / box)) ..., straight into the swizzled layout wgmma reads (a box's lines of 128 bytes
// are whole swizzle atoms). A box from kv_end on is asked at a token past the block, which the
// copy fills with zeros; the box that kv_end cuts brings pool slots past the sequence, which the
// consumers zero in V (hopper_wait_v).
template <int STAGES>
__device__ __forceinline__ void hopper_copy_tile(const hopper_smem<STAGES>& sm, const pa_slice& slice, const int* table, unsigned int bt_magic,
                                                 int block_tokens, int kvh, int layer, const void* kv_map, int it, int t, const hopper_copier& c) {
    constexpr int BN = 128;
    constexpr unsigned int TILE_BYTES = hopper_smem<STAGES>::TILE_BYTES;
    const int lane = c.lane, half = c.half, keys = c.keys;
    const bool copies = c.copies;
    const unsigned int at = c.at;
    const int ring = it + t, s = ring % STAGES, reuse = ((ring / STAGES) - 1) & 1;
    const int pos = (slice.t_first + t) * BN + keys;
    int block = 0, token = block_tokens;
    if (pos < slice.kv_end) {
        const int b = block_index(pos, bt_magic);
        block = table[b];
        token = pos - b * block_tokens;
    }
    if (ring >= STAGES) mbar_wait(sm.empty_k + s * 8, reuse);
    if (lane == 0) mbar_expect_bytes(sm.full_k + s * 8, TILE_BYTES);
    __syncwarp();
    if (copies) tma_load_5d(sm.k + s * TILE_BYTES + at, kv_map, sm.full_k + s * 8, 64 * half, kvh, token, 2 * layer, block);
    if (ring >= STAGES) mbar_wait(sm.empty_v + s * 8, reuse);
    if (lane == 0) mbar_expect_bytes(sm.full_v + s * 8, TILE_BYTES);
    __syncwarp();
    if (copies) tma_load_5d(sm.v + s * TILE_BYTES + at, kv_map, sm.full_v + s * 8, 64 * half, kvh, token, 2 * layer + 1, block);
}

// Q of a slice by the two computing warpgroups alone (thread `ctid` of 256), every load before
// any store, then a barrier of the two (named barrier 3: 1 and 2 are the warpgroups' own, 4 and 5
// their turns).
template <int STAGES>
__device__ __forceinline__ void hopper_load_q(const hopper_smem<STAGES>& sm, const float* __restrict__ q, int q_stride, const pa_slice& slice,
                                              int kvh, int group, float qs, int ctid) {
    constexpr int D = 128, BM = 128, CH = D / 8, CONSUMERS = 256, Q_PASSES = BM * CH / CONSUMERS;
    constexpr unsigned int Q_BYTES = hopper_smem<STAGES>::Q_BYTES;
    const unsigned int group_magic = block_index_magic(group);
    uint4 qc[Q_PASSES];
#pragma unroll
    for (int k = 0; k < Q_PASSES; ++k) {
        const int i = ctid + k * CONSUMERS;
        qc[k] = pa_q_chunk<D>(q, q_stride, slice.tile.x + slice.tok0, kvh * group, group, group_magic, i / CH, i % CH, slice.used_rows, qs);
    }
#pragma unroll
    for (int k = 0; k < Q_PASSES; ++k) {
        const int i = ctid + k * CONSUMERS, m = i / CH;
        *reinterpret_cast<uint4*>(sm.q_generic + (m >> 6) * Q_BYTES + wg_swz<64>(m & 63, i % CH)) = qc[k];
    }
    fence_proxy_async();
    asm volatile("bar.sync 3, %0;\n" :: "n"(CONSUMERS) : "memory");
}

// A computing warpgroup's state over one slice: its rows' key limits (lim, lo), output, running
// max and sum.
struct hopper_rows {
    int lim[2], lo[2];
    float o[16][4];
    float mx[2], l[2];
    __device__ __forceinline__ hopper_rows(const pa_slice& slice, int cwarp, int g, int group, int window) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = cwarp * 16 + g + 8 * h;
            lim[h] = row < slice.used_rows ? slice.first_visible + row / group : slice.first_visible;
            lo[h] = window > 0 ? lim[h] - window : 0;
        }
#pragma unroll
        for (int j = 0; j < 16; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
        mx[0] = mx[1] = NEG_INF;
        l[0] = l[1] = 0.0f;
    }
    // 1 / row h's sum: this thread's share of it (l) added over the four lanes of its quad.
    __device__ __forceinline__ float inverse_sum(int h) const {
        float sum = l[h];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        return 1.0f / sum;
    }
};

// Tile t's scores `s` (keys from n0) into probabilities in place, the rows' running max and sum
// updated as pa_online_softmax updates them; O's rescale is left to the caller (P·V of the tile
// before may still be writing O): false when no row of the warp needs one, else `c` holds each
// row's factor.
__device__ __forceinline__ bool hopper_softmax(float (&s)[16][4], hopper_rows& r, const pa_slice& slice, int n0, int tq, float (&c)[2]) {
    float x[2], ref[2];
    const bool rescale = pa_tile_max<128>(s, r.mx, r.lim, r.lo, n0, n0 + 128 > slice.first_visible || n0 < slice.window_top, tq, x, ref);
    c[0] = c[1] = 1.0f;
    if (rescale) {
        c[0] = pa_exp2(r.mx[0] - ref[0]);
        c[1] = pa_exp2(r.mx[1] - ref[1]);
        r.mx[0] = x[0]; r.mx[1] = x[1];
    }
    float l0 = r.l[0] * c[0], l1 = r.l[1] * c[1];
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        s[j][0] = pa_exp2(s[j][0] - ref[0]); s[j][1] = pa_exp2(s[j][1] - ref[0]);
        s[j][2] = pa_exp2(s[j][2] - ref[1]); s[j][3] = pa_exp2(s[j][3] - ref[1]);
        l0 += s[j][0] + s[j][1]; l1 += s[j][2] + s[j][3];
    }
    r.l[0] = l0; r.l[1] = l1;
    return rescale;
}

// P as bf16 A fragments of the next product (S's accumulator layout is the A operand's).
__device__ __forceinline__ void hopper_pack_p(const float (&s)[16][4], unsigned int (&pf)[8][4]) {
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        pf[j >> 1][(j & 1) * 2] = pack_bf16x2(s[j][0], s[j][1]);
        pf[j >> 1][(j & 1) * 2 + 1] = pack_bf16x2(s[j][2], s[j][3]);
    }
}

// Waits for tile t's V (ring position it + t, as hopper_copy_tile). The box that kv_end cuts came
// whole: its keys from kv_end on are pool slots past the sequence (anything, NaN included). Their
// scores are masked, but P·V multiplies their V rows by P = 0, so each warpgroup zeroes those rows
// before its P·V (both write the same zeros), then makes its writes visible to wgmma's reads
// (async proxy).
template <int STAGES>
__device__ __forceinline__ void hopper_wait_v(const hopper_smem<STAGES>& sm, const pa_slice& slice, int it, int t, int wg, int tid, int box) {
    constexpr int BN = 128, CH = 128 / 8;
    constexpr unsigned int TILE_BYTES = hopper_smem<STAGES>::TILE_BYTES;
    const int s = (it + t) % STAGES;
    mbar_wait(sm.full_v + s * 8, ((it + t) / STAGES) & 1);
    const int seen = slice.kv_end - (slice.t_first + t) * BN;
    if (seen < BN && seen % box) {
        const int end = (seen + box - 1) / box * box;
        for (int i = seen * CH + tid - 128 * wg; i < end * CH; i += 128)
            asm volatile("st.shared.v4.b32 [%0], {%1, %1, %1, %1};\n" :: "r"(sm.v + s * TILE_BYTES + wg_swz<BN>(i / CH, i % CH)), "r"(0)
                         : "memory");
        fence_proxy_async();
        asm volatile("bar.sync %0, 128;\n" :: "r"(wg) : "memory");
    }
}

// A computing thread's two rows of the slice's output, normalized, as bf16 in 16-byte stores: the
// four lanes of a quad hold 2 columns each of every 8, so they swap their words in a 4 x 4
// transpose (two rounds of shuffles, 2 and 1 apart) until a lane holds 8 consecutive columns,
// and a warp's store covers 8 rows x 64 bytes. Storing the 4-byte pieces as they come (8 rows x
// 16 bytes a warp's store, half of each sector) left warps draining stores at exit: 5% of their
// samples at 512 tokens, and 14.5 against 12.6 us for the kernel on an H100 (1.17x against
// 1.02x sdpa; prefill-attention-h200.md, 2026-12-06).
__device__ __forceinline__ void hopper_store_rows(const hopper_rows& r, const pa_slice& slice, bf16_t* __restrict__ out, int q_heads, int kvh,
                                                  int group, int cwarp, int g, int tq) {
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
            // The off-diagonal 2 x 2 blocks (lanes 2 apart, words 2 apart), then within each block;
            // every lane shuffles, whether its row is stored or not.
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

// Sets up the stages' mbarriers (thread 0) and makes them visible to the bulk copies' completions
// (async proxy); the caller's __syncthreads makes them visible to the block.
template <int STAGES>
__device__ __forceinline__ void hopper_init_barriers(const hopper_smem<STAGES>& sm) {
    for (int s = 0; s < STAGES; ++s) {
        mbar_init(sm.full_k + s * 8, 1);
        mbar_init(sm.empty_k + s * 8, 256);
        mbar_init(sm.full_v + s * 8, 1);
        mbar_init(sm.empty_v + s * 8, 256);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// The two computing warpgroups' turns at the tensor cores (named barriers 4 and 5): warpgroup wg
// waits on barrier 3 + wg and, once its products are issued, opens the other's (6 - wg).
// Warpgroup 2 opens 1's first turn; both take tiles + 1 turns, and 2's last opens nothing (1 has
// no turn after it).
struct hopper_turns {
    int wg, left;
    __device__ __forceinline__ hopper_turns(int wg_, int tiles) : wg(wg_), left(tiles + 1) {
        if (wg == 2) asm volatile("bar.arrive 4, 256;\n" ::: "memory");
    }
    __device__ __forceinline__ void begin() const { asm volatile("bar.sync %0, 256;\n" :: "r"(3 + wg) : "memory"); }
    __device__ __forceinline__ void end() {
        if (wg == 1 || --left > 0) asm volatile("bar.arrive %0, 256;\n" :: "r"(6 - wg) : "memory");
    }
};

// A computing warpgroup's key loop (FlashAttention-3's schedule): tile 0's scores alone in its
// first turn, then in turn t tile t's scores and tile t - 1's P·V, each its own MMA group; the
// warpgroup waits for the scores only, runs tile t's softmax while P·V runs, then waits for P·V,
// rescales O and packs P(t); the last turn is the last tile's P·V. K goes back once its scores are
// read, V once its P·V is done (the last tile's too: the next unit of a persistent CTA reuses its
// stage). `it`: the ring position of the slice's first tile. 3-7% faster on an H100 than each
// warpgroup's S -> softmax -> P·V in lockstep with the other's (prefill-attention-h200.md, 2026-12-06).
template <int STAGES>
__device__ __forceinline__ void hopper_key_loop(const hopper_smem<STAGES>& sm, const pa_slice& slice, hopper_rows& r, int wg, int tid, int tq,
                                                int box, int it) {
    constexpr int BN = 128;
    constexpr unsigned int Q_BYTES = hopper_smem<STAGES>::Q_BYTES, TILE_BYTES = hopper_smem<STAGES>::TILE_BYTES;
    const int n = slice.n_tiles;
    if (n == 0) return;
    const unsigned int my_q = sm.q + (wg - 1) * Q_BYTES;
    hopper_turns turns(wg, n);
    float sc[BN / 8][4], c[2];
    unsigned int pf[BN / 16][4];
    const int s0 = it % STAGES;
    mbar_wait(sm.full_k + s0 * 8, (it / STAGES) & 1);
    turns.begin();
    wg_issue_s(sc, my_q, sm.k + s0 * TILE_BYTES);
    turns.end();
    wgmma_wait0();
    fence_operands<BN / 8>(sc);
    mbar_arrive(sm.empty_k + s0 * 8);
    hopper_softmax(sc, r, slice, slice.t_first * BN, tq, c);
    hopper_pack_p(sc, pf);
    for (int t = 1; t < n; ++t) {
        const int s = (it + t) % STAGES, prev = (it + t - 1) % STAGES;
        hopper_wait_v(sm, slice, it, t - 1, wg, tid, box);
        mbar_wait(sm.full_k + s * 8, ((it + t) / STAGES) & 1);
        turns.begin();
        wg_issue_s(sc, my_q, sm.k + s * TILE_BYTES);
        wg_issue_pv(r.o, pf, sm.v + prev * TILE_BYTES);
        turns.end();
        wgmma_wait1();
        fence_operands<BN / 8>(sc);
        mbar_arrive(sm.empty_k + s * 8);
        const bool rescale = hopper_softmax(sc, r, slice, (slice.t_first + t) * BN, tq, c);
        wgmma_wait0();
        fence_operands<16>(r.o);
        fence_p(pf);
        mbar_arrive(sm.empty_v + prev * 8);
        if (rescale) pa_scale_rows<16>(r.o, c[0], c[1]);
        hopper_pack_p(sc, pf);
    }
    hopper_wait_v(sm, slice, it, n - 1, wg, tid, box);
    turns.begin();
    wg_issue_pv(r.o, pf, sm.v + ((it + n - 1) % STAGES) * TILE_BYTES);
    turns.end();
    wgmma_wait0();
    fence_operands<16>(r.o);
    fence_p(pf);
    mbar_arrive(sm.empty_v + ((it + n - 1) % STAGES) * 8);
}

// Work unit `round` of this CTA: the units (KV head fastest, then the slices of the tile table,
// heaviest first) in a snake order over the CTAs, b, 2G - 1 - b, 2G + b, ..., so that the heavy
// units of one round pair with the light ones of the next.
__device__ __forceinline__ int hopper_unit(int round) {
    const int g = gridDim.x, b = blockIdx.x;
    return round * g + ((round & 1) ? g - 1 - b : b);
}

// The warp-specialized body (see "Hopper" above), persistent: at most one CTA a multiprocessor,
// each taking its work units (hopper_unit) one after another. 128 keys a tile, STAGES tiles in
// flight, and CONSUMER_REGS registers for each computing thread once the copying warpgroup has
// given up its own. The copying warp runs through all its units' tiles without a break (the stage
// ring goes on from unit to unit), so that a unit's first tiles arrive while the computing
// warpgroups finish the one before, store it and read the next Q: on an H100, 0.92x the time of one
// CTA a unit at 1024 tokens, 0.96x at 2048 (prefill-attention-h200.md, 2026-12-06). The
// computing warpgroups alone read Q, all their loads in flight together.
template <int BN, int STAGES, int CONSUMER_REGS>
__device__ __forceinline__ void prefill_attention_hopper_body(
    const float* __restrict__ q, int q_stride, const bf16_t* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride, const int4* __restrict__ tiles,
    bf16_t* __restrict__ out, int q_heads, int kv_heads, int layer, int block_tokens, long block_stride,
    float scale, int window, const void* __restrict__ kv_map, int slice_units)
{
    constexpr int BM = 128, PRODUCERS = 128, CONSUMERS = 256;
    static_assert(BN == 128, "the score product (wg_issue_s) is m64n128, and a tile's boxes are at most 128 tokens");
    static_assert(40 * PRODUCERS + CONSUMER_REGS * CONSUMERS <= 65536, "the registers must fit one multiprocessor");
    extern __shared__ __align__(1024) unsigned char pa_smem[];
    const hopper_smem<STAGES> sm(pa_smem);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int group = q_heads / kv_heads, units = slice_units * kv_heads;
    const int box = hopper_box_tokens(block_tokens);
    if (tid == 0) hopper_init_barriers(sm);
    const float qs = scale * PA_LOG2E;
    __syncthreads();

    if (wg == 0) {
        // The copying warpgroup gives its registers to the computing ones (setmaxnreg: 40 each
        // here, CONSUMER_REGS each there), whose scores, output and P fragments need about 200.
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
        if (warp != 0) return;
        // One warp copies (hopper_copy_tile); `it`: the ring position of a unit's first tile.
        if (lane == 0) asm volatile("prefetch.tensormap [%0];\n" :: "l"(kv_map) : "memory");
        const unsigned int bt_magic = block_index_magic(block_tokens);
        const hopper_copier copier(lane, box);
        int it = 0;
        for (int round = 0, u; (u = hopper_unit(round)) < units; ++round) {
            pa_slice slice;
            if (!pa_take_slice<BM, BN>(tiles, group, window, u / kv_heads, slice)) continue;
            const int* table = block_tables + (long)slice.tile.z * table_stride;
            for (int t = 0; t < slice.n_tiles; ++t)
                hopper_copy_tile(sm, slice, table, bt_magic, block_tokens, u % kv_heads, layer, kv_map, it, t, copier);
            it += slice.n_tiles;
        }
        return;
    }

    // Consumers: warpgroup 1 takes rows 0-63, warpgroup 2 rows 64-127.
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" :: "n"(CONSUMER_REGS) : "memory");
    const int cwarp = warp - 4, g = lane >> 2, tq = lane & 3;
    int it = 0;
    for (int round = 0, u; (u = hopper_unit(round)) < units; ++round) {
        pa_slice slice;
        if (!pa_take_slice<BM, BN>(tiles, group, window, u / kv_heads, slice)) continue;
        // Both computing warpgroups are done with the last unit's Q before it is overwritten.
        if (it > 0) asm volatile("bar.sync 3, %0;\n" :: "n"(CONSUMERS) : "memory");
        const int kvh = u % kv_heads;
        hopper_load_q(sm, q, q_stride, slice, kvh, group, qs, tid - PRODUCERS);
        hopper_rows r(slice, cwarp, g, group, window);
        hopper_key_loop(sm, slice, r, wg, tid, tq, box, it);
        hopper_store_rows(r, slice, out, q_heads, kvh, group, cwarp, g, tq);
        it += slice.n_tiles;
    }
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

// Grid (min(kv_heads * slice_units, multiprocessors)), 384 threads, dynamic shared memory (128 + 2
// * 3 * 128) * 256 + 1024 + 96 bytes: Q, three 128-key K/V stages, alignment, the stages' four
// mbarriers each. slice_units: the tile table's entries times the slices of each (the other
// kernels' grid y). kv_map: the pool's tensor map in global memory (CUDAKernels.prefillKVMap;
// blocks of a multiple of 8 tokens, boxes of hopper_box_tokens).
extern "C" __global__ void __launch_bounds__(384, 1) prefill_attention_d128_hopper(PA_PARAMS, const void* __restrict__ kv_map, int slice_units) {
    wait_for_previous_kernel();
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    prefill_attention_hopper_body<128, 3, 232>(PA_ARGS, kv_map, slice_units);
#else
    __trap();
#endif
}
