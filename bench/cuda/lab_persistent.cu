// Lab only (bench/cuda/lab_persistent.py), appended to gemv.cu: a chain of 8B-shaped o products
// (4096 x 4096, bf16) with an add + RMSNorm after each, run by one persistent kernel whose CTAs
// meet at a grid barrier where the decode step has a kernel boundary. The question it answers:
// does a barrier inside one kernel cost less than a kernel boundary under programmatic dependent
// launch (the norms' 3.4-4.6 us of exposed time a boundary at batch 16, cuda-graphs-h200.md)?
// If it does, a persistent decode layer is the remedy for the fixed per-kernel costs that keep the
// H200 step above 1.10x its roofline; if not, that road is closed too.

// A grid-wide barrier for a grid whose CTAs are all resident (the lab launches at most the
// driver's residency times the multiprocessors). Self-resetting, so a CUDA graph can replay the
// kernel: the last CTA to arrive sets the count back to zero and then moves the generation on.
struct LabGridBarrier {
    unsigned int count;
    unsigned int generation;
};

__device__ __forceinline__ unsigned int lab_load_acquire(const unsigned int* p) {
    unsigned int v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ void lab_grid_barrier(LabGridBarrier* bar) {
    __syncthreads();
    if (threadIdx.x == 0) {
        const unsigned int generation = lab_load_acquire(&bar->generation);
        __threadfence();  // this CTA's writes before its arrival
        if (atomicAdd(&bar->count, 1u) == gridDim.x - 1) {
            atomicExch(&bar->count, 0u);
            __threadfence();
            atomicAdd(&bar->generation, 1u);
        } else {
            while (lab_load_acquire(&bar->generation) == generation) {
            }
        }
        __threadfence();
    }
    __syncthreads();
}

// sum = x + y and out = bf16(sum · rsqrt(mean(sum²) + eps) · w) for one row of `dim` (a multiple
// of 4, at most 4 float4 chunks a thread), with float4 loads as add_rmsnorm_f32_to_bf16 has them.
__device__ __forceinline__ void lab_add_rmsnorm_row(const float* x, const float* y, float* sum, const bf16_t* w, bf16_t* out,
                                                    int dim, float eps) {
    __shared__ float lab_partial[32];
    float4 v[4];
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int c = threadIdx.x + j * blockDim.x;
        v[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (c < dim / 4) {
            const float4 a = reinterpret_cast<const float4*>(x)[c], b = reinterpret_cast<const float4*>(y)[c];
            v[j] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
            reinterpret_cast<float4*>(sum)[c] = v[j];
            ss += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
        }
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) lab_partial[threadIdx.x >> 5] = ss;
    __syncthreads();
    float total = 0.0f;
    for (int i = 0; i < (int)(blockDim.x >> 5); ++i) total += lab_partial[i];
    const float inv = rsqrtf(total / dim + eps);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int c = threadIdx.x + j * blockDim.x;
        if (c >= dim / 4) continue;
        const float e[4] = {v[j].x, v[j].y, v[j].z, v[j].w};
        for (int i = 0; i < 4; ++i) out[4 * c + i] = f32_to_bf16(e[i] * inv * bf16_to_f32(w[4 * c + i]));
    }
    __syncthreads();  // lab_partial is reused by the next row
}

// layers x (y = x_l · W_lᵀ; then, with norms, sum_{l+1} = sum_l + y and x_{l+1} = norm(sum_{l+1})).
// xs: [layers + 1][m][n] bf16 (x_0 given), sums: [layers + 1][m][n] fp32 (sum_0 given), y: [m][n].
// Without norms the products follow one another with a barrier between them (x_{l+1} is then
// whatever xs holds): the lab's twin of a step with no norm kernels.
// Timing only where x is concerned: skinny_gemm reads x through the non-coherent path, which is not
// promised to see what another CTA wrote during the same kernel (a persistent layer kernel would
// read it through L2, ld.global.cg, which cost 0.4-1.2% of a step in cuda-graphs-h200.md); the
// values here are the same in every replay, so the lab's comparison cannot tell either way.
template <int T, int R, int U>
__device__ __forceinline__ void lab_o_chain(const bf16_t* w, bf16_t* xs, float* sums, float* y, const bf16_t* norm_w, int layers,
                                            int m, int n, float eps, int norms, LabGridBarrier* bar) {
    const int tiles = n / (16 * R);
    for (int l = 0; l < layers; ++l) {
        const bf16_t* x = xs + (size_t)l * m * n;
        // The first layer's x is there at launch; later ones wait for the norm (or the product)
        // before, after this CTA's first weight loads.
        bool waited = l == 0;
        auto wait = [&] {
            if (!waited) lab_grid_barrier(bar);
            waited = true;
        };
        for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
            skinny_gemm<T, R, U, 1, 1, 16, 0>(x, w + (size_t)l * n * n, y, m, n, n, GemvRotaryOut{}, tile, wait);
            __syncthreads();  // skinny_gemm's shared sums are rewritten by the next tile
        }
        wait();  // a CTA with no tile still takes part
        if (!norms) continue;
        lab_grid_barrier(bar);  // y is whole
        for (int r = blockIdx.x; r < m; r += gridDim.x)
            lab_add_rmsnorm_row(sums + ((size_t)l * m + r) * n, y + (size_t)r * n, sums + ((size_t)(l + 1) * m + r) * n, norm_w,
                                xs + ((size_t)(l + 1) * m + r) * n, n, eps);
    }
}

#define LAB_CHAIN_ARGS const bf16_t* __restrict__ w, bf16_t* xs, float* sums, float* y, const bf16_t* __restrict__ norm_w, \
    int layers, int m, int n, float eps, int norms, LabGridBarrier* bar
// m <= 8: hifc's t1r1u4 launch (8 warps, two CTAs a multiprocessor); m <= 16: its t2r2u2 one (16 warps).
extern "C" __global__ void __launch_bounds__(256, 2) lab_persistent_chain_t1(LAB_CHAIN_ARGS) {
    lab_o_chain<1, 1, 4>(w, xs, sums, y, norm_w, layers, m, n, eps, norms, bar);
}
extern "C" __global__ void __launch_bounds__(512) lab_persistent_chain_t2(LAB_CHAIN_ARGS) {
    lab_o_chain<2, 2, 2>(w, xs, sums, y, norm_w, layers, m, n, eps, norms, bar);
}
