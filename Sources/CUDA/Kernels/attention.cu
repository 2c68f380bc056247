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
    wait_for_previous_kernel();
    attention_partial<4, 4, 4>(ATTN_ARGS);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial_e4g8(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial<4, 8, 2>(ATTN_ARGS);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_partial_e8g8(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial<8, 8, 2>(ATTN_ARGS);
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

// Decode attention with 16-byte loads, for head dims of 8 * L with L in {8, 16, 32} (64, 128,
// 256): L lanes hold one K or V row of a head (8 bf16 each), so a warp reads 32 / L tokens per
// load instruction, and U such loads of K and of V are in flight before the first is used. The
// softmax maximum is kept per warp (the same in every lane) so the lanes of different tokens add
// their shares of P·V straight into one accumulator, summed across token groups at the end.
// Grid (rows, kv_heads, splits), 32 * ATTN_WARPS threads; writes the same partial results as
// attention_partial, for paged_attention_combine.
template <int L, int G, int U>
__device__ __forceinline__ void attention_partial_wide(
    const float* __restrict__ q, int q_stride, const bf16_t* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride,
    const int* __restrict__ row_table, const int* __restrict__ ctx_len,
    float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc,
    int q_heads, int kv_heads, int head_dim, int layer, int block_tokens, long block_stride,
    int tokens_per_split, float scale)
{
    constexpr int GROUPS = 32 / L;            // tokens per load instruction
    constexpr int HD = 8 * L;
    __shared__ float sm_m[ATTN_WARPS][G], sm_l[ATTN_WARPS][G];
    __shared__ float sm_acc[ATTN_WARPS][G][HD];
    const int r = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int sub = lane / L, d0 = (lane % L) * 8;
    const int group = q_heads / kv_heads;
    const int token_elems = kv_heads * HD;
    const int* table = block_tables + (long)row_table[r] * table_stride;
    const int len = ctx_len[r];
    const int start = split * tokens_per_split;
    const int end = min(len, start + tokens_per_split);
    const long layer_k = (long)(layer * 2) * block_tokens * token_elems + (long)kvh * HD + d0;
    const long v_offset = (long)block_tokens * token_elems;

    float qv[G][8], acc[G][8], m[G], l[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
        const float* qh = q + (long)r * q_stride + (long)(kvh * group + g) * HD + d0;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            qv[g][j] = g < group ? qh[j] * scale : 0.0f;
            acc[g][j] = 0.0f;
        }
        m[g] = NEG_INF;
        l[g] = 0.0f;
    }
    // A warp takes U * GROUPS consecutive tokens per iteration; lane group `sub` takes every
    // GROUPS-th of them. The next iteration's K/V loads are issued before this one's arithmetic:
    // each iteration waits on two dependent loads (block table, then K/V), and with one
    // iteration in flight per warp the kernel was latency-bound at a third of the bandwidth.
    constexpr int STEP = U * GROUPS;
    uint4 kw[U], vw[U];
    auto load = [&](int from, uint4 (&kd)[U], uint4 (&vd)[U]) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int t = from + u * GROUPS + sub;
            if (t < end) {
                const bf16_t* k = pool + (long)table[t / block_tokens] * block_stride + layer_k
                    + (long)(t % block_tokens) * token_elems;
                kd[u] = *reinterpret_cast<const uint4*>(k);
                vd[u] = *reinterpret_cast<const uint4*>(k + v_offset);
            } else {
                kd[u] = make_uint4(0, 0, 0, 0);
                vd[u] = make_uint4(0, 0, 0, 0);
            }
        }
    };
    load(start + warp * STEP, kw, vw);
    for (int base = start + warp * STEP; base < end; base += ATTN_WARPS * STEP) {
        uint4 nk[U], nv[U];
        load(base + ATTN_WARPS * STEP, nk, nv);
        float kf[U][8];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const unsigned int w[4] = {kw[u].x, kw[u].y, kw[u].z, kw[u].w};
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                kf[u][2 * j] = __uint_as_float(w[j] << 16);
                kf[u][2 * j + 1] = __uint_as_float(w[j] & 0xFFFF0000u);
            }
        }
