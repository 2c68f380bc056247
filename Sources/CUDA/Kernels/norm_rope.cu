// RMSNorm and rotary position embedding.

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
    rmsnorm_row(x, w, out, dim, eps);
}

extern "C" __global__ void rmsnorm_f32(const float* __restrict__ x, const bf16_t* __restrict__ w, float* __restrict__ out, int dim, float eps) {
    rmsnorm_row(x, w, out, dim, eps);
}

// Rotates heads in place, the "rotate half" convention of HF Llama: element i pairs with
// i + head_dim/2. Head h of token t starts at x + t*row_stride + h*head_dim. inv_freq holds
// head_dim/2 precomputed inverse frequencies (Llama-3 rope scaling is applied by the host when it
// computes them). Grid (tokens, heads), block head_dim/2 threads.
extern "C" __global__ void rope_f32(
    float* __restrict__ x, int row_stride, const int* __restrict__ positions,
    const float* __restrict__ inv_freq, int head_dim)
{
    const int half = head_dim / 2;
    const int i = threadIdx.x;
    if (i >= half) return;
    float* h = x + (long)blockIdx.x * row_stride + (long)blockIdx.y * head_dim;
    const float angle = (float)positions[blockIdx.x] * inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    const float a = h[i], b = h[i + half];
    h[i] = a * c - b * s;
    h[i + half] = b * c + a * s;
}
