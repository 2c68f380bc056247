// Shared helpers, prepended to every kernel file before NVRTC compiles it. NVRTC has no host
// headers, so everything here is self-contained: bf16 is handled as raw bits.
typedef unsigned short bf16_t;

#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float bf16_to_f32(bf16_t x) {
    return __uint_as_float(((unsigned int)x) << 16);
}

// Round to nearest even, as PyTorch does; NaN stays NaN.
__device__ __forceinline__ bf16_t f32_to_bf16(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// The K row of the token at `slot` (block · block_tokens + offset) in `layer` of the block-major
// KV pool ([layer][K|V][token][kv_head][head_dim] a block, blocks block_stride elements apart,
// HiFCCore.KVBlockLayout); its V row is block_tokens · token_elems elements further on.
__device__ __forceinline__ bf16_t* kv_slot_k_row(bf16_t* pool, long slot, int layer, int block_tokens, int token_elems,
                                                 long block_stride) {
    return pool + (slot / block_tokens) * block_stride + ((long)(layer * 2) * block_tokens + slot % block_tokens) * token_elems;
}

// pos / block_tokens without a run-time integer division, which costs some twenty instructions:
// in the attention kernels' copy loops, one per row copied, it was most of their instructions
// (decode at batch 16 x 2048 tokens on an H200: 41.3 us with it, 35.3 us with the block size a
// compile-time constant, bench/results/decode-attention-h200.md). The quotient is the high word
// of (pos + 1) * floor((2^32 - 1) / block_tokens), exact while (pos + 1) * block_tokens <= 2^32;
// the host checks that for every context (CUDAKernels.checkBlockIndexing).
__device__ __forceinline__ unsigned int block_index_magic(int block_tokens) { return 0xffffffffu / (unsigned int)block_tokens; }
__device__ __forceinline__ int block_index(int pos, unsigned int magic) { return (int)__umulhi((unsigned int)pos + 1, magic); }

// Sum over the whole block (blockDim.x a multiple of 32); every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* scratch /* >= 33 floats of shared */) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float t = lane < warps ? scratch[lane] : 0.0f;
        t = warp_sum(t);
        if (lane == 0) scratch[32] = t;
    }
    __syncthreads();
    float total = scratch[32];
    __syncthreads();
    return total;
}

// Programmatic dependent launch (Hopper and later). The host launches every kernel with
// programmatic stream serialization, so a kernel may start while the one before it in the stream
// is still finishing. Every kernel calls `grid_dependency_wait()` before it reads anything an
// earlier kernel wrote (and before it writes anything an earlier kernel may still read): it
// returns once the previous grid has finished and its writes are visible. Because every kernel
// waits, each one finishing implies that all before it have. Work that depends on nothing earlier,
// such as loading weights, may come before the wait. `grid_dependents_launch()` lets the next
// kernel's blocks be scheduled once every block of this grid has called it or exited. On older
// GPUs, and when a kernel is launched without the attribute, both are no-ops.
__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void grid_dependents_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Every kernel's first statement (the skinny GEMM's comes after its first weight loads).
__device__ __forceinline__ void wait_for_previous_kernel() {
    grid_dependency_wait();
    grid_dependents_launch();
}
