// Element-wise kernels: conversions, residual add, SiLU-and-multiply, embedding lookup.

extern "C" __global__ void f32_to_bf16_kernel(const float* __restrict__ in, bf16_t* __restrict__ out, long n) {
    wait_for_previous_kernel();
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        out[i] = f32_to_bf16(in[i]);
}

extern "C" __global__ void bf16_to_f32_kernel(const bf16_t* __restrict__ in, float* __restrict__ out, long n) {
    wait_for_previous_kernel();
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        out[i] = bf16_to_f32(in[i]);
}

// x += y, in fp32.
extern "C" __global__ void residual_add_f32(float* __restrict__ x, const float* __restrict__ y, long n) {
    wait_for_previous_kernel();
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        x[i] += y[i];
}

// out[r, i] = silu(gate[r, i]) * up[r, i]; gate and up rows are `stride` floats apart (they may
// be the two halves of one fused gate|up product); out is [rows, inter] in bf16. With inter and
// stride multiples of 4 a thread takes four columns (16-byte loads, one 8-byte store).
__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

extern "C" __global__ void silu_mul_f32_to_bf16(
    const float* __restrict__ gate, const float* __restrict__ up, int stride,
    bf16_t* __restrict__ out, int inter, int rows)
{
    wait_for_previous_kernel();
    if ((inter & 3) == 0 && (stride & 3) == 0) {
        const int inter4 = inter / 4;
        const long n = (long)rows * inter4;
        for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
            const long r = i / inter4, c = 4 * (i % inter4);
            const float4 g = *reinterpret_cast<const float4*>(gate + r * stride + c);
            const float4 u = *reinterpret_cast<const float4*>(up + r * stride + c);
            uint2 packed;
            packed.x = (unsigned int)f32_to_bf16(silu_times(g.x, u.x)) | ((unsigned int)f32_to_bf16(silu_times(g.y, u.y)) << 16);
            packed.y = (unsigned int)f32_to_bf16(silu_times(g.z, u.z)) | ((unsigned int)f32_to_bf16(silu_times(g.w, u.w)) << 16);
            *reinterpret_cast<uint2*>(out + r * inter + c) = packed;
        }
        return;
    }
    const long n = (long)rows * inter;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        const long r = i / inter, c = i % inter;
        out[i] = f32_to_bf16(silu_times(gate[r * stride + c], up[r * stride + c]));
    }
}

// One block copies a row of n elements, element i = load(i) to store(i, ·), eight a thread loaded
// before any is stored, so that they are in flight together: a block a row is latency-bound, and
// the embedding's 16 loads a thread one after another took 7.7 us at dim 4096 on an H200 (a decode
// step's first kernel).
template <typename Load, typename Store>
__device__ __forceinline__ void copy_row_in_flight(int n, Load load, Store store) {
    for (int i0 = threadIdx.x; i0 < n; i0 += 8 * blockDim.x) {
        decltype(load(0)) v[8];
#pragma unroll
        for (int u = 0; u < 8; ++u) {
            const int i = i0 + u * blockDim.x;
            if (i < n) v[u] = load(i);
        }
#pragma unroll
        for (int u = 0; u < 8; ++u) {
            const int i = i0 + u * blockDim.x;
            if (i < n) store(i, v[u]);
        }
    }
}

// out[t, :] = table[ids[t], :] as fp32; one block per token. Ids are checked by the host.
extern "C" __global__ void embedding_bf16_to_f32(
    const bf16_t* __restrict__ table, const int* __restrict__ ids, float* __restrict__ out, int dim)
{
    wait_for_previous_kernel();
    const long row = ids[blockIdx.x];
    copy_row_in_flight(dim, [&](int i) { return bf16_to_f32(table[row * dim + i]); },
                       [&](int i, float v) { out[(long)blockIdx.x * dim + i] = v; });
}

// y[r, c] += bias[c] (bf16 bias, fp32 y).
extern "C" __global__ void add_bias_f32(float* __restrict__ y, const bf16_t* __restrict__ bias, int cols, long n) {
    wait_for_previous_kernel();
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] += bf16_to_f32(bias[i % cols]);
}

// out[i, :] = x[rows[i], :], 4-byte elements (fp32 rows, or bf16 rows of even length as pairs).
extern "C" __global__ void gather_rows_u32(const unsigned int* __restrict__ x, const int* __restrict__ rows, unsigned int* __restrict__ out, int cols) {
    wait_for_previous_kernel();
    const long src = rows[blockIdx.x];
    copy_row_in_flight(cols, [&](int i) { return x[src * cols + i]; }, [&](int i, unsigned int v) { out[(long)blockIdx.x * cols + i] = v; });
}

// out = a + b, fp32.
extern "C" __global__ void add_f32(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out, long n) {
    wait_for_previous_kernel();
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}
