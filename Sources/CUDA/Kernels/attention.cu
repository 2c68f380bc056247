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
// block). Both read the codes as they are and apply a row's scale once, to its key's score or
// its value's probability: the CUDA-core kernel decodes codes in registers, the tensor-core one
// (attention_decode_fp8) feeds them to f16 MMAs.

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

// The fp8 form: the values of the `per_lane` codes at p (the row's scale is applied by the caller,
// once a token rather than once a code), with one load and a conversion a pair when the count is
// 2, 4 or 8 and the head dim a multiple of it (`aligned`).
template <int E>
__device__ __forceinline__ void load_lane_chunk(const fp8_t* p, int per_lane, bool active, bool aligned, float out[E]) {
#pragma unroll
    for (int j = 0; j < E; ++j) out[j] = 0.0f;
    if (!active) return;
    if (E >= 8 && per_lane == 8 && aligned) {
        const uint2 w = *reinterpret_cast<const uint2*>(p);
        const unsigned int ws[2] = {w.x, w.y};
#pragma unroll
        for (int j = 0; j < 4 && 2 * j + 1 < E; ++j) {
            const float2 f = e4m3x2_to_f32x2(ws[j >> 1] >> ((j & 1) * 16));
            out[2 * j] = f.x;
            out[2 * j + 1] = f.y;
        }
    } else if (E >= 4 && per_lane == 4 && aligned) {
        const unsigned int w = *reinterpret_cast<const unsigned int*>(p);
        const float2 a = e4m3x2_to_f32x2(w), b = e4m3x2_to_f32x2(w >> 16);
        out[0] = a.x; out[1] = a.y; out[2] = b.x; out[3] = b.y;
    } else if (E >= 2 && per_lane == 2 && aligned) {
        const float2 a = e4m3x2_to_f32x2(*reinterpret_cast<const unsigned short*>(p));
        out[0] = a.x; out[1] = a.y;
    } else {
#pragma unroll
        for (int j = 0; j < E; ++j) if (j < per_lane) out[j] = e4m3_to_f32(p[j]);
    }
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
    // fp8: vector loads where every lane's chunk is aligned to its size.
    const bool aligned = head_dim % per_lane == 0;
    for (int base = start + warp * TOK; base < end; base += ATTN_WARPS * TOK) {
        float kf[TOK][E], vf[TOK][E], ks[TOK], vs[TOK];  // fp8: the rows' scales
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
                ks[i] = valid ? *reinterpret_cast<const float*>(scales + kv_scale_offset(scale_offset, layer, 0, off, block_tokens, kv_heads, kvh))
                              : 0.0f;
                vs[i] = valid ? *reinterpret_cast<const float*>(scales + kv_scale_offset(scale_offset, layer, 1, off, block_tokens, kv_heads, kvh))
                              : 0.0f;
                load_lane_chunk<E>(k, per_lane, active && valid, aligned, kf[i]);
                load_lane_chunk<E>(k + (long)block_tokens * token_elems, per_lane, active && valid, aligned, vf[i]);
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
            for (int i = 0; i < TOK; ++i) {
                s[i] = warp_sum(s[i]);
                if constexpr (sizeof(T) == 1) s[i] *= ks[i];  // q·(s·c) = s·(q·c)
            }
            float mx = m[g];
#pragma unroll
            for (int i = 0; i < TOK; ++i) if (base + i < end) mx = fmaxf(mx, s[i]);
            const float corr = expf(m[g] - mx);
            float psum = 0.0f, p[TOK];
#pragma unroll
            for (int i = 0; i < TOK; ++i) { p[i] = base + i < end ? expf(s[i] - mx) : 0.0f; psum += p[i]; }
            l[g] = l[g] * corr + psum;
            if constexpr (sizeof(T) == 1) {
#pragma unroll
                for (int i = 0; i < TOK; ++i) p[i] *= vs[i];  // p·(s·c) = (p·s)·c
            }
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

// One split's partial added to the combine's sums: weighted by its maximum's distance from the
// largest, an empty split (m = -inf, l = 0, acc = 0) by a select to nothing, so no load waits
// on a comparison.
__device__ __forceinline__ void combine_add(float m, float l, float acc, float mx, float& num, float& den) {
    const float w = m == NEG_INF ? 0.0f : expf(m - mx);
    den += w * l;
    num += w * acc;
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
    float num = 0.0f, den = 0.0f;
    // The partials were just written and come from L2, so the combine's time is L2 round trips.
    // At 8 splits or fewer (the 8B decode at batch 1 and 2K contexts) every partial is loaded
    // before any is used: one round trip. In the loop form below NVRTC spreads the second loop's
    // loads between its exponentials (cuobjdump), several round trips; loading first took 0.04 ms
    // (0.75%) off the 8B step at batch 1 on an H100 and left batch 16 as it was
    // (cuda-graphs-h200.md, 2026-12-07). The same sums in the same order; the splits past
    // `splits` add zeros. Sixteen loaded at once, timed with 16 splits at batch 1, was no faster
    // than 16 in the loop form, and both lost to the rule's 8 (H100, 2026-12-07).
    constexpr int L = 8;
    if (splits <= L) {
        float ms[L], ls[L], accs[L];
#pragma unroll
        for (int s = 0; s < L; ++s) {
            const bool on = s < splits;
            ms[s] = on ? part_m[base + s] : NEG_INF;
            ls[s] = on ? part_l[base + s] : 0.0f;
            accs[s] = on ? part_acc[(base + s) * head_dim + d] : 0.0f;
        }
        float mx = NEG_INF;
#pragma unroll
        for (int s = 0; s < L; ++s) mx = fmaxf(mx, ms[s]);
#pragma unroll
        for (int s = 0; s < L; ++s) combine_add(ms[s], ls[s], accs[s], mx, num, den);
        out[((long)r * q_heads + h) * head_dim + d] = f32_to_bf16(den > 0.0f ? num / den : 0.0f);
        return;
    }
    // Past those: unrolled loops with unconditional loads keep eight splits' loads in flight at
    // once; a branch per split had made each split one more L2 round trip (6 us for 16 splits at
    // batch 1 on an H200).
    float mx = NEG_INF;
#pragma unroll 8
    for (int s = 0; s < splits; ++s) mx = fmaxf(mx, part_m[base + s]);
#pragma unroll 8
    for (int s = 0; s < splits; ++s)
        combine_add(part_m[base + s], part_l[base + s], part_acc[(base + s) * head_dim + d], mx, num, den);
    out[((long)r * q_heads + h) * head_dim + d] = f32_to_bf16(den > 0.0f ? num / den : 0.0f);
}

#define DECODE_PARAMS ATTN_PARAMS, bf16_t* __restrict__ out, int fresh_tokens
#define DECODE_PARAMS_FP8 ATTN_PARAMS_T(fp8_t), bf16_t* __restrict__ out, int fresh_tokens, long scale_offset
#define DECODE_ARGS ATTN_ARGS, out, fresh_tokens

// Thread block clusters exist from sm_90 on. Below it the _cluster2 kernels compile without the
// attribute, to traps (cluster_barrier, cluster_load: common.cuh), and the launcher never picks
// them (CUDAKernels.decodeAttentionLaunch).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define CLUSTER_OF_2 __cluster_dims__(1, 1, 2)
#else
#define CLUSTER_OF_2
#endif

// The end of a decode block: merges its warps' online softmax states (sm_m, sm_l: [W][G];
// sm_acc: [W][G][HD], visible to the whole block) into one per query head. With one split that
// is the answer, written as bf16 here, and the host launches no combine; otherwise the block
// writes its partial result for paged_attention_combine.
//
// CL > 1 (the _cluster2 kernels): the splits of a (row, KV head) are one thread block cluster of
// CL blocks (gridDim.z == CL, launched with cluster dims (1, 1, CL)), and they combine among themselves through distributed shared memory:
// each block keeps its partial result in its own shared memory, and after a cluster barrier block
// k of the cluster combines every CL-th output element from all CL partials, so that no
// paged_attention_combine launch and no global round trip of the partials follow.
template <int W, int G, int HD, int CL = 1>
__device__ __forceinline__ void finish_decode_block(
    const float* sm_m, const float* sm_l, const float* sm_acc,
    float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc,
    bf16_t* __restrict__ out, int q_heads, int kv_heads)
{
    const int r = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
    const int group = q_heads / kv_heads;
    const long head0 = (long)r * q_heads + kvh * group;
    __shared__ float cl_m[CL > 1 ? G : 1], cl_l[CL > 1 ? G : 1], cl_acc[CL > 1 ? G * HD : 1];  // this block's partial (log2 domain)
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
        if constexpr (CL > 1) {
            if (d == 0) { cl_m[g] = mx; cl_l[g] = lsum; }
            cl_acc[i] = a;
        } else if (splits == 1) {
            out[(head0 + g) * HD + d] = f32_to_bf16(lsum > 0.0f ? a / lsum : 0.0f);
        } else {
            // The combine weighs splits by exp(m): back from the log2 domain.
            const long p = (head0 + g) * splits + split;
            if (d == 0) { part_m[p] = mx == NEG_INF ? NEG_INF : mx * 0.6931471805599453f; part_l[p] = lsum; }
            part_acc[p * HD + d] = a;
        }
    }
    if constexpr (CL > 1) {
        cluster_barrier();
        const unsigned int m_at = smem_addr(cl_m), l_at = smem_addr(cl_l), acc_at = smem_addr(cl_acc);
        for (int i = split + CL * (int)threadIdx.x; i < group * HD; i += CL * (int)blockDim.x) {
            const int g = i / HD;
            float m[CL], top = NEG_INF;
#pragma unroll
            for (int k = 0; k < CL; ++k) top = fmaxf(top, m[k] = cluster_load<float>(m_at + 4 * g, k));
            float lsum = 0.0f, a = 0.0f;
#pragma unroll
            for (int k = 0; k < CL; ++k) {
                if (m[k] == NEG_INF) continue;
                const float e = exp2f(m[k] - top);
                lsum += cluster_load<float>(l_at + 4 * g, k) * e;
                a += cluster_load<float>(acc_at + 4 * i, k) * e;
            }
            out[head0 * HD + i] = f32_to_bf16(lsum > 0.0f ? a / lsum : 0.0f);
        }
        // No block leaves while the others may still read its partial.
        cluster_barrier();
    }
}


// What a decode block (query row blockIdx.x, KV head blockIdx.y, split blockIdx.z) attends to, and where its keys are: K
// of token `off` of pool block b at k_layer + b * block_stride + off * token_elems, its V v_offset elements further on.
template <typename T>
struct decode_split {
    int r, kvh, split;
    int group;              // query heads per KV head
    int token_elems;        // elements of a token's K (or V), all KV heads
    const int* table;       // the row's block-table row
    int len;                // the row's context length
    int start, end;         // the split's keys
    int n_tiles;            // stages of BN keys over them
    const T* k_layer;
    long v_offset;
    unsigned int bt_magic;  // block_index's for block_tokens
};

template <int D, int BN, typename T>
__device__ __forceinline__ decode_split<T> decode_take_split(const T* pool, const int* block_tables, int table_stride, const int* row_table,
                                                             const int* ctx_len, int q_heads, int kv_heads, int layer, int block_tokens,
                                                             int tokens_per_split, int window) {
    decode_split<T> s;
    s.r = blockIdx.x; s.kvh = blockIdx.y; s.split = blockIdx.z;
    s.group = q_heads / kv_heads;
    s.token_elems = kv_heads * D;
    s.table = block_tables + (long)row_table[s.r] * table_stride;
    s.len = ctx_len[s.r];
    // The splits cover the keys the row sees: all of them, or with a sliding window (window > 0)
    // the last `window`.
    const int span = split_span(s.len, window, tokens_per_split, gridDim.z);
    s.start = (window > 0 ? max(0, s.len - window) : 0) + s.split * span;
    s.end = min(s.len, s.start + span);
    s.n_tiles = s.end > s.start ? (s.end - s.start + BN - 1) / BN : 0;
    s.k_layer = pool + (long)(layer * 2) * block_tokens * s.token_elems + (long)s.kvh * D;
    s.v_offset = (long)block_tokens * s.token_elems;
    s.bt_magic = block_index_magic(block_tokens);
    return s;
}

// Queues the copies of the split's keys n0 ..< n0 + BN (zeros past its end) to a stage's K rows at shared address kb and
// V rows at vb: one (row, 16-byte chunk) a thread and iteration, so that a warp's copy covers whole rows; chunk c of a
// row goes to byte at(row, c) of both.
template <int D, int BN, int THREADS, typename T, typename At>
__device__ __forceinline__ void decode_copy_kv(const decode_split<T>& s, const T* pool, int block_tokens, long block_stride, int n0,
                                               unsigned int kb, unsigned int vb, At at) {
    constexpr int CE = 16 / (int)sizeof(T), CH = D / CE;   // elements a chunk, chunks a row
#pragma unroll
    for (int it = 0; it < BN * CH / THREADS; ++it) {
        const int i = (int)threadIdx.x + it * THREADS;
        const int row = i / CH, c = i % CH, pos = n0 + row;
        const bool valid = pos < s.end;
        const T* src = pool;
        if (valid) {
            const int bi = block_index(pos, s.bt_magic);
            src = s.k_layer + (long)s.table[bi] * block_stride + (long)(pos - bi * block_tokens) * s.token_elems + c * CE;
        }
        const unsigned int so = at(row, c);
        cp_async16(kb + so, src, valid);
        cp_async16(vb + so, valid ? src + s.v_offset : src, valid);
    }
}

// decode_copy_kv with one pool lookup a row (the head-dim-128 kernels): a warp copies the same rows in every pass,
// so lane j of it looks up the pool address of the j-th of them once (block table, block stride, token offset) and
// the passes take it by shuffle. decode_copy_kv's lookup and 64-bit address for each (row, chunk) pair are most of
// the copy loop's instructions (fp8 kernel at head dim 128: 680 SASS instructions from the stage barrier to the
// copies' commit, against 176 here). Lane j also hands its row to row_copied(row, valid, block, token), valid when
// its key is inside the split, block and token its place in the pool then (the fp8 kernel queues the row's scales
// there, zeros past the split).
template <int D, int BN, int THREADS, typename T, typename At, typename RowCopied>
__device__ __forceinline__ void decode_copy_kv_once(const decode_split<T>& s, const T* pool, int block_tokens, long block_stride, int n0,
                                                    unsigned int kb, unsigned int vb, At at, RowCopied row_copied) {
    constexpr int CE = 16 / (int)sizeof(T), CH = D / CE;   // elements a chunk, chunks a row
    constexpr int PASSES = BN * CH / THREADS, PASS_ROWS = THREADS / CH, WARP_PASS_ROWS = 32 / CH;
    static_assert(32 % CH == 0 && PASSES * WARP_PASS_ROWS <= 32, "a warp's rows must fit its lanes");
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5;
    // The warp's j-th row: WARP_PASS_ROWS rows a pass, passes PASS_ROWS apart.
    auto warp_row = [&](int j) { return warp * WARP_PASS_ROWS + j % WARP_PASS_ROWS + (j / WARP_PASS_ROWS) * PASS_ROWS; };
    const T* mine = pool;
    if (lane < PASSES * WARP_PASS_ROWS) {
        const int row = warp_row(lane), pos = n0 + row;
        int block = 0, token = 0;
        if (pos < s.end) {
            const int bi = block_index(pos, s.bt_magic);
            block = s.table[bi];
            token = pos - bi * block_tokens;
            mine = s.k_layer + (long)block * block_stride + (long)token * s.token_elems;
        }
        row_copied(row, pos < s.end, block, token);
    }
    const unsigned long long mine_bits = reinterpret_cast<unsigned long long>(mine);
#pragma unroll
    for (int it = 0; it < PASSES; ++it) {
        const int j = it * WARP_PASS_ROWS + lane / CH, row = warp_row(j), c = lane % CH;
        const bool valid = n0 + row < s.end;
        const T* src = reinterpret_cast<const T*>(__shfl_sync(0xffffffffu, mine_bits, j)) + c * CE;
        const unsigned int so = at(row, c);
        cp_async16(kb + so, valid ? src : pool, valid);
        cp_async16(vb + so, valid ? src + s.v_offset : pool, valid);
    }
}

// Queues stages 0 ..< S - 1 with load_kv (a commit group each, empty past the split's tiles) and waits for the previous
// kernel: the copies go first when they read only positions that predate it (attention_decode_mma).
template <int S, int BN, typename T, typename LoadKV>
__device__ __forceinline__ void decode_first_stages(const decode_split<T>& s, int fresh_tokens, const LoadKV& load_kv) {
    auto load_first_stages = [&]() {
#pragma unroll
        for (int t = 0; t < S - 1; ++t) {
            if (t < s.n_tiles) load_kv(t);
            cp_async_commit();
        }
    };
    // Positions below len - fresh_tokens predate the previous kernel (fresh_tokens may exceed len).
    const bool early = (long)min(s.end, s.start + (S - 1) * BN) + fresh_tokens <= (long)s.len;
    if (early) load_first_stages();
    wait_for_previous_kernel();
    if (!early) load_first_stages();
}

// Waits for stage t and queues stage t + S - 1 with load_kv (a commit group, empty past the split's tiles).
template <int S, typename LoadKV>
__device__ __forceinline__ void decode_next_stage(int t, int n_tiles, const LoadKV& load_kv) {
    cp_async_wait<S - 2>();
    // Stage t is complete for every thread, and every warp is done with stage t - 1, which
    // the next copy overwrites.
    __syncthreads();
    if (t + S - 1 < n_tiles) load_kv(t + S - 1);
    cp_async_commit();
}

// One tile's step of a head's online softmax (log2 domain): its running maximum mx becomes x, the maximum over the tile's
// scores too, and its sum l is rescaled to it. Returns the rescale factor of l and the output; ref is what the tile's
// scores subtract in their exponentials.
__device__ __forceinline__ float decode_rescale(float x, float& mx, float& l, float& ref) {
    // A head that has seen no key yet (x = -inf) must get P = 0 and a zero rescale, not NaN.
    ref = x == NEG_INF ? 0.0f : x;
    const float corr = exp2f(mx - ref);
    mx = x;
    l *= corr;
    return corr;
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
// The kernel before this one (rope_qkv_write_kv or _fp8, or the skinny GEMM's rotary form, gemv.cu)
// writes q and the newest `fresh_tokens` positions of each row's context; everything older was
// in the pool before it started, and so were the block tables and lengths (copied from the host
// before the step's first kernel). So a block whose first S - 1 stages hold only older positions
// issues their copies before it waits for that kernel (programmatic dependent launch,
// common.cuh), and the wait then hides behind them. The host passes a larger fresh_tokens than
// any context where it cannot say (a prefill chunk).
//
// ONCE copies through decode_copy_kv_once; CL > 1 combines the CL splits of a (row, KV head) in a
// thread block cluster (finish_decode_block) instead of paged_attention_combine. The head-dim-128
// kernels take both where measured to win (bench/results/fp8-kv.md): ONCE everywhere (0.4-3.8% off
// a whole 8B decode step, H200), a cluster of 2 at 2 splits (the launcher's pick at batches of 6-8,
// and of any larger batch at longest contexts of 4K-8K tokens: a whole fp8 step at batch 16 x 7936
// 1.5% faster than with the same splits and the combine, H100). Clusters of 4 at 4 splits lost
// 5.7% of that step (H100), clusters of 8 and 16 lost in the lab.
template <int D, int W, int KW, int S, bool ONCE = false, int CL = 1>
__device__ __forceinline__ void attention_decode_mma(DECODE_PARAMS)
{
    constexpr int CH = D / 8, BN = W * KW, THREADS = 32 * W;
    constexpr int STAGE = 2 * BN * D;          // bf16 per stage: K rows, then V rows
    // With head dim 256 the output fragments alone take 128 registers: Q is re-read from shared
    // memory per MMA step rather than held.
    constexpr bool QREG = D <= 128;
    static_assert(KW % 16 == 0 && (BN * CH) % THREADS == 0, "stage shape");
    static_assert(S * STAGE * 2 >= W * 8 * D * 4, "the warps' merge reuses the stages");
    extern __shared__ __align__(128) unsigned char decode_smem[];
    bf16_t* sQ = reinterpret_cast<bf16_t*>(decode_smem);   // [16][D]
    bf16_t* sKV = sQ + 16 * D;                              // [S][2][BN][D]
    __shared__ float sm_m[W * 8], sm_l[W * 8];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const decode_split<bf16_t> sp = decode_take_split<D, BN>(pool, block_tables, table_stride, row_table, ctx_len, q_heads, kv_heads, layer,
                                                             block_tokens, tokens_per_split, window);
    const int r = sp.r, kvh = sp.kvh, group = sp.group, start = sp.start, end = sp.end, n_tiles = sp.n_tiles;
    const unsigned int sKV_addr = smem_addr(sKV), sQ_addr = smem_addr(sQ);

    auto load_kv = [&](int t) {
        const unsigned int kb = sKV_addr + (t % S) * STAGE * 2, vb = kb + BN * D * 2;
        auto at = [](int row, int c) { return swz<D>(row, c) * 2; };
        if constexpr (ONCE)
            decode_copy_kv_once<D, BN, THREADS>(sp, pool, block_tokens, block_stride, start + t * BN, kb, vb, at, [](int, bool, int, int) {});
        else
            decode_copy_kv<D, BN, THREADS>(sp, pool, block_tokens, block_stride, start + t * BN, kb, vb, at);
    };
    decode_first_stages<S, BN>(sp, fresh_tokens, load_kv);

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
        decode_next_stage<S>(t, n_tiles, load_kv);
        const unsigned int kb = sKV_addr + (t % S) * STAGE * 2, vb = kb + BN * D * 2;
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
        float ref;
        const float corr = decode_rescale(x, mx, l, ref);
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
    finish_decode_block<W, 8, D, CL>(sm_m, sm_l, sm_acc, part_m, part_l, part_acc, out, q_heads, kv_heads);
}

// Head dims 64, 128 and 256, up to 8 query heads per KV head; 16 keys per warp per stage, three
// stages. Head dim 128 (the 8B shape) takes 8 warps, one block per SM (196 KiB of stages): on the
// H100 it beat 4 warps by 2-18% and 2 stages by up to 13%, each at its best split count
// (bench/results/decode-attention-h100.md); the others keep 4 warps, not timed. Written out, not by a macro, so that the kernel names stay
// visible to KernelLibrary's scan of the source.
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d64(DECODE_PARAMS) {
    attention_decode_mma<64, 4, 16, 3>(DECODE_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128(DECODE_PARAMS) {
    attention_decode_mma<128, 8, 16, 3, true>(DECODE_ARGS);
}
// Exactly 2 splits, combined in the cluster: no paged_attention_combine after it.
extern "C" __global__ void CLUSTER_OF_2 __launch_bounds__(256) paged_attention_decode_d128_cluster2(DECODE_PARAMS) {
    attention_decode_mma<128, 8, 16, 3, true, 2>(DECODE_ARGS);
}
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d256(DECODE_PARAMS) {
    attention_decode_mma<256, 4, 16, 3>(DECODE_ARGS);
}
// Decode attention over the fp8 pool on tensor cores (f16 MMAs, fp32 accumulation), built so that
// a code costs about one instruction on its way to an MMA and a block needs few registers:
//
// - Every E4M3 value is exactly an f16, so a pair of codes becomes an MMA operand register in one
//   conversion (cvt.rn.f16x2.e4m3x2), in registers, straight from the stage's codes.
// - Keys are the m16 rows of both products, the group's query heads the n8 columns: S^T = K Q^T
//   takes 16 keys' codes as the A operand and Q as B; O^T = V^T P^T takes V's codes as A (16 dims
//   by 16 keys) and P^T as B, which one movmatrix per 8 keys makes from S^T's accumulator. With
//   at most 8 query heads a KV head, the heads padded to 16 rows (the bf16 kernel's layout) wasted
//   three quarters of each MMA at the 8B shape's 4; here half as many MMAs do the same work, and
//   the kernel fits in about 100 registers, so two blocks share a multiprocessor. That was the
//   gain: at batch 16 over 8K-token contexts one layer's attention went from 110 to 85 us
//   (bench/results/fp8-kv.md); the same transposed kernel at one block a multiprocessor was not faster.
// - The scales leave the inner loop: a key's scale multiplies its score after the MMA
//   (q·(s·c) = s·(q·c)), and a value row's scale multiplies that key's probability before the
//   P·V MMA ((p·s)·c). P·s goes to f16 as a fraction of the warp's largest V scale in the tile,
//   and the tile's product is added to the output times that largest scale, so f16's range never
//   matters (P·s of different rows can be decades apart).
// - Q goes to f16 as a fraction of its head's largest |q| (256 at most), its scale folded into the
//   score's multiplier likewise.
// - The order of the dot products' terms is free, so the fragments are laid out for the loads:
//   a lane's K operand is eight consecutive codes of a key (one 8-byte load for two MMAs, Q's
//   fragments permuted to match), and its V operand four consecutive dims of two keys (two 4-byte
//   loads, paired by byte permutes, for two MMAs whose rows are dims 4·g + {0, 1} and {2, 3}: the
//   output is written back in the right order at the end).
// - Rows of the stages are stored with their 16-byte chunks XOR-swizzled by (row & 7) (as far as
//   a row has chunks), which keeps both loads free of bank conflicts at head dims 128 and 256.
// - A stage's copies are one (row, 16-byte chunk) a thread and iteration, so that a warp's copy
//   covers whole rows. The loop's SASS is mostly their address arithmetic (a block-table lookup
//   and a 64-bit address each), but a copy of every chunk of a row by two threads, one lookup a
//   thread, made this kernel and the bf16 one slower (fp8-kv.md).
//
// Grid (rows, kv_heads, splits), 32 * W threads, S stages of BN = W * KW keys: K codes, V codes,
// K scales, V scales, (2 * D + 8) * BN bytes a stage (CUDAKernels.decodeAttentionLaunch). The
// pipeline, the early copies before the wait for the previous kernel, the online softmax (log2
// domain) and the final merge are attention_decode_mma's, through the same helpers, and so are ONCE
// and CL.
template <int D, int W, int KW, int S, bool ONCE = false, int CL = 1>
__device__ __forceinline__ void attention_decode_fp8(DECODE_PARAMS_FP8)
{
    constexpr int BN = W * KW, THREADS = 32 * W, KT = KW / 16;
    constexpr int C16 = D / 16;                   // 16-byte chunks of a row of codes
    constexpr int SWZ = (C16 < 8 ? C16 : 8) - 1;  // the chunk swizzle's mask
    constexpr int RAW = 2 * BN * D + 8 * BN;      // bytes a stage: K codes, V codes, K scales, V scales
    static_assert(D % 32 == 0 && KW % 16 == 0 && (BN * C16) % THREADS == 0, "stage shape");
    static_assert(S * RAW >= W * 8 * D * 4, "the warps' merge reuses the stages");
    extern __shared__ __align__(128) unsigned char decode_smem[];
    __shared__ float sm_m[W * 8], sm_l[W * 8];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const decode_split<fp8_t> sp = decode_take_split<D, BN>(pool, block_tables, table_stride, row_table, ctx_len, q_heads, kv_heads, layer,
                                                            block_tokens, tokens_per_split, window);
    const int r = sp.r, kvh = sp.kvh, group = sp.group, start = sp.start, end = sp.end, n_tiles = sp.n_tiles;
    const unsigned int smem = smem_addr(decode_smem);
    // Byte offset of (row, byte) in a stage's K or V codes.
    auto at = [](int row, int byte) { return row * D + ((((byte >> 4) ^ (row & SWZ))) << 4) + (byte & 15); };

    auto load_kv = [&](int t) {
        const int n0 = start + t * BN;
        const unsigned int kb = smem + (t % S) * RAW, vb = kb + BN * D, ksb = vb + BN * D, vsb = ksb + BN * 4;
        if constexpr (ONCE) {
            const long v_scales = (long)block_tokens * kv_heads * 4;   // V's scales after K's, kv_scale_offset
            decode_copy_kv_once<D, BN, THREADS>(
                sp, pool, block_tokens, block_stride, n0, kb, vb, [&](int row, int c) { return at(row, c * 16); },
                [&](int row, bool valid, int block, int token) {
                    const fp8_t* ks = pool + (long)block * block_stride + kv_scale_offset(scale_offset, layer, 0, token, block_tokens, kv_heads, kvh);
                    cp_async4(ksb + row * 4, valid ? ks : pool, valid);
                    cp_async4(vsb + row * 4, valid ? ks + v_scales : pool, valid);
                });
            return;
        }
        decode_copy_kv<D, BN, THREADS>(sp, pool, block_tokens, block_stride, n0, kb, vb, [&](int row, int c) { return at(row, c * 16); });
        for (int row = tid; row < BN; row += THREADS) {
            const int pos = n0 + row;
            const bool valid = pos < end;
            const fp8_t* ks = pool;
            const fp8_t* vs = pool;
            if (valid) {
                const int bi = block_index(pos, sp.bt_magic), off = pos - bi * block_tokens;
                const fp8_t* block = pool + (long)sp.table[bi] * block_stride;
                ks = block + kv_scale_offset(scale_offset, layer, 0, off, block_tokens, kv_heads, kvh);
                vs = block + kv_scale_offset(scale_offset, layer, 1, off, block_tokens, kv_heads, kvh);
            }
            cp_async4(ksb + row * 4, ks, valid);
            cp_async4(vsb + row * 4, vs, valid);
        }
    };
    decode_first_stages<S, BN>(sp, fresh_tokens, load_kv);

    const int g = lane >> 2, tq = lane & 3;
    // Q as the B operand: column g is query head g (heads past the group are zero), dims
    // 32·kc + 8·tq + 4·h + {0, 1} (register 0) and + {2, 3} (register 1) of k-step 2·kc + h,
    // matching the K codes' A operand.
    unsigned int qb[D / 32][2][2];
    float qmult;  // head g's score multiplier: softmax scale · log2(e) / Q's f16 factor
    {
        float qv[D / 32][8];
        float qmax = 0.0f;
        const float* qh = q + (long)r * q_stride + (long)(kvh * group + g) * D + 8 * tq;
#pragma unroll
        for (int kc = 0; kc < D / 32; ++kc) {
            float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f), b = a;
            if (g < group) {
                a = *reinterpret_cast<const float4*>(qh + 32 * kc);
                b = *reinterpret_cast<const float4*>(qh + 32 * kc + 4);
            }
            qv[kc][0] = a.x; qv[kc][1] = a.y; qv[kc][2] = a.z; qv[kc][3] = a.w;
            qv[kc][4] = b.x; qv[kc][5] = b.y; qv[kc][6] = b.z; qv[kc][7] = b.w;
#pragma unroll
            for (int e = 0; e < 8; ++e) qmax = fmaxf(qmax, fabsf(qv[kc][e]));
        }
        qmax = fmaxf(qmax, __shfl_xor_sync(0xffffffffu, qmax, 1));
        qmax = fmaxf(qmax, __shfl_xor_sync(0xffffffffu, qmax, 2));
        const float f = qmax > 0.0f ? 256.0f / qmax : 0.0f;
        qmult = scale * 1.4426950408889634f * (qmax / 256.0f);
#pragma unroll
        for (int kc = 0; kc < D / 32; ++kc)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                qb[kc][h][0] = pack_f16x2(qv[kc][4 * h] * f, qv[kc][4 * h + 1] * f);
                qb[kc][h][1] = pack_f16x2(qv[kc][4 * h + 2] * f, qv[kc][4 * h + 3] * f);
            }
    }
    // This lane's score columns are heads 2·tq and 2·tq + 1 (head h's multiplier is in lane 4·h).
    const float qm[2] = {__shfl_sync(0xffffffffu, qmult, 8 * tq), __shfl_sync(0xffffffffu, qmult, 8 * tq + 4)};

    // o[c][u][e]: dim 32·c + 4·g + 2·u + (e >> 1), head 2·tq + (e & 1), in units of the V scales.
    float o[D / 32][2][4];
#pragma unroll
    for (int c = 0; c < D / 32; ++c)
#pragma unroll
        for (int u = 0; u < 2; ++u) o[c][u][0] = o[c][u][1] = o[c][u][2] = o[c][u][3] = 0.0f;
    // Per head 2·tq + e: the running maximum (the same in the eight lanes of a tq) and this lane's
    // share of the sum.
    float mx[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};
    const int key0 = warp * KW;

    for (int t = 0; t < n_tiles; ++t) {
        decode_next_stage<S>(t, n_tiles, load_kv);
        const unsigned char* kst = decode_smem + (t % S) * RAW;
        const unsigned char* vst = kst + BN * D;
        const float* ksc = reinterpret_cast<const float*>(vst + BN * D);
        const float* vsc = ksc + BN;

        // S^T over the warp's keys: rows key0 + 16·kt + g (elements 0, 1) and + 8 (2, 3), columns
        // heads 2·tq and 2·tq + 1. Two accumulators halve the MMAs' dependency chain.
        float s[KT][4];
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
            float sa[4] = {0.0f, 0.0f, 0.0f, 0.0f}, sb[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const int ka = key0 + 16 * kt + g;
#pragma unroll
            for (int kc = 0; kc < D / 32; ++kc) {
                const uint2 ca = *reinterpret_cast<const uint2*>(kst + at(ka, 32 * kc + 8 * tq));
                const uint2 cb = *reinterpret_cast<const uint2*>(kst + at(ka + 8, 32 * kc + 8 * tq));
                const uint2 alo = e4m3x4_to_f16x4(ca.x), ahi = e4m3x4_to_f16x4(ca.y);
                const uint2 blo = e4m3x4_to_f16x4(cb.x), bhi = e4m3x4_to_f16x4(cb.y);
                mma_f16(sa, alo.x, blo.x, alo.y, blo.y, qb[kc][0][0], qb[kc][0][1]);
                mma_f16(sb, ahi.x, bhi.x, ahi.y, bhi.y, qb[kc][1][0], qb[kc][1][1]);
            }
#pragma unroll
            for (int e = 0; e < 4; ++e) s[kt][e] = sa[e] + sb[e];
        }

        // Scores times their keys' scales, masked past the end; the heads' maxima over the keys
        // are over the eight lanes of a tq.
        const int pos0 = start + t * BN + key0 + g;
        float x[2] = {mx[0], mx[1]};
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
            const int ka = key0 + 16 * kt + g;
            const float ksa = ksc[ka], ksb = ksc[ka + 8];
            const bool va = pos0 + 16 * kt < end, vb = pos0 + 16 * kt + 8 < end;
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                s[kt][e] = va ? s[kt][e] * ksa * qm[e] : NEG_INF;
                s[kt][2 + e] = vb ? s[kt][2 + e] * ksb * qm[e] : NEG_INF;
                x[e] = fmaxf(x[e], fmaxf(s[kt][e], s[kt][2 + e]));
            }
        }
        float corr[2], ref[2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            x[e] = fmaxf(x[e], __shfl_xor_sync(0xffffffffu, x[e], 4));
            x[e] = fmaxf(x[e], __shfl_xor_sync(0xffffffffu, x[e], 8));
            x[e] = fmaxf(x[e], __shfl_xor_sync(0xffffffffu, x[e], 16));
            corr[e] = decode_rescale(x[e], mx[e], l[e], ref[e]);
        }
        // P·s as a fraction of the warp's largest V scale in the tile, vmax (keys past the end
        // have scale 0).
        float vsa[KT], vsb[KT], vmax = 0.0f;
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
            vsa[kt] = vsc[key0 + 16 * kt + g];
            vsb[kt] = vsc[key0 + 16 * kt + g + 8];
            vmax = fmaxf(vmax, fmaxf(vsa[kt], vsb[kt]));
        }
        vmax = fmaxf(vmax, __shfl_xor_sync(0xffffffffu, vmax, 4));
        vmax = fmaxf(vmax, __shfl_xor_sync(0xffffffffu, vmax, 8));
        vmax = fmaxf(vmax, __shfl_xor_sync(0xffffffffu, vmax, 16));
        const float vinv = vmax > 0.0f ? 1.0f / vmax : 0.0f;
        // P^T as the B operand: register 0 holds keys 2·tq, +1 of the 16, register 1 keys
        // 8 + 2·tq, +1, column head g: S^T's accumulator rows (keys) by columns (heads), transposed.
        unsigned int pb[KT][2];
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
            const float p0 = exp2f(s[kt][0] - ref[0]), p1 = exp2f(s[kt][1] - ref[1]);
            const float p2 = exp2f(s[kt][2] - ref[0]), p3 = exp2f(s[kt][3] - ref[1]);
            l[0] += p0 + p2;
            l[1] += p1 + p3;
            const float wa = vsa[kt] * vinv, wb = vsb[kt] * vinv;
            pb[kt][0] = transpose_8x8_b16(pack_f16x2(p0 * wa, p1 * wa));
            pb[kt][1] = transpose_8x8_b16(pack_f16x2(p2 * wb, p3 * wb));
        }
        // O^T += V^T P^T: A rows g and g + 8 of MMA (c, u) are dims 32·c + 4·g + 2·u and + 1, its
        // columns keys 2·tq, +1 (registers 0, 1) and 8 + 2·tq, +1 (registers 2, 3).
        float acc[D / 32][2][4];
