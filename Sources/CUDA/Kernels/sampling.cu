// Sampling helpers over fp32 logits rows.

// The block-wide largest (v, idx), smallest index on ties; thread 0 gets the result.
__device__ __forceinline__ void block_argmax(float& v, int& idx, float* best_v, int* best_i) {
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ov > v || (ov == v && oi < idx)) { v = ov; idx = oi; }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { best_v[warp] = v; best_i[warp] = idx; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); ++w)
            if (best_v[w] > v || (best_v[w] == v && best_i[w] < idx)) { v = best_v[w]; idx = best_i[w]; }
    }
}

// out[r] = index of the largest logit of row r (the smallest such index on ties); one block per row.
// Rows of a vocabulary divisible by 4 are read as float4, four loads in flight a thread: one block
// per row is latency-bound, and a scalar loop over 128K logits took 33 us on the H100.
extern "C" __global__ void argmax_f32(const float* __restrict__ logits, int vocab, int* __restrict__ out) {
    wait_for_previous_kernel();
    __shared__ float best_v[32];
    __shared__ int best_i[32];
    const float* row = logits + (long)blockIdx.x * vocab;
    float v = NEG_INF;
    int idx = 0x7fffffff;
    // A thread's indices only grow, so a strict > keeps its first maximum.
    auto take = [&](float x, int i) { if (x > v) { v = x; idx = i; } };
    if ((vocab & 3) == 0) {
        const float4* row4 = reinterpret_cast<const float4*>(row);
        const int n4 = vocab / 4, stride = blockDim.x;
        for (int c = threadIdx.x; c < n4; c += 4 * stride) {
            float4 x[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) x[u] = c + u * stride < n4 ? row4[c + u * stride] : make_float4(NEG_INF, NEG_INF, NEG_INF, NEG_INF);
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const int i = 4 * (c + u * stride);
                take(x[u].x, i); take(x[u].y, i + 1); take(x[u].z, i + 2); take(x[u].w, i + 3);
            }
        }
    } else {
        for (int i = threadIdx.x; i < vocab; i += blockDim.x) take(row[i], i);
    }
    block_argmax(v, idx, best_v, best_i);
    if (threadIdx.x == 0) out[blockIdx.x] = idx == 0x7fffffff ? 0 : idx;
}

// token_ids[r] = previous[feed_rows[r]] where feed_rows[r] names one of the previous step's
// previous_rows greedy picks (-1: the row's id was uploaded): a step launched before the host has
// the tokens of the step it follows.
extern "C" __global__ void feed_tokens(int* __restrict__ token_ids, const int* __restrict__ feed_rows, int rows,
                                       const int* __restrict__ previous, int previous_rows) {
    wait_for_previous_kernel();
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const int source = feed_rows[r];
    if (source >= 0 && source < previous_rows) token_ids[r] = previous[source];
}

// The k largest logits of each row, in descending order (values and indices); one block per row,
// k <= 64. Each round takes the largest remaining value by a block-wide argmax; k rounds over the
// row (vocabularies are read from L2 after the first pass).
extern "C" __global__ void topk_f32(
    const float* __restrict__ logits, int vocab, int k, float* __restrict__ out_v, int* __restrict__ out_i)
{
    wait_for_previous_kernel();
    __shared__ float best_v[32];
    __shared__ int best_i[32];
    __shared__ float taken_v[64];
    __shared__ int taken_i[64];
    const float* row = logits + (long)blockIdx.x * vocab;
    for (int round = 0; round < k; ++round) {
        // Candidates must come after the previous pick in (value desc, index asc) order.
        const float pv = round > 0 ? taken_v[round - 1] : __int_as_float(0x7f800000);
        const int pi = round > 0 ? taken_i[round - 1] : -1;
        float v = NEG_INF;
        int idx = 0x7fffffff;
        for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
            const float x = row[i];
            const bool after = x < pv || (x == pv && i > pi);
            if (after && (x > v || (x == v && i < idx))) { v = x; idx = i; }
        }
        block_argmax(v, idx, best_v, best_i);
        if (threadIdx.x == 0) {
            taken_v[round] = v;
            taken_i[round] = idx;
            out_v[(long)blockIdx.x * k + round] = v;
            out_i[(long)blockIdx.x * k + round] = idx == 0x7fffffff ? -1 : idx;
        }
        __syncthreads();
    }
}
