// RMSNorm (alone and fused with the residual add) and rotary position embedding fused with
// writing K/V into the paged pool.

// Rows of up to NORM_CHUNKS · 4 · blockDim.x elements (16384 at 1024 threads), a multiple of 4:
// each thread holds its share of the row in registers as float4 chunks, so the row is read once,
// with every load in flight at the same time (the host checks both limits). Norm kernels are
// small and frequent (two a layer), so their time is latency: a strided loop that read the row,
// then read it again to scale it, took 6 us for a 4096-wide row on the H100.
#define NORM_CHUNKS 4

__device__ __forceinline__ void store4(bf16_t* p, float4 v) {
    uint2 packed;
    packed.x = (unsigned int)f32_to_bf16(v.x) | ((unsigned int)f32_to_bf16(v.y) << 16);
    packed.y = (unsigned int)f32_to_bf16(v.z) | ((unsigned int)f32_to_bf16(v.w) << 16);
    *reinterpret_cast<uint2*>(p) = packed;
}
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }

// Four bf16 weights as floats.
__device__ __forceinline__ float4 load_weight4(const bf16_t* w) {
    const uint2 u = *reinterpret_cast<const uint2*>(w);
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xFFFF0000u),
                       __uint_as_float(u.y << 16), __uint_as_float(u.y & 0xFFFF0000u));
}

// out = v / sqrt(mean(v^2) + eps) * w for the row whose chunks this thread holds in v (chunk j
// is elements 4·(threadIdx.x + j·blockDim.x) .. +3); w was loaded before the wait for the
// previous kernel, since weights never depend on it.
template <typename Out>
__device__ __forceinline__ void normalize_chunks(const float4 (&v)[NORM_CHUNKS], const float4 (&w)[NORM_CHUNKS],
                                                 Out* __restrict__ out, int dim, float eps) {
    __shared__ float scratch[33];
    const int n4 = dim / 4;
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < NORM_CHUNKS; ++j) ss += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
    const float inv = rsqrtf(block_sum(ss, scratch) / dim + eps);
#pragma unroll
    for (int j = 0; j < NORM_CHUNKS; ++j) {
        const int c = threadIdx.x + j * blockDim.x;
        if (c < n4)
            store4(out + (long)blockIdx.x * dim + 4 * c,
                   make_float4(v[j].x * inv * w[j].x, v[j].y * inv * w[j].y, v[j].z * inv * w[j].z, v[j].w * inv * w[j].w));
    }
}

