// Paged attention over the block-major KV pool, split across the context (flash-decoding):
// pass 1 computes, for each query row, head and split of the context, a partial softmax
// (running max m, sum l, weighted sum of V); pass 2 combines the splits.
//
// A "query row" is one token's query: a decode step has one per sequence, a prefill has one per
// prompt token, each with its own visible context length (causal masking), so the same kernels
// serve both. row_table[r] picks the block-table row of the query's sequence.

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

// One block per (query row, KV head, split of the context), 32 * ATTN_WARPS threads. The block
// serves every query head of its KV head (grouped-query attention), so each K/V row is read
// once for the group. Lane l owns elements [l * per_lane, (l + 1) * per_lane) of a head
// (per_lane = ceil(head_dim / 32) <= E); group <= G. Each warp takes TOK consecutive tokens at a
// time (independent loads and reductions in flight), keeping an online softmax per query head;
// the block then merges its warps into one partial result per head.
template <int E, int G, int TOK>
__device__ __forceinline__ void attention_partial(
    const float* __restrict__ q, int q_stride, const bf16_t* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride,
    const int* __restrict__ row_table, const int* __restrict__ ctx_len,
    float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc,
    int q_heads, int kv_heads, int head_dim, int layer, int block_tokens, long block_stride,
    int tokens_per_split, float scale)
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
    const int start = split * tokens_per_split;
    const int end = min(len, start + tokens_per_split);

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
            const long block = valid ? table[t / block_tokens] : 0;
            const int off = t % block_tokens;
            const bf16_t* k = pool + block * block_stride + ((long)(layer * 2) * block_tokens + off) * token_elems
                + (long)kvh * head_dim + d0;
            load_lane_chunk<E>(k, per_lane, active && valid, kf[i]);
            load_lane_chunk<E>(k + (long)block_tokens * token_elems, per_lane, active && valid, vf[i]);
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

#define ATTN_PARAMS \
    const float* __restrict__ q, int q_stride, const bf16_t* __restrict__ pool, \
    const int* __restrict__ block_tables, int table_stride, \
    const int* __restrict__ row_table, const int* __restrict__ ctx_len, \
    float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc, \
    int q_heads, int kv_heads, int head_dim, int layer, int block_tokens, long block_stride, \
    int tokens_per_split, float scale
#define ATTN_ARGS q, q_stride, pool, block_tables, table_stride, row_table, ctx_len, part_m, part_l, part_acc, \
    q_heads, kv_heads, head_dim, layer, block_tokens, block_stride, tokens_per_split, scale

// Grid (rows, kv_heads, splits). The host picks the smallest variant that fits: head_dim <= 32*E,
// query heads per KV head <= G.
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial_e4g4(ATTN_PARAMS) {
    attention_partial<4, 4, 4>(ATTN_ARGS);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial_e4g8(ATTN_PARAMS) {
    attention_partial<4, 8, 2>(ATTN_ARGS);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial_e8g8(ATTN_PARAMS) {
    attention_partial<8, 8, 2>(ATTN_ARGS);
}

// Grid (rows, q_heads); block head_dim threads (<= 256). out is [rows, q_heads * head_dim], bf16.
extern "C" __global__ void paged_attention_combine(
    const float* __restrict__ part_m, const float* __restrict__ part_l, const float* __restrict__ part_acc,
    bf16_t* __restrict__ out, int q_heads, int head_dim, int splits)
{
    const int r = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
    if (d >= head_dim) return;
    const long base = ((long)r * q_heads + h) * splits;
    float mx = NEG_INF;
    for (int s = 0; s < splits; ++s) mx = fmaxf(mx, part_m[base + s]);
    float num = 0.0f, den = 0.0f;
    for (int s = 0; s < splits; ++s) {
        const float ms = part_m[base + s];
        if (ms == NEG_INF) continue;
        const float w = expf(ms - mx);
        den += w * part_l[base + s];
        num += w * part_acc[(base + s) * head_dim + d];
    }
    out[((long)r * q_heads + h) * head_dim + d] = f32_to_bf16(den > 0.0f ? num / den : 0.0f);
}
