// Paged attention over the block-major KV pool, split across the context (flash-decoding):
// pass 1 computes, for each query row, head and split of the context, a partial softmax
// (running max m, sum l, weighted sum of V); pass 2 combines the splits. The tensor-core decode
// kernels (head dims 64, 128, 256) write the output themselves when there is one split, and the
// host then skips pass 2.
//
// A "query row" is one token's query: a decode step has one per sequence, a prefill has one per
// prompt token, each with its own visible context length (causal masking), so the same kernels
// serve both. row_table[r] picks the block-table row of the query's sequence. With a sliding
// window (window > 0, Mistral, Qwen2, Gemma 3) a row of context length len sees only its last
// `window` keys, len - window ..< len.
//
// Every kernel has an _fp8 twin over the fp8 pool (E4M3 codes with a scale per token and KV
// head, common.cuh; block_stride in bytes, one more argument: the scales' byte offset in a
// block). The CUDA-core kernel decodes the codes in registers; the tensor-core kernel copies
// codes and scales into shared memory (half the bytes of bf16) and turns each key tile into the
// bf16 tile its MMAs read, the scale applied, so from there on both dtypes run the same code.

#define ATTN_WARPS 4

// Loads the `per_lane` (<= E) consecutive bf16 values a lane owns as floats, with one vector load
// when the count is 2, 4 or 8 (rows of K and V are aligned to their head size).
template <int E>
__device__ __forceinline__ void load_lane_chunk(const bf16_t* p, int per_lane, bool active, float out[E]) {
#pragma unroll
    for (int j = 0; j < E; ++j) out[j] = 0.0f;
    if (!active) return;
    if (E >= 8 && per_lane == 8) {
        const uint4 w = *reinterpret_cast<const uint4*>(p);
        const unsigned int ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int j = 0; j < 4 && 2 * j + 1 < E; ++j) {
            out[2 * j] = __uint_as_float(ws[j] << 16);
            out[2 * j + 1] = __uint_as_float(ws[j] & 0xFFFF0000u);
        }
    } else if (E >= 4 && per_lane == 4) {
        const uint2 w = *reinterpret_cast<const uint2*>(p);
        out[0] = __uint_as_float(w.x << 16); out[1] = __uint_as_float(w.x & 0xFFFF0000u);
        out[2] = __uint_as_float(w.y << 16); out[3] = __uint_as_float(w.y & 0xFFFF0000u);
    } else if (E >= 2 && per_lane == 2) {
        const unsigned int w = *reinterpret_cast<const unsigned int*>(p);
        out[0] = __uint_as_float(w << 16); out[1] = __uint_as_float(w & 0xFFFF0000u);
    } else {
#pragma unroll
        for (int j = 0; j < E; ++j) if (j < per_lane) out[j] = bf16_to_f32(p[j]);
    }
}

// The fp8 form: `per_lane` codes at p, times the row's scale.
template <int E>
__device__ __forceinline__ void load_lane_chunk(const fp8_t* p, int per_lane, bool active, float scale, float out[E]) {
#pragma unroll
    for (int j = 0; j < E; ++j) out[j] = (active && j < per_lane) ? e4m3_to_f32(p[j]) * scale : 0.0f;
}

// Keys per split: `tokens_per_split`, or when it is 0 (a CUDA graph's launch, whose split count
// was chosen for a context bound rather than the step's longest row) the row's own span of
// `len` keys (the last `window` with a sliding window) over the `splits` splits.
__device__ __forceinline__ int split_span(int len, int window, int tokens_per_split, int splits) {
    if (tokens_per_split > 0) return tokens_per_split;
    const int keys = window > 0 ? min(len, window) : len;
    return max(1, (keys + splits - 1) / splits);
}

