// RMSNorm (alone and fused with the residual add) and rotary position embedding fused with
// writing K/V into the paged pool.

__device__ __forceinline__ void store_value(bf16_t* p, float v) { *p = f32_to_bf16(v); }
__device__ __forceinline__ void store_value(float* p, float v) { *p = v; }

// out = x / sqrt(mean(x^2) + eps) * w, one block per row, fp32 in.
template <typename Out>
__device__ __forceinline__ void rmsnorm_row(const float* __restrict__ x, const bf16_t* __restrict__ w, Out* __restrict__ out, int dim, float eps) {
    __shared__ float scratch[33];
    const float* row = x + (long)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += row[i] * row[i];
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        store_value(out + (long)blockIdx.x * dim + i, row[i] * inv * bf16_to_f32(w[i]));
}

// bf16 out: the input of a matrix product.
extern "C" __global__ void rmsnorm_f32_to_bf16(const float* __restrict__ x, const bf16_t* __restrict__ w, bf16_t* __restrict__ out, int dim, float eps) {
    wait_for_previous_kernel();
    rmsnorm_row(x, w, out, dim, eps);
}

extern "C" __global__ void rmsnorm_f32(const float* __restrict__ x, const bf16_t* __restrict__ w, float* __restrict__ out, int dim, float eps) {
    wait_for_previous_kernel();
    rmsnorm_row(x, w, out, dim, eps);
}

// out = rmsnorm(x + y) * w (bf16) and sum = x + y (fp32): the residual add that ends a block and
// the norm that begins the next in one pass over the row. One block per row.
extern "C" __global__ void add_rmsnorm_f32_to_bf16(
    const float* __restrict__ x, const float* __restrict__ y, float* __restrict__ sum,
    const bf16_t* __restrict__ w, bf16_t* __restrict__ out, int dim, float eps)
{
    wait_for_previous_kernel();
    __shared__ float scratch[33];
    const long base = (long)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float v = x[base + i] + y[base + i];
        sum[base + i] = v;
        ss += v * v;
    }
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / dim + eps);
    // Each thread reads back only the sums it wrote itself, so no barrier is needed.
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        out[base + i] = f32_to_bf16(sum[base + i] * inv * bf16_to_f32(w[i]));
}

// A layer's attention inputs from its fused q|k|v product (fp32 rows of (heads + 2*kv_heads) *
// head_dim): q and k heads are rotated ("rotate half" of HF Llama: element i pairs with
// i + head_dim/2; inv_freq holds head_dim/2 inverse frequencies, Llama-3 scaling already applied
// by the host), q goes to q_out (fp32, [tokens, heads * head_dim]) and k and v to the token's slot
// in `layer` of the block-major bf16 pool ([layer][K|V][token][kv_head][head_dim]; slots[t] =
// block * block_tokens + offset; blocks block_stride elements apart). One block per token.
extern "C" __global__ void rope_qkv_write_kv(
    const float* __restrict__ qkv, int heads, int kv_heads, int head_dim,
    const int* __restrict__ positions, const float* __restrict__ inv_freq, const int* __restrict__ slots,
    float* __restrict__ q_out, bf16_t* __restrict__ pool, int layer, int block_tokens, long block_stride)
{
    wait_for_previous_kernel();
    const int t = blockIdx.x, half = head_dim / 2;
    const int token_elems = kv_heads * head_dim;
    const float* row = qkv + (long)t * (heads * head_dim + 2 * token_elems);
    const float position = (float)positions[t];
    const long slot = slots[t];
    bf16_t* k_dst = pool + (slot / block_tokens) * block_stride
        + ((long)(layer * 2) * block_tokens + slot % block_tokens) * token_elems;
    bf16_t* v_dst = k_dst + (long)block_tokens * token_elems;
    // q heads and then k heads are contiguous in the row, so one loop rotates both.
    for (int p = threadIdx.x; p < (heads + kv_heads) * half; p += blockDim.x) {
        const int h = p / half, i = p % half;
        float s, c;
        sincosf(position * inv_freq[i], &s, &c);
        const float a = row[h * head_dim + i], b = row[h * head_dim + i + half];
        const float ra = a * c - b * s, rb = b * c + a * s;
        if (h < heads) {
            float* q = q_out + (long)t * heads * head_dim + h * head_dim;
            q[i] = ra;
            q[i + half] = rb;
        } else {
            bf16_t* k = k_dst + (h - heads) * head_dim;
            k[i] = f32_to_bf16(ra);
            k[i + half] = f32_to_bf16(rb);
        }
    }
    const float* v = row + (heads + kv_heads) * head_dim;
    for (int i = threadIdx.x; i < token_elems; i += blockDim.x) v_dst[i] = f32_to_bf16(v[i]);
}
