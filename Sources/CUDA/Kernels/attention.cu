// Paged attention over the block-major KV pool, split across the context (flash-decoding):
// pass 1 computes, for each query row, head and split of the context, a partial softmax
// (running max m, sum l, weighted sum of V); pass 2 combines the splits.
//
// A "query row" is one token's query: a decode step has one per sequence, a prefill has one per
// prompt token, each with its own visible context length (causal masking), so the same kernels
// serve both. row_table[r] picks the block-table row of the query's sequence.

#define ATTN_WARPS 4
#define ATTN_MAX_PER_LANE 8   // head_dim <= 256

// Grid (rows, q_heads, splits); block 32 * ATTN_WARPS threads. head_dim <= 256; lane l holds
// elements l, l + 32, ... of a head.
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial(
    const float* __restrict__ q, int q_stride,
    const bf16_t* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride,
    const int* __restrict__ row_table, const int* __restrict__ ctx_len,
    float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc,
    int q_heads, int kv_heads, int head_dim, int layer, int block_tokens, long block_stride,
    int tokens_per_split, float scale)
{
    __shared__ float sm_m[ATTN_WARPS], sm_l[ATTN_WARPS];
    __shared__ float sm_acc[ATTN_WARPS][32 * ATTN_MAX_PER_LANE];
    const int r = blockIdx.x, h = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int kvh = h / (q_heads / kv_heads);
    const int token_elems = kv_heads * head_dim;
    const int* table = block_tables + (long)row_table[r] * table_stride;
    const int len = ctx_len[r];
    const int start = split * tokens_per_split;
    const int end = min(len, start + tokens_per_split);

    float qv[ATTN_MAX_PER_LANE], acc[ATTN_MAX_PER_LANE];
    const float* qh = q + (long)r * q_stride + (long)h * head_dim;
#pragma unroll
    for (int j = 0; j < ATTN_MAX_PER_LANE; ++j) {
        qv[j] = lane + 32 * j < head_dim ? qh[lane + 32 * j] * scale : 0.0f;
        acc[j] = 0.0f;
    }
    float m = NEG_INF, l = 0.0f;
    for (int t = start + warp; t < end; t += ATTN_WARPS) {
        const long block = table[t / block_tokens];
        const int off = t % block_tokens;
        const bf16_t* k = pool + block * block_stride + ((long)(layer * 2) * block_tokens + off) * token_elems
            + (long)kvh * head_dim;
        const bf16_t* v = k + (long)block_tokens * token_elems;
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < ATTN_MAX_PER_LANE; ++j)
            if (lane + 32 * j < head_dim) s += qv[j] * bf16_to_f32(k[lane + 32 * j]);
        s = warp_sum(s);
        const float m_new = fmaxf(m, s);
        const float corr = expf(m - m_new);
        const float p = expf(s - m_new);
        l = l * corr + p;
#pragma unroll
        for (int j = 0; j < ATTN_MAX_PER_LANE; ++j)
            if (lane + 32 * j < head_dim) acc[j] = acc[j] * corr + p * bf16_to_f32(v[lane + 32 * j]);
        m = m_new;
    }
    if (lane == 0) { sm_m[warp] = m; sm_l[warp] = l; }
#pragma unroll
    for (int j = 0; j < ATTN_MAX_PER_LANE; ++j)
        if (lane + 32 * j < head_dim) sm_acc[warp][lane + 32 * j] = acc[j];
    __syncthreads();
    float mx = NEG_INF;
    for (int w = 0; w < ATTN_WARPS; ++w) mx = fmaxf(mx, sm_m[w]);
    const long out = ((long)r * q_heads + h) * splits + split;
    float lsum = 0.0f;
    for (int w = 0; w < ATTN_WARPS; ++w) lsum += sm_m[w] == NEG_INF ? 0.0f : sm_l[w] * expf(sm_m[w] - mx);
    if (threadIdx.x == 0) { part_m[out] = mx; part_l[out] = lsum; }
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float a = 0.0f;
        for (int w = 0; w < ATTN_WARPS; ++w)
            if (sm_m[w] != NEG_INF) a += sm_acc[w][d] * expf(sm_m[w] - mx);
        part_acc[out * head_dim + d] = a;
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
