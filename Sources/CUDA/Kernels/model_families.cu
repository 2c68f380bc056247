// Ops that only some model families use: the per-head q/k RMSNorm of Qwen3 and Gemma 3, Gemma's
// GELU-tanh gated MLP activation and its scaled embeddings.

// Per-head RMSNorm of the q and k heads of fused q|k|v rows (fp32, [tokens, (heads + 2 kv_heads)
// head_dim]) with the [head_dim] bf16 weights qw (q heads) and kw (k heads); the v heads are
// copied unchanged. One warp per head, four heads a block: grid (tokens, ceil(all heads / 4)),
// 128 threads.
extern "C" __global__ void __launch_bounds__(128) qk_head_rmsnorm_f32(
    const float* __restrict__ in, float* __restrict__ out, const bf16_t* __restrict__ qw, const bf16_t* __restrict__ kw,
    int heads, int kv_heads, int head_dim, float eps)
{
    wait_for_previous_kernel();
    const int lane = threadIdx.x & 31;
    const int head = blockIdx.y * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int all = heads + 2 * kv_heads;
    if (head >= all) return;
    const long base = ((long)blockIdx.x * all + head) * head_dim;
    if (head >= heads + kv_heads) {
        for (int i = lane; i < head_dim; i += 32) out[base + i] = in[base + i];
        return;
    }
    const bf16_t* w = head < heads ? qw : kw;
    float ss = 0.0f;
    for (int i = lane; i < head_dim; i += 32) {
        const float v = in[base + i];
        ss += v * v;
    }
    const float inv = rsqrtf(warp_sum(ss) / head_dim + eps);
    for (int i = lane; i < head_dim; i += 32) out[base + i] = in[base + i] * inv * bf16_to_f32(w[i]);
}

// PyTorch's gelu(x, approximate="tanh"): x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
__device__ __forceinline__ float gelu_tanh(float x) {
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

// out[r, i] = gelu_tanh(gate[r, i]) * up[r, i]; gate and up rows are `stride` floats apart (the two
// halves of the fused gate|up product); out is [rows, inter] in bf16.
extern "C" __global__ void gelu_tanh_mul_f32_to_bf16(
    const float* __restrict__ gate, const float* __restrict__ up, int stride, bf16_t* __restrict__ out, int inter, int rows)
{
    wait_for_previous_kernel();
    const long n = (long)rows * inter;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        const long r = i / inter, c = i % inter;
        out[i] = f32_to_bf16(gelu_tanh(gate[r * stride + c]) * up[r * stride + c]);
    }
}

// out = x * factor, fp32.
extern "C" __global__ void scale_f32(const float* __restrict__ x, float* __restrict__ out, float factor, long n) {
    wait_for_previous_kernel();
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        out[i] = x[i] * factor;
}