#pragma unroll
        for (int g = 0; g < G; ++g) {
            if (g >= group) break;
            float s[U];
#pragma unroll
            for (int u = 0; u < U; ++u) {
                float d = 0.0f;
#pragma unroll
                for (int j = 0; j < 8; ++j) d += qv[g][j] * kf[u][j];
#pragma unroll
                for (int o = L / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
                s[u] = base + u * GROUPS + sub < end ? d : NEG_INF;
            }
            float mx = m[g];
#pragma unroll
            for (int u = 0; u < U; ++u) mx = fmaxf(mx, s[u]);
#pragma unroll
            for (int o = L; o < 32; o <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float corr = expf(m[g] - mx);
            float p[U], psum = 0.0f;
#pragma unroll
            for (int u = 0; u < U; ++u) { p[u] = expf(s[u] - mx); psum += p[u]; }
            l[g] = l[g] * corr + psum;
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[g][j] *= corr;
#pragma unroll
            for (int u = 0; u < U; ++u) {
                const unsigned int w[4] = {vw[u].x, vw[u].y, vw[u].z, vw[u].w};
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    acc[g][2 * j] += p[u] * __uint_as_float(w[j] << 16);
                    acc[g][2 * j + 1] += p[u] * __uint_as_float(w[j] & 0xFFFF0000u);
                }
            }
            m[g] = mx;
        }
#pragma unroll
        for (int u = 0; u < U; ++u) { kw[u] = nk[u]; vw[u] = nv[u]; }
    }
    // Sum the token groups' shares (the maximum is already the warp's), then merge the warps.
#pragma unroll
    for (int g = 0; g < G; ++g) {
        if (g >= group) break;
#pragma unroll
        for (int o = L; o < 32; o <<= 1) {
            l[g] += __shfl_xor_sync(0xffffffffu, l[g], o);
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[g][j] += __shfl_xor_sync(0xffffffffu, acc[g][j], o);
        }
        if (lane == 0) { sm_m[warp][g] = m[g]; sm_l[warp][g] = l[g]; }
        if (sub == 0) {
#pragma unroll
            for (int j = 0; j < 8; ++j) sm_acc[warp][g][d0 + j] = acc[g][j];
        }
    }
    __syncthreads();
    for (int g = 0; g < group; ++g) {
        float mx = NEG_INF;
        for (int w = 0; w < ATTN_WARPS; ++w) mx = fmaxf(mx, sm_m[w][g]);
        const long out = ((long)r * q_heads + kvh * group + g) * splits + split;
        float lsum = 0.0f;
        for (int w = 0; w < ATTN_WARPS; ++w) lsum += sm_m[w][g] == NEG_INF ? 0.0f : sm_l[w][g] * expf(sm_m[w][g] - mx);
        if (threadIdx.x == 0) { part_m[out] = mx; part_l[out] = lsum; }
        for (int d = threadIdx.x; d < HD; d += blockDim.x) {
            float a = 0.0f;
            for (int w = 0; w < ATTN_WARPS; ++w)
                if (sm_m[w][g] != NEG_INF) a += sm_acc[w][g][d] * expf(sm_m[w][g] - mx);
            part_acc[out * head_dim + d] = a;
        }
    }
}

// Variants by head dim (d64, d128, d256), query heads per KV head (g1, g4, g8) and loads in
// flight per lane (u4 where the registers allow, u2 for the larger groups and head dims). Written out, not by a macro, so that the kernel names
// stay visible to KernelLibrary's scan of the source.
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_wide_d64g1u4(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial_wide<8, 1, 4>(ATTN_ARGS);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_wide_d64g4u4(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial_wide<8, 4, 4>(ATTN_ARGS);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_wide_d64g8u2(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial_wide<8, 8, 2>(ATTN_ARGS);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_wide_d128g1u4(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial_wide<16, 1, 4>(ATTN_ARGS);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_wide_d128g4u4(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial_wide<16, 4, 4>(ATTN_ARGS);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_wide_d128g8u2(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial_wide<16, 8, 2>(ATTN_ARGS);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_wide_d256g1u2(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial_wide<32, 1, 2>(ATTN_ARGS);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_wide_d256g4u2(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial_wide<32, 4, 2>(ATTN_ARGS);
}
extern "C" __global__ void __launch_bounds__(32 * ATTN_WARPS) paged_attention_wide_d256g8u2(ATTN_PARAMS) {
    wait_for_previous_kernel();
    attention_partial_wide<32, 8, 2>(ATTN_ARGS);
}