// The weight chunks of this thread, zeros past the row.
__device__ __forceinline__ void load_norm_weight(const bf16_t* __restrict__ w, int dim, float4 (&wv)[NORM_CHUNKS]) {
#pragma unroll
    for (int j = 0; j < NORM_CHUNKS; ++j) {
        const int c = threadIdx.x + j * blockDim.x;
        wv[j] = c < dim / 4 ? load_weight4(w + 4 * c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
}

// Waits for the previous kernel; NextFirst: lets the next in first (common.cuh, the `_next_first` twins).
template <bool NextFirst>
__device__ __forceinline__ void norm_wait() {
    if (NextFirst) {
        let_next_kernel_in_then_wait();
    } else {
        wait_for_previous_kernel();
    }
}

// out = x / sqrt(mean(x^2) + eps) * w, one block per row, fp32 in.
template <typename Out, bool NextFirst>
__device__ __forceinline__ void rmsnorm_row(const float* __restrict__ x, const bf16_t* __restrict__ w, Out* __restrict__ out, int dim, float eps) {
    float4 wv[NORM_CHUNKS], v[NORM_CHUNKS];
    load_norm_weight(w, dim, wv);
    norm_wait<NextFirst>();
    const float4* row = reinterpret_cast<const float4*>(x + (long)blockIdx.x * dim);
#pragma unroll
    for (int j = 0; j < NORM_CHUNKS; ++j) {
        const int c = threadIdx.x + j * blockDim.x;
        v[j] = c < dim / 4 ? row[c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    normalize_chunks(v, wv, out, dim, eps);
}

// bf16 out: the input of a matrix product.
extern "C" __global__ void __launch_bounds__(1024) rmsnorm_f32_to_bf16(const float* __restrict__ x, const bf16_t* __restrict__ w, bf16_t* __restrict__ out, int dim, float eps) {
    rmsnorm_row<bf16_t, false>(x, w, out, dim, eps);
}
extern "C" __global__ void __launch_bounds__(1024) rmsnorm_f32_to_bf16_next_first(const float* __restrict__ x, const bf16_t* __restrict__ w, bf16_t* __restrict__ out, int dim, float eps) {
    rmsnorm_row<bf16_t, true>(x, w, out, dim, eps);
}

extern "C" __global__ void __launch_bounds__(1024) rmsnorm_f32(const float* __restrict__ x, const bf16_t* __restrict__ w, float* __restrict__ out, int dim, float eps) {
    rmsnorm_row<float, false>(x, w, out, dim, eps);
}

// out = rmsnorm(x + y) * w (bf16) and sum = x + y (fp32): the residual add that ends a block and
// the norm that begins the next in one pass over the row. One block per row.
template <bool NextFirst>
__device__ __forceinline__ void add_rmsnorm_rows(const float* __restrict__ x, const float* __restrict__ y, float* __restrict__ sum,
                                                 const bf16_t* __restrict__ w, bf16_t* __restrict__ out, int dim, float eps) {
    float4 wv[NORM_CHUNKS], v[NORM_CHUNKS];
    load_norm_weight(w, dim, wv);
    norm_wait<NextFirst>();
    const long base = (long)blockIdx.x * dim;
    const float4* xr = reinterpret_cast<const float4*>(x + base);
    const float4* yr = reinterpret_cast<const float4*>(y + base);
#pragma unroll
    for (int j = 0; j < NORM_CHUNKS; ++j) {
        const int c = threadIdx.x + j * blockDim.x;
        if (c < dim / 4) {
            const float4 a = xr[c], b = yr[c];
            v[j] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
            store4(sum + base + 4 * c, v[j]);
        } else {
            v[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
    }
    normalize_chunks(v, wv, out, dim, eps);
}

extern "C" __global__ void __launch_bounds__(1024) add_rmsnorm_f32_to_bf16(
    const float* __restrict__ x, const float* __restrict__ y, float* __restrict__ sum,
    const bf16_t* __restrict__ w, bf16_t* __restrict__ out, int dim, float eps) {
    add_rmsnorm_rows<false>(x, y, sum, w, out, dim, eps);
}
extern "C" __global__ void __launch_bounds__(1024) add_rmsnorm_f32_to_bf16_next_first(
    const float* __restrict__ x, const float* __restrict__ y, float* __restrict__ sum,
    const bf16_t* __restrict__ w, bf16_t* __restrict__ out, int dim, float eps) {
    add_rmsnorm_rows<true>(x, y, sum, w, out, dim, eps);
}

// A skinny GEMM residual form's `normed` rows made whole, for an op other than the skinny products
// (which scale their sums instead, gemv.cu): out = bf16(values · 1 / sqrt(mean square + eps)),
// the mean square from the form's [16][parts] sums of squares. One block per row.
extern "C" __global__ void apply_row_scale_bf16(const bf16_t* __restrict__ values, const float* __restrict__ squares, int parts,
                                                float eps, bf16_t* __restrict__ out, int dim) {
    wait_for_previous_kernel();
    const int r = blockIdx.x;
    float total = 0.0f;
    for (int p = 0; p < parts; ++p) total += squares[r * parts + p];
    const float factor = rsqrtf(total / dim + eps);
    for (int c = threadIdx.x; c < dim; c += blockDim.x)
        out[(long)r * dim + c] = f32_to_bf16(bf16_to_f32(values[(long)r * dim + c]) * factor);
}

// A layer's attention inputs from its fused q|k|v product (fp32 rows of (heads + 2*kv_heads) *
// head_dim): q and k heads are rotated ("rotate half" of HF Llama: element i pairs with
// i + head_dim/2; inv_freq holds head_dim/2 inverse frequencies, Llama-3 scaling already applied
// by the host), q goes to q_out (fp32, [tokens, heads * head_dim]) and k and v to the token's slot
// in `layer` of the block-major bf16 pool ([layer][K|V][token][kv_head][head_dim]; slots[t] =
// block * block_tokens + offset; blocks block_stride elements apart).
// Grid (tokens, ceil((heads + 2 * kv_heads) / heads_per_block)), heads_per_block * head_dim / 2
// threads: a thread takes the pair (i, i + head_dim/2) of one head. The token's cos/sin are
// computed once per block, not once per head, and a decode batch gets a block per few heads
// rather than one per token.
extern "C" __global__ void rope_qkv_write_kv(
    const float* __restrict__ qkv, int heads, int kv_heads, int head_dim, int heads_per_block,
    const int* __restrict__ positions, const float* __restrict__ inv_freq, const int* __restrict__ slots,
    float* __restrict__ q_out, bf16_t* __restrict__ pool, int layer, int block_tokens, long block_stride)
{
    extern __shared__ float angles[];  // cos then sin, head_dim / 2 each
    const int t = blockIdx.x, half = head_dim / 2;
    const int i = threadIdx.x % half, h = blockIdx.y * heads_per_block + threadIdx.x / half;
    const float frequency = threadIdx.x < half ? inv_freq[threadIdx.x] : 0.0f;
    wait_for_previous_kernel();
    if (threadIdx.x < half) sincosf((float)positions[t] * frequency, &angles[half + threadIdx.x], &angles[threadIdx.x]);
    __syncthreads();
    const int token_elems = kv_heads * head_dim;
    if (h >= heads + 2 * kv_heads) return;
    const float* row = qkv + (long)t * (heads * head_dim + 2 * token_elems) + (long)h * head_dim;
    const float a = row[i], b = row[i + half];
    if (h < heads) {
        const float c = angles[i], s = angles[half + i];
        float* q = q_out + (long)t * heads * head_dim + h * head_dim;
        q[i] = a * c - b * s;
        q[i + half] = b * c + a * s;
        return;
    }
    bf16_t* k_dst = kv_slot_k_row(pool, slots[t], layer, block_tokens, token_elems, block_stride);
    if (h < heads + kv_heads) {
        const float c = angles[i], s = angles[half + i];
        bf16_t* k = k_dst + (h - heads) * head_dim;
        k[i] = f32_to_bf16(a * c - b * s);
        k[i + half] = f32_to_bf16(b * c + a * s);
    } else {
        bf16_t* v = k_dst + (long)block_tokens * token_elems + (h - heads - kv_heads) * head_dim;
        v[i] = f32_to_bf16(a);
        v[i + half] = f32_to_bf16(b);
    }
}

// rope_qkv_write_kv for the fp8 pool (common.cuh): the same grid and threads, block_stride and
// scale_offset in bytes, and heads_per_block · (head_dim + 3) more floats of dynamic shared
// memory. A K or V head is coded with its least-error scale: its threads stage the rotated row
// and its largest |x| in shared memory, a warp searches the scale, then each thread codes its
// two elements.
extern "C" __global__ void rope_qkv_write_kv_fp8(
    const float* __restrict__ qkv, int heads, int kv_heads, int head_dim, int heads_per_block,
    const int* __restrict__ positions, const float* __restrict__ inv_freq, const int* __restrict__ slots,
    float* __restrict__ q_out, fp8_t* __restrict__ pool, int layer, int block_tokens, long block_stride, long scale_offset)
{
    // cos then sin, head_dim / 2 each; each head's row, its largest |x| (bits), scale and inverse
    extern __shared__ float angles[];
    float* rows = angles + head_dim;
    unsigned int* head_max = reinterpret_cast<unsigned int*>(rows + heads_per_block * head_dim);
    float* scales = reinterpret_cast<float*>(head_max + heads_per_block);
    float* inverses = scales + heads_per_block;
    const int t = blockIdx.x, half = head_dim / 2;
    const int i = threadIdx.x % half, local = threadIdx.x / half, h = blockIdx.y * heads_per_block + local;
    const float frequency = threadIdx.x < half ? inv_freq[threadIdx.x] : 0.0f;
    wait_for_previous_kernel();
    if (threadIdx.x < half) sincosf((float)positions[t] * frequency, &angles[half + threadIdx.x], &angles[threadIdx.x]);
    if (threadIdx.x < heads_per_block) head_max[threadIdx.x] = 0u;
    __syncthreads();
    const int token_elems = kv_heads * head_dim;
    const bool valid = h < heads + 2 * kv_heads;
    float lo = 0.0f, hi = 0.0f;
    if (valid) {
        const float* row = qkv + (long)t * (heads * head_dim + 2 * token_elems) + (long)h * head_dim;
        const float a = row[i], b = row[i + half];
        if (h < heads + kv_heads) {
            const float c = angles[i], s = angles[half + i];
            lo = a * c - b * s;
            hi = b * c + a * s;
        } else {
            lo = a;
            hi = b;
        }
        if (h < heads) {
            float* q = q_out + (long)t * heads * head_dim + h * head_dim;
            q[i] = lo;
            q[i + half] = hi;
        } else {
            rows[local * head_dim + i] = lo;
            rows[local * head_dim + i + half] = hi;
            atomicMax(&head_max[local], max(e4m3_amax_bits(lo), e4m3_amax_bits(hi)));
        }
    }
    __syncthreads();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int l = warp; l < heads_per_block; l += blockDim.x >> 5) {
        const int head = blockIdx.y * heads_per_block + l;
        if (head < heads || head >= heads + 2 * kv_heads) continue;
        const float* row = rows + l * head_dim;
        float x[E4M3_ROW_SLOTS];
        warp_row_load(x, [&](int e) { return row[e]; }, head_dim, lane);
        const E4M3Scale best = warp_e4m3_least_error_scale(x, head_dim, __uint_as_float(head_max[l]), lane);
        scales[l] = best.scale;
        inverses[l] = best.inverse;
    }
    __syncthreads();
    if (!valid || h < heads) return;
    const long slot = slots[t];
    const int value = h < heads + kv_heads ? 0 : 1;
    const int kvh = h - heads - value * kv_heads;
    fp8_t* dst = kv_slot_k_row(pool, slot, layer, block_tokens, token_elems, block_stride) + (long)value * block_tokens * token_elems
        + (long)kvh * head_dim;
    dst[i] = f32_to_e4m3(lo * inverses[local]);
    dst[i + half] = f32_to_e4m3(hi * inverses[local]);
    if (i == 0) {
        const int offset = (int)(slot % block_tokens);
        *reinterpret_cast<float*>(pool + (slot / block_tokens) * block_stride
                                  + kv_scale_offset(scale_offset, layer, value, offset, block_tokens, kv_heads, kvh)) = scales[local];
    }
}