#pragma unroll
        for (int c = 0; c < D / 32; ++c)
#pragma unroll
            for (int u = 0; u < 2; ++u) acc[c][u][0] = acc[c][u][1] = acc[c][u][2] = acc[c][u][3] = 0.0f;
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
            const int key = key0 + 16 * kt + 2 * tq;
#pragma unroll
            for (int c = 0; c < D / 32; ++c) {
                const int byte = 32 * c + 4 * g;
                const unsigned int w0 = *reinterpret_cast<const unsigned int*>(vst + at(key, byte));
                const unsigned int w1 = *reinterpret_cast<const unsigned int*>(vst + at(key + 1, byte));
                const unsigned int w8 = *reinterpret_cast<const unsigned int*>(vst + at(key + 8, byte));
                const unsigned int w9 = *reinterpret_cast<const unsigned int*>(vst + at(key + 9, byte));
                // Dims 4·g + 0, 1, then 2, 3, each register a pair of keys.
                const uint2 b01 = e4m3x4_to_f16x4(__byte_perm(w0, w1, 0x5140)), b23 = e4m3x4_to_f16x4(__byte_perm(w0, w1, 0x7362));
                const uint2 c01 = e4m3x4_to_f16x4(__byte_perm(w8, w9, 0x5140)), c23 = e4m3x4_to_f16x4(__byte_perm(w8, w9, 0x7362));
                mma_f16(acc[c][0], b01.x, b01.y, c01.x, c01.y, pb[kt][0], pb[kt][1]);
                mma_f16(acc[c][1], b23.x, b23.y, c23.x, c23.y, pb[kt][0], pb[kt][1]);
            }
        }
