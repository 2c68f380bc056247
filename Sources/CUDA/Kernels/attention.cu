// Paged attention over the block-major KV pool, split across the context (flash-decoding):
// pass 1 computes, for each query row, head and split of the context, a partial softmax
// (running max m, sum l, weighted sum of V); pass 2 combines the splits.
//
// A "query row" is one token's query: a decode step has one per sequence, a prefill has one per
// prompt token, each with its own visible context length (causal masking), so the same kernels
// serve both. row_table[r] picks the block-table row of the query's sequence.

#define ATTN_WARPS 4
#define ATTN_MAX_PER_LANE 8   // head_dim <= 256
#define ATTN_MAX_GROUP 8      // query heads per KV head

// Loads the `per_lane` consecutive bf16 values a lane owns as floats, with one vector load when
// the count is 1, 2, 4 or 8 (rows of K and V are aligned to their head size).
__device__ __forceinline__ void load_lane_chunk(const bf16_t* p, int per_lane, bool active, float out[ATTN_MAX_PER_LANE]) {
#pragma unroll
    for (int j = 0; j < ATTN_MAX_PER_LANE; ++j) out[j] = 0.0f;
    if (!active) return;
    if (per_lane == 4) {
        const uint2 w = *reinterpret_cast<const uint2*>(p);
        out[0] = __uint_as_float(w.x << 16); out[1] = __uint_as_float(w.x & 0xFFFF0000u);
        out[2] = __uint_as_float(w.y << 16); out[3] = __uint_as_float(w.y & 0xFFFF0000u);
    } else if (per_lane == 8) {
        const uint4 w = *reinterpret_cast<const uint4*>(p);
        out[0] = __uint_as_float(w.x << 16); out[1] = __uint_as_float(w.x & 0xFFFF0000u);
        out[2] = __uint_as_float(w.y << 16); out[3] = __uint_as_float(w.y & 0xFFFF0000u);
        out[4] = __uint_as_float(w.z << 16); out[5] = __uint_as_float(w.z & 0xFFFF0000u);
        out[6] = __uint_as_float(w.w << 16); out[7] = __uint_as_float(w.w & 0xFFFF0000u);
    } else if (per_lane == 2) {
        const unsigned int w = *reinterpret_cast<const unsigned int*>(p);
        out[0] = __uint_as_float(w << 16); out[1] = __uint_as_float(w & 0xFFFF0000u);
    } else {
#pragma unroll
        for (int j = 0; j < ATTN_MAX_PER_LANE; ++j) if (j < per_lane) out[j] = bf16_to_f32(p[j]);
    }
}

// Grid (rows, kv_heads, splits); block 32 * ATTN_WARPS threads. One block serves every query
// head of its KV head (grouped-query attention), so each K/V row is read once for the group.
// Lane l owns elements [l * per_lane, (l + 1) * per_lane) of a head (per_lane = ceil(head_dim/32)).
// Warps take the split's tokens in turn, each keeping an online softmax; the block merges them.
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial(
    const float* __restrict__ q, int q_stride,
    const bf16_t* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride,
    const int* __restrict__ row_table, const int* __restrict__ ctx_len,
    float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc,
    int q_heads, int kv_heads, int head_dim, int layer, int block_tokens, long block_stride,
    int tokens_per_split, float scale)
{
    __shared__ float sm_m[ATTN_WARPS][ATTN_MAX_GROUP], sm_l[ATTN_WARPS][ATTN_MAX_GROUP];
    __shared__ float sm_acc[ATTN_WARPS][ATTN_MAX_GROUP][32 * ATTN_MAX_PER_LANE];
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

    float qv[ATTN_MAX_GROUP][ATTN_MAX_PER_LANE], acc[ATTN_MAX_GROUP][ATTN_MAX_PER_LANE];
    float m[ATTN_MAX_GROUP], l[ATTN_MAX_GROUP];
#pragma unroll
    for (int g = 0; g < ATTN_MAX_GROUP; ++g) {
        const float* qh = q + (long)r * q_stride + (long)(kvh * group + g) * head_dim + d0;
#pragma unroll
        for (int j = 0; j < ATTN_MAX_PER_LANE; ++j) {
            qv[g][j] = (g < group && active && j < per_lane && d0 + j < head_dim) ? qh[j] * scale : 0.0f;
            acc[g][j] = 0.0f;
        }
        m[g] = NEG_INF;
        l[g] = 0.0f;
    }
    for (int t = start + warp; t < end; t += ATTN_WARPS) {
        const long block = table[t / block_tokens];
        const int off = t % block_tokens;
        const bf16_t* k = pool + block * block_stride + ((long)(layer * 2) * block_tokens + off) * token_elems
            + (long)kvh * head_dim + d0;
        const bf16_t* v = k + (long)block_tokens * token_elems;
        float kf[ATTN_MAX_PER_LANE], vf[ATTN_MAX_PER_LANE];
        load_lane_chunk(k, per_lane, active, kf);
        load_lane_chunk(v, per_lane, active, vf);
#pragma unroll
        for (int g = 0; g < ATTN_MAX_GROUP; ++g) {
            if (g >= group) break;
            float s = 0.0f;
#pragma unroll
            for (int j = 0; j < ATTN_MAX_PER_LANE; ++j) s += qv[g][j] * kf[j];
            s = warp_sum(s);
            const float m_new = fmaxf(m[g], s);
            const float corr = expf(m[g] - m_new);
            const float p = expf(s - m_new);
            l[g] = l[g] * corr + p;
#pragma unroll
            for (int j = 0; j < ATTN_MAX_PER_LANE; ++j) acc[g][j] = acc[g][j] * corr + p * vf[j];
            m[g] = m_new;
        }
    }
#pragma unroll
    for (int g = 0; g < ATTN_MAX_GROUP; ++g) {
        if (g >= group) break;
        if (lane == 0) { sm_m[warp][g] = m[g]; sm_l[warp][g] = l[g]; }
#pragma unroll
        for (int j = 0; j < ATTN_MAX_PER_LANE; ++j)
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