// One block per (query row, KV head, split of the context), 32 * ATTN_WARPS threads. The block
// serves every query head of its KV head (grouped-query attention), so each K/V row is read
// once for the group. Lane l owns elements [l * per_lane, (l + 1) * per_lane) of a head
// (per_lane = ceil(head_dim / 32) <= E); group <= G. Each warp takes TOK consecutive tokens at a
// time (independent loads and reductions in flight), keeping an online softmax per query head;
// the block then merges its warps into one partial result per head.
template <int E, int G, int TOK, typename T>
__device__ __forceinline__ void attention_partial(
    const float* __restrict__ q, int q_stride, const T* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride,
    const int* __restrict__ row_table, const int* __restrict__ ctx_len,
    float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc,
    int q_heads, int kv_heads, int head_dim, int layer, int block_tokens, long block_stride,
    int tokens_per_split, float scale, int window, long scale_offset)
{
    __shared__ float sm_m[ATTN_WARPS][G], sm_l[ATTN_WARPS][G];
    __shared__ float sm_acc[ATTN_WARPS][G][32 * E];
    const int r = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int group = q_heads / kv_heads;
    const int per_lane = (head_dim + 31) >> 5;
    const int d0 = lane * per_lane;
    const bool active = d0 < head_dim;
    const int token_elems = kv_heads * head_dim;
    const int* table = block_tables + (long)row_table[r] * table_stride;
    const int len = ctx_len[r];
    // The splits cover the keys the row sees: all of them, or with a sliding window (window > 0)
    // the last `window`.
    const int span = split_span(len, window, tokens_per_split, gridDim.z);
    const int start = (window > 0 ? max(0, len - window) : 0) + split * span;
    const int end = min(len, start + span);
    const unsigned int bt_magic = block_index_magic(block_tokens);

    float qv[G][E], acc[G][E], m[G], l[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
        const float* qh = q + (long)r * q_stride + (long)(kvh * group + g) * head_dim + d0;
#pragma unroll
        for (int j = 0; j < E; ++j) {
            qv[g][j] = (g < group && active && j < per_lane && d0 + j < head_dim) ? qh[j] * scale : 0.0f;
            acc[g][j] = 0.0f;
        }
        m[g] = NEG_INF;
        l[g] = 0.0f;
    }
    for (int base = start + warp * TOK; base < end; base += ATTN_WARPS * TOK) {
        float kf[TOK][E], vf[TOK][E];
#pragma unroll
        for (int i = 0; i < TOK; ++i) {
            const int t = base + i;
            const bool valid = t < end;
            const int bi = block_index(t, bt_magic);
            const long block = valid ? table[bi] : 0;
            const int off = t - bi * block_tokens;
            const T* k = pool + block * block_stride + ((long)(layer * 2) * block_tokens + off) * token_elems
                + (long)kvh * head_dim + d0;
            if constexpr (sizeof(T) == 1) {
                const T* scales = pool + block * block_stride;
                const float ks = valid ? *reinterpret_cast<const float*>(
                                             scales + kv_scale_offset(scale_offset, layer, 0, off, block_tokens, kv_heads, kvh))
                                       : 0.0f;
                const float vs = valid ? *reinterpret_cast<const float*>(
                                             scales + kv_scale_offset(scale_offset, layer, 1, off, block_tokens, kv_heads, kvh))
                                       : 0.0f;
                load_lane_chunk<E>(k, per_lane, active && valid, ks, kf[i]);
                load_lane_chunk<E>(k + (long)block_tokens * token_elems, per_lane, active && valid, vs, vf[i]);
            } else {
                load_lane_chunk<E>(k, per_lane, active && valid, kf[i]);
                load_lane_chunk<E>(k + (long)block_tokens * token_elems, per_lane, active && valid, vf[i]);
            }
        }
#pragma unroll
        for (int g = 0; g < G; ++g) {
            if (g >= group) break;
            float s[TOK];
#pragma unroll
            for (int i = 0; i < TOK; ++i) {
                float d = 0.0f;
#pragma unroll
                for (int j = 0; j < E; ++j) d += qv[g][j] * kf[i][j];
                s[i] = d;
            }
#pragma unroll
            for (int i = 0; i < TOK; ++i) s[i] = warp_sum(s[i]);
            float mx = m[g];
#pragma unroll
            for (int i = 0; i < TOK; ++i) if (base + i < end) mx = fmaxf(mx, s[i]);
            const float corr = expf(m[g] - mx);
            float psum = 0.0f, p[TOK];
#pragma unroll
            for (int i = 0; i < TOK; ++i) { p[i] = base + i < end ? expf(s[i] - mx) : 0.0f; psum += p[i]; }
            l[g] = l[g] * corr + psum;
#pragma unroll
            for (int j = 0; j < E; ++j) {
                float a = acc[g][j] * corr;
#pragma unroll
                for (int i = 0; i < TOK; ++i) a += p[i] * vf[i][j];
                acc[g][j] = a;
            }
            m[g] = mx;
        }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
        if (g >= group) break;
        if (lane == 0) { sm_m[warp][g] = m[g]; sm_l[warp][g] = l[g]; }
#pragma unroll
        for (int j = 0; j < E; ++j)
            if (j < per_lane && d0 + j < head_dim) sm_acc[warp][g][d0 + j] = acc[g][j];
    }
    __syncthreads();
    for (int g = 0; g < group; ++g) {
        float mx = NEG_INF;
        for (int w = 0; w < ATTN_WARPS; ++w) mx = fmaxf(mx, sm_m[w][g]);
        const long out = ((long)r * q_heads + kvh * group + g) * splits + split;
        float lsum = 0.0f;
        for (int w = 0; w < ATTN_WARPS; ++w) lsum += sm_m[w][g] == NEG_INF ? 0.0f : sm_l[w][g] * expf(sm_m[w][g] - mx);
        if (threadIdx.x == 0) { part_m[out] = mx; part_l[out] = lsum; }
        for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
            float a = 0.0f;
            for (int w = 0; w < ATTN_WARPS; ++w)
                if (sm_m[w][g] != NEG_INF) a += sm_acc[w][g][d] * expf(sm_m[w][g] - mx);
            part_acc[out * head_dim + d] = a;
        }
    }
}