#pragma unroll
        for (int c = 0; c < D / 32; ++c)
#pragma unroll
            for (int u = 0; u < 2; ++u)
#pragma unroll
                for (int e = 0; e < 4; ++e) o[c][u][e] = fmaf(vmax, acc[c][u][e], o[c][u][e] * corr[e & 1]);
    }

    // The heads' sums over the eight lanes of a tq; then merge the warps in the stages' memory,
    // which no copy writes any more.
#pragma unroll
    for (int e = 0; e < 2; ++e) {
        l[e] += __shfl_xor_sync(0xffffffffu, l[e], 4);
        l[e] += __shfl_xor_sync(0xffffffffu, l[e], 8);
        l[e] += __shfl_xor_sync(0xffffffffu, l[e], 16);
    }
    __syncthreads();
    float* sm_acc = reinterpret_cast<float*>(decode_smem);   // [W][8][D]
    if (g == 0) {
#pragma unroll
        for (int e = 0; e < 2; ++e) { sm_m[warp * 8 + 2 * tq + e] = mx[e]; sm_l[warp * 8 + 2 * tq + e] = l[e]; }
    }
#pragma unroll
    for (int c = 0; c < D / 32; ++c)
#pragma unroll
        for (int u = 0; u < 2; ++u)
#pragma unroll
            for (int e = 0; e < 4; ++e)
                sm_acc[(warp * 8 + 2 * tq + (e & 1)) * D + 32 * c + 4 * g + 2 * u + (e >> 1)] = o[c][u][e];
    __syncthreads();
    finish_decode_block<W, 8, D, CL>(sm_m, sm_l, sm_acc, part_m, part_l, part_acc, out, q_heads, kv_heads);
}

// The fp8 pool's: head dims 64, 128 and 256 with the bf16 kernels' warps and keys per warp. Head
// dim 128 (the 8B shape) takes three stages, 101 KiB, so that two blocks share a multiprocessor
// (the lab's best with two and three stages, decode-attention lab in fp8-kv.md); 64 and 256 keep
// five, not timed.
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d64_fp8(DECODE_PARAMS_FP8) {
    attention_decode_fp8<64, 4, 16, 5>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 16, 3, true>(DECODE_ARGS, scale_offset);
}
// Exactly 2 splits, combined in the cluster: no paged_attention_combine after it.
extern "C" __global__ void CLUSTER_OF_2 __launch_bounds__(256) paged_attention_decode_d128_fp8_cluster2(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 16, 3, true, 2>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d256_fp8(DECODE_PARAMS_FP8) {
    attention_decode_fp8<256, 4, 16, 5>(DECODE_ARGS, scale_offset);
}