#define ATTN_PARAMS_T(T) \
    const float* __restrict__ q, int q_stride, const T* __restrict__ pool, \
    const int* __restrict__ block_tables, int table_stride, \
    const int* __restrict__ row_table, const int* __restrict__ ctx_len, \
    float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc, \
    int q_heads, int kv_heads, int head_dim, int layer, int block_tokens, long block_stride, \
    int tokens_per_split, float scale, int window
#define ATTN_PARAMS ATTN_PARAMS_T(bf16_t)
#define ATTN_PARAMS_FP8 ATTN_PARAMS_T(fp8_t), long scale_offset
#define ATTN_ARGS q, q_stride, pool, block_tables, table_stride, row_table, ctx_len, part_m, part_l, part_acc, \
    q_heads, kv_heads, head_dim, layer, block_tokens, block_stride, tokens_per_split, scale, window

// Grid (rows, kv_heads, splits). The host picks the smallest variant that fits: head_dim <= 32*E,
// query heads per KV head <= G.
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial_e4g4(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial<4, 4, 4>(ATTN_ARGS, 0);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial_e4g8(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial<4, 8, 2>(ATTN_ARGS, 0);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial_e8g8(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial<8, 8, 2>(ATTN_ARGS, 0);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial_e4g4_fp8(ATTN_PARAMS_FP8) {
    wait_for_previous_kernel();
    attention_partial<4, 4, 4>(ATTN_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial_e4g8_fp8(ATTN_PARAMS_FP8) {
    wait_for_previous_kernel();
    attention_partial<4, 8, 2>(ATTN_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial_e8g8_fp8(ATTN_PARAMS_FP8) {
    wait_for_previous_kernel();
    attention_partial<8, 8, 2>(ATTN_ARGS, scale_offset);
}

// Grid (rows, q_heads); block head_dim threads (<= 256). out is [rows, q_heads * head_dim], bf16.
extern "C" __global__ void paged_attention_combine(
    const float* __restrict__ part_m, const float* __restrict__ part_l, const float* __restrict__ part_acc,
    bf16_t* __restrict__ out, int q_heads, int head_dim, int splits)
{
    wait_for_previous_kernel();
    const int r = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
    if (d >= head_dim) return;
    const long base = ((long)r * q_heads + h) * splits;
    // The partials were just written and come from L2. Unrolled loops with unconditional loads
    // keep eight splits' loads in flight at once; a branch per split had made each split one
    // more L2 round trip (6 us for 16 splits at batch 1 on an H200). An empty split (m = -inf,
    // l = 0, acc = 0) is dropped by a select, so no load depends on a comparison.
    float mx = NEG_INF;
#pragma unroll 8
    for (int s = 0; s < splits; ++s) mx = fmaxf(mx, part_m[base + s]);
    float num = 0.0f, den = 0.0f;
#pragma unroll 8
    for (int s = 0; s < splits; ++s) {
        const float ms = part_m[base + s], l = part_l[base + s], acc = part_acc[(base + s) * head_dim + d];
        const float w = ms == NEG_INF ? 0.0f : expf(ms - mx);
        den += w * l;
        num += w * acc;
    }
    out[((long)r * q_heads + h) * head_dim + d] = f32_to_bf16(den > 0.0f ? num / den : 0.0f);
}

#define DECODE_PARAMS ATTN_PARAMS, bf16_t* __restrict__ out, int fresh_tokens
#define DECODE_PARAMS_FP8 ATTN_PARAMS_T(fp8_t), bf16_t* __restrict__ out, int fresh_tokens, long scale_offset
#define DECODE_ARGS ATTN_ARGS, out, fresh_tokens

// The end of a decode block: merges its warps' online softmax states (sm_m, sm_l: [W][G];
// sm_acc: [W][G][HD], visible to the whole block) into one per query head. With one split that
// is the answer, written as bf16 here, and the host launches no combine; otherwise the block
// writes its partial result for paged_attention_combine.
template <int W, int G, int HD>
__device__ __forceinline__ void finish_decode_block(
    const float* sm_m, const float* sm_l, const float* sm_acc,
    float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc,
    bf16_t* __restrict__ out, int q_heads, int kv_heads)
{
    const int r = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
    const int group = q_heads / kv_heads;
    const long head0 = (long)r * q_heads + kvh * group;
    for (int i = threadIdx.x; i < group * HD; i += blockDim.x) {
        const int g = i / HD, d = i % HD;
        float mx = NEG_INF;
#pragma unroll
        for (int w = 0; w < W; ++w) mx = fmaxf(mx, sm_m[w * G + g]);
        float lsum = 0.0f, a = 0.0f;
#pragma unroll
        for (int w = 0; w < W; ++w) {
            const float mw = sm_m[w * G + g];
            if (mw == NEG_INF) continue;
            const float e = exp2f(mw - mx);
            lsum += sm_l[w * G + g] * e;
            a += sm_acc[(w * G + g) * HD + d] * e;
        }
        if (splits == 1) {
            out[(head0 + g) * HD + d] = f32_to_bf16(lsum > 0.0f ? a / lsum : 0.0f);
        } else {
            // The combine weighs splits by exp(m): back from the log2 domain.
            const long p = (head0 + g) * splits + split;
            if (d == 0) { part_m[p] = mx == NEG_INF ? NEG_INF : mx * 0.6931471805599453f; part_l[p] = lsum; }
            part_acc[p * HD + d] = a;
        }
    }
}

// Decode attention on tensor cores. On CUDA cores the 8B shape was bound by instruction issue,
// not memory: a warp spent some 100 instructions per token (unpacking, FMAs, shuffle reductions,
// exponentials) and, with one or two warps per scheduler, time per token did not move with the
// bytes in flight. Here one m16n8k16 MMA does a 16x8x16 piece of S = QKᵀ or O += PV.
//
// The block (row, KV head, split) puts its group's query heads in the rows of one m16 tile (rows
// past the group are zero and never written) and streams the split's K/V through shared memory,
// BN = W * KW keys per stage (cp.async, S stages, S - 1 in flight while it computes). Warp w takes
// keys [w * KW, (w + 1) * KW) of every stage with its own online softmax (log2 domain: q carries
// log2(e)); the warps merge at the end. Q and P are rounded to bf16 for the MMAs, as in prefill.
// Grid (rows, kv_heads, splits), 32 * W threads, (16 + 2 * S * BN) * D * 2 bytes of dynamic shared
// memory (CUDAKernels.decodeAttentionLaunch).
//
// The kernel before this one (rope_qkv_write_kv, or the skinny GEMM's rotary form, gemv.cu)
// writes q and the newest `fresh_tokens` positions of each row's context; everything older was
// in the pool before it started, and so were the block tables and lengths (copied from the host
// before the step's first kernel). So a block whose first S - 1 stages hold only older positions
// issues their copies before it waits for that kernel (programmatic dependent launch,
// common.cuh), and the wait then hides behind them. The host passes a larger fresh_tokens than
// any context where it cannot say (a prefill chunk).
//
// Over the fp8 pool (T = fp8_t) the S stages hold codes and scales, (2 * D + 8) * BN bytes each
// after one bf16 stage: each key tile is turned into that stage before the MMAs read it (one more
// barrier a tile), so the shared memory is (16 + 2 * BN) * D * 2 + S * (2 * D + 8) * BN bytes.
template <int D, int W, int KW, int S, typename T>
__device__ __forceinline__ void attention_decode_mma(
    const float* __restrict__ q, int q_stride, const T* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride,
    const int* __restrict__ row_table, const int* __restrict__ ctx_len,
    float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc,
    int q_heads, int kv_heads, int head_dim, int layer, int block_tokens, long block_stride,
    int tokens_per_split, float scale, int window, bf16_t* __restrict__ out, int fresh_tokens, long scale_offset)
{
    constexpr bool FP8 = sizeof(T) == 1;
    constexpr int CH = D / 8, BN = W * KW, THREADS = 32 * W;
    constexpr int STAGE = 2 * BN * D;          // bf16 per stage: K rows, then V rows
    constexpr int BUFS = FP8 ? 1 : S;          // bf16 stages
    constexpr int RAW = 2 * BN * D + 8 * BN;   // bytes per fp8 stage: K codes, V codes, K scales, V scales
    constexpr int C16 = D / 16;                // 16-byte chunks of an fp8 row
    // With head dim 256 the output fragments alone take 128 registers: Q is re-read from shared
    // memory per MMA step rather than held.
    constexpr bool QREG = D <= 128;
    static_assert(KW % 16 == 0 && (BN * CH) % THREADS == 0, "stage shape");
    static_assert(!FP8 || (BN * C16) % THREADS == 0, "fp8 stage shape");
    static_assert(BUFS * STAGE * 2 >= W * 8 * D * 4, "the warps' merge reuses the stages");
    extern __shared__ __align__(128) unsigned char decode_smem[];
    bf16_t* sQ = reinterpret_cast<bf16_t*>(decode_smem);   // [16][D]
    bf16_t* sKV = sQ + 16 * D;                              // [BUFS][2][BN][D]
    unsigned char* sRaw = reinterpret_cast<unsigned char*>(sKV + BUFS * STAGE);  // fp8: [S][RAW]
    __shared__ float sm_m[W * 8], sm_l[W * 8];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int r = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    const int group = q_heads / kv_heads;
    const int token_elems = kv_heads * D;
    const int* table = block_tables + (long)row_table[r] * table_stride;
    const int len = ctx_len[r];
    // The splits cover the keys the row sees: all of them, or with a sliding window (window > 0)
    // the last `window`.
    const int span = split_span(len, window, tokens_per_split, gridDim.z);
    const int start = (window > 0 ? max(0, len - window) : 0) + split * span;
    const int end = min(len, start + span);
    const int n_tiles = end > start ? (end - start + BN - 1) / BN : 0;
    const T* k_layer = pool + (long)(layer * 2) * block_tokens * token_elems + (long)kvh * D;
    const long v_offset = (long)block_tokens * token_elems;
    const unsigned int sKV_addr = smem_addr(sKV), sQ_addr = smem_addr(sQ);
    const unsigned int bt_magic = block_index_magic(block_tokens);

    auto load_kv = [&](int t) {
        const int n0 = start + t * BN;
        if constexpr (FP8) {
            const unsigned int kb = smem_addr(sRaw) + (t % S) * RAW, vb = kb + BN * D, ksb = vb + BN * D, vsb = ksb + BN * 4;
#pragma unroll
            for (int it = 0; it < BN * C16 / THREADS; ++it) {
                const int i = tid + it * THREADS;
                const int row = i / C16, c = i % C16, pos = n0 + row;
                const bool valid = pos < end;
                const T* src = pool;
                if (valid) {
                    const int bi = block_index(pos, bt_magic);
                    src = k_layer + (long)table[bi] * block_stride + (long)(pos - bi * block_tokens) * token_elems + c * 16;
                }
                cp_async16(kb + row * D + c * 16, src, valid);
                cp_async16(vb + row * D + c * 16, valid ? src + v_offset : src, valid);
            }
            for (int row = tid; row < BN; row += THREADS) {
                const int pos = n0 + row;
                const bool valid = pos < end;
                const T* ks = pool;
                const T* vs = pool;
                if (valid) {
                    const int bi = block_index(pos, bt_magic), off = pos - bi * block_tokens;
                    const T* block = pool + (long)table[bi] * block_stride;
                    ks = block + kv_scale_offset(scale_offset, layer, 0, off, block_tokens, kv_heads, kvh);
                    vs = block + kv_scale_offset(scale_offset, layer, 1, off, block_tokens, kv_heads, kvh);
                }
                cp_async4(ksb + row * 4, ks, valid);
                cp_async4(vsb + row * 4, vs, valid);
            }
            return;
        }
        const unsigned int kb = sKV_addr + (t % S) * STAGE * 2, vb = kb + BN * D * 2;
#pragma unroll
        for (int it = 0; it < BN * CH / THREADS; ++it) {
            const int i = tid + it * THREADS;
            const int row = i / CH, c = i % CH, pos = n0 + row;
            const bool valid = pos < end;
            const T* src = pool;
            if (valid) {
                const int bi = block_index(pos, bt_magic);
                src = k_layer + (long)table[bi] * block_stride + (long)(pos - bi * block_tokens) * token_elems + c * 8;
            }
            const unsigned int so = swz<D>(row, c) * 2;
            cp_async16(kb + so, src, valid);
            cp_async16(vb + so, valid ? src + v_offset : src, valid);
        }
    };
    auto load_first_stages = [&]() {
#pragma unroll
        for (int t = 0; t < S - 1; ++t) {
            if (t < n_tiles) load_kv(t);
            cp_async_commit();
        }
    };
    // Positions below len - fresh_tokens predate the previous kernel (fresh_tokens may exceed len).
    const bool early = (long)min(end, start + (S - 1) * BN) + fresh_tokens <= (long)len;
    if (early) load_first_stages();
    wait_for_previous_kernel();
    if (!early) load_first_stages();

    const float qs = scale * 1.4426950408889634f;
#pragma unroll
    for (int it = 0; it < (16 * CH + THREADS - 1) / THREADS; ++it) {
        const int i = tid + it * THREADS;
        if (i >= 16 * CH) break;
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
    unsigned int qf[QREG ? D / 16 : 1][4];
    if constexpr (QREG) {
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
            ldmatrix_x4(sQ_addr + swz<D>(lane & 15, kk * 2 + (lane >> 4)) * 2, qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3]);
    }

    // This lane's fragment row lane / 4 is query head g of the group; rows 8-15 (fragment
    // elements 2 and 3) are padding, their P is zero.
    const int g = lane >> 2, tq = lane & 3;
    float o[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float mx = NEG_INF, l = 0.0f;

    for (int t = 0; t < n_tiles; ++t) {
        cp_async_wait<S - 2>();
        // Stage t is complete for every thread, and every warp is done with stage t - 1, which
        // the next copy overwrites.
        __syncthreads();
        if (t + S - 1 < n_tiles) load_kv(t + S - 1);
        cp_async_commit();
        if constexpr (FP8) {
            // Stage t's codes times their rows' scales into the bf16 stage, which every warp is
            // done reading (the barrier above).
            const unsigned char* raw = sRaw + (t % S) * RAW;
            const float* scales = reinterpret_cast<const float*>(raw + 2 * BN * D);   // K rows', then V rows'
            for (int i = tid; i < 2 * BN * CH; i += THREADS) {
                const int v = i / (BN * CH), row = (i / CH) % BN, c = i % CH;
                const uint2 codes = *reinterpret_cast<const uint2*>(raw + (v * BN + row) * D + c * 8);
                *reinterpret_cast<uint4*>(sKV + v * BN * D + swz<D>(row, c)) = e4m3x8_to_bf16x8(codes, scales[v * BN + row]);
            }
            __syncthreads();
        }
        const unsigned int kb = sKV_addr + (FP8 ? 0 : (t % S) * STAGE * 2), vb = kb + BN * D * 2;
        const int key0 = warp * KW;

        float s[KW / 8][4];
#pragma unroll
        for (int j = 0; j < KW / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            unsigned int a[4];
            if constexpr (QREG) {
                a[0] = qf[kk][0]; a[1] = qf[kk][1]; a[2] = qf[kk][2]; a[3] = qf[kk][3];
            } else {
                ldmatrix_x4(sQ_addr + swz<D>(lane & 15, kk * 2 + (lane >> 4)) * 2, a[0], a[1], a[2], a[3]);
            }
#pragma unroll
            for (int j = 0; j < KW / 8; j += 2) {
                unsigned int b0, b1, b2, b3;
                const int key = key0 + j * 8 + (lane & 7) + ((lane >> 4) << 3);
                ldmatrix_x4(kb + swz<D>(key, kk * 2 + ((lane >> 3) & 1)) * 2, b0, b1, b2, b3);
                mma_bf16(s[j], a[0], a[1], a[2], a[3], b0, b1);
                mma_bf16(s[j + 1], a[0], a[1], a[2], a[3], b2, b3);
            }
        }

        const int pos0 = start + t * BN + key0 + 2 * tq;
        float x = mx;
#pragma unroll
        for (int j = 0; j < KW / 8; ++j) {
            if (pos0 + j * 8 >= end) s[j][0] = NEG_INF;
            if (pos0 + j * 8 + 1 >= end) s[j][1] = NEG_INF;
            x = fmaxf(x, fmaxf(s[j][0], s[j][1]));
        }
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
        // A warp that has seen no key yet (x = -inf) must get P = 0 and a zero rescale, not NaN.
        const float ref = x == NEG_INF ? 0.0f : x;
        const float corr = exp2f(mx - ref);
        mx = x;
        l *= corr;
#pragma unroll
        for (int j = 0; j < D / 8; ++j) { o[j][0] *= corr; o[j][1] *= corr; }
        unsigned int pf[KW / 16][4];
#pragma unroll
        for (int j = 0; j < KW / 8; ++j) {
            const float p0 = exp2f(s[j][0] - ref), p1 = exp2f(s[j][1] - ref);
            l += p0 + p1;
            // S's accumulator layout is the A-operand layout of the next product.
            pf[j >> 1][(j & 1) * 2] = pack_bf16x2(p0, p1);
            pf[j >> 1][(j & 1) * 2 + 1] = 0u;
        }
#pragma unroll
        for (int kk = 0; kk < KW / 16; ++kk) {
#pragma unroll
            for (int j = 0; j < D / 8; j += 2) {
                unsigned int b0, b1, b2, b3;
                const int key = key0 + kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
                ldmatrix_x4_trans(vb + swz<D>(key, j + (lane >> 4)) * 2, b0, b1, b2, b3);
                mma_bf16(o[j], pf[kk][0], pf[kk][1], pf[kk][2], pf[kk][3], b0, b1);
                mma_bf16(o[j + 1], pf[kk][0], pf[kk][1], pf[kk][2], pf[kk][3], b2, b3);
            }
        }
    }

    // Merge the warps in the stages' memory, which no copy writes any more.
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    __syncthreads();
    float* sm_acc = reinterpret_cast<float*>(sKV);   // [W][8][D]
    if (tq == 0) { sm_m[warp * 8 + g] = mx; sm_l[warp * 8 + g] = l; }
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
        sm_acc[(warp * 8 + g) * D + j * 8 + 2 * tq] = o[j][0];
        sm_acc[(warp * 8 + g) * D + j * 8 + 2 * tq + 1] = o[j][1];
    }
    __syncthreads();
    finish_decode_block<W, 8, D>(sm_m, sm_l, sm_acc, part_m, part_l, part_acc, out, q_heads, kv_heads);
}

// Head dims 64, 128 and 256, up to 8 query heads per KV head; 16 keys per warp per stage, three
// stages. Head dim 128 (the 8B shape) takes 8 warps, one block per SM (196 KiB of stages): on the
// H100 it beat 4 warps by 2-18% and 2 stages by up to 13%, each at its best split count
// (bench/results/decode-attention-h100.md); the others keep 4 warps, not timed. Written out, not by a macro, so that the kernel names stay
// visible to KernelLibrary's scan of the source.
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d64(DECODE_PARAMS) {
    attention_decode_mma<64, 4, 16, 3>(DECODE_ARGS, 0);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128(DECODE_PARAMS) {
    attention_decode_mma<128, 8, 16, 3>(DECODE_ARGS, 0);
}
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d256(DECODE_PARAMS) {
    attention_decode_mma<256, 4, 16, 3>(DECODE_ARGS, 0);
}
// The fp8 pool's, same shapes (not timed against other shapes).
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d64_fp8(DECODE_PARAMS_FP8) {
    attention_decode_mma<64, 4, 16, 3>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8(DECODE_PARAMS_FP8) {
    attention_decode_mma<128, 8, 16, 3>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d256_fp8(DECODE_PARAMS_FP8) {
    attention_decode_mma<256, 4, 16, 3>(DECODE_ARGS, scale_offset);
}
