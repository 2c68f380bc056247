// Lab-only configurations of gemv.cu's skinny GEMM for m <= 16 (appended to it by lab_gemv.py),
// beside the committed t2r2u2: one feature tile per CTA (t2r1: twice the CTAs, x read once per
// weight byte), one chunk a step (u1: fewer registers, more CTAs per
// multiprocessor), and no prefetch (p0). _b8: at most 8 warps (t2r1u4 needs 158
// registers).
#define GEMV_LAB(T, R, U, P, W) skinny_gemm<T, R, U, P, 1, W, 0>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT)
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r1u2p1h1(GEMV_ARGS) { GEMV_LAB(2, 1, 2, 1, 16); }
extern "C" __global__ void __launch_bounds__(256) gemv_bf16_t2r1u4p1h1_b8(GEMV_ARGS) { GEMV_LAB(2, 1, 4, 1, 8); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r2u1p1h1(GEMV_ARGS) { GEMV_LAB(2, 2, 1, 1, 16); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r2u4p0h1(GEMV_ARGS) { GEMV_LAB(2, 2, 4, 0, 16); }

// Weights and x by 2D bulk tensor copies (TMA boxes), prepared after the 1D bulk-copy form lost
// (gemv-h200.md, 2026-12-07: one copy a 256-1024-byte row segment, slower the more and shorter
// its copies).
// A box here is 64 k (128 bytes, the span of the 128-byte swizzle) by all 16·R weight rows of the
// CTA, or by 8·T x rows: a stage of KC k is KC/64 weight boxes and KC/64 x boxes, a few KiB each,
// so a CTA issues 2·KC/64 copies a stage where the 1D form issued 16·R + m. Out-of-range rows (past
// n, past m) and columns (past k) come in as zeros, so no clamping or predicates. Line r of a box
// holds its 16-byte chunk c at c XOR (r mod 8), so thread (g, t), reading chunk c of rows g and
// g + 8 (and of x row g), reads at c XOR g: eight rows of one chunk fall in eight bank groups.
// Thread 0 fills the ring (the weights of the first ST chunks before the wait, x after it), then
// stage c mod ST again once every warp is done with chunk c, as the 1D form did. xmap and wmap are
// tensor maps in global memory (lab_gemv.py's tma_map), box 64 x 8·T and 64 x 16·R.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ uint4 shared_load16(unsigned int addr) {
    uint4 v;
    asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
    return v;
}

// mbar_wait that gives up after about a second: a lab run whose byte count is wrong (a box wholly
// past k, say, if it were not counted) then fails at once instead of hanging until its timeout.
__device__ __forceinline__ void mbar_wait_or_trap(unsigned int bar, int parity) {
    const long long start = clock64();
    unsigned int done = 0;
    while (!done) {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(bar), "r"(parity) : "memory");
        if (!done && clock64() - start > 2000000000ll) __trap();
    }
}

// One box of a 2D tensor map at `map` (global memory), at k c0 and row c1, into shared memory at
// `dst`; its bytes count on mbarrier `bar`.
__device__ __forceinline__ void tma_load_2d(unsigned int dst, const void* map, unsigned int bar, int c0, int c1) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 :: "r"(dst), "l"(map), "r"(c0), "r"(c1), "r"(bar) : "memory");
}

template <int T, int R, int KC, int ST>
__device__ __forceinline__ void skinny_gemm_tma(const void* xmap, const void* wmap, float* __restrict__ y, int m, int n, int k) {
    static_assert(KC % 64 == 0, "a stage is whole boxes of 64 k");
    constexpr int BOXES = KC / 64, WBOX = 16 * R * 128, XBOX = 8 * T * 128, STAGE = BOXES * (WBOX + XBOX), SUB = KC / 32;
    extern __shared__ __align__(128) unsigned char gemv_tma_smem[];
    __shared__ __align__(8) unsigned long long full[ST];
    // The swizzle repeats every 1024 bytes: the ring starts at the first such boundary (the launch
    // asks for 1024 bytes more than the ring).
    const unsigned int ring = (smem_addr(gemv_tma_smem) + 1023u) & ~1023u, bar0 = smem_addr(full);
    unsigned char* const ring_ptr = gemv_tma_smem + (ring - smem_addr(gemv_tma_smem));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int row0 = blockIdx.x * 16 * R;
    const int chunks = (k + KC - 1) / KC;
    if (threadIdx.x == 0) {
        for (int s = 0; s < ST; s++) mbar_init(bar0 + 8 * s, 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    const auto stage_of = [&](int c) { return ring + (unsigned int)((c % ST) * STAGE); };
    const auto weights = [&](int c) {
        mbar_expect_bytes(bar0 + 8 * (c % ST), STAGE);  // the x boxes' bytes too: the phase waits for them
        for (int b = 0; b < BOXES; b++) tma_load_2d(stage_of(c) + b * WBOX, wmap, bar0 + 8 * (c % ST), c * KC + 64 * b, row0);
    };
    const auto xs = [&](int c) {
        for (int b = 0; b < BOXES; b++) tma_load_2d(stage_of(c) + BOXES * WBOX + b * XBOX, xmap, bar0 + 8 * (c % ST), c * KC + 64 * b, 0);
    };
    const int first = min(ST, chunks);
    if (threadIdx.x == 0)
        for (int c = 0; c < first; c++) weights(c);
    wait_for_previous_kernel();
    if (threadIdx.x == 0)
        for (int c = 0; c < first; c++) xs(c);

    float acc[R][T][4];
    gemv_zero<R, T>(acc);
    for (int c = 0; c < chunks; c++) {
        mbar_wait_or_trap(bar0 + 8 * (c % ST), (c / ST) & 1);
        const unsigned int stage = stage_of(c);
        for (int j = ((warp - c * SUB) % warps + warps) % warps; j < SUB; j += warps) {
            // Sub-chunk j: k 32j .. 32j + 31 of the stage, in box j / 2, chunks 4 (j mod 2) .. + 3.
            const unsigned int swizzled = (unsigned int)(((4 * (j & 1) + t) ^ g) << 4);
            const unsigned int wbox = stage + (j >> 1) * WBOX, xbox = stage + BOXES * WBOX + (j >> 1) * XBOX;
            uint4 a[2 * R], b[T];
#pragma unroll
            for (int r = 0; r < R; r++) {
                a[2 * r] = shared_load16(wbox + (16 * r + g) * 128 + swizzled);
                a[2 * r + 1] = shared_load16(wbox + (16 * r + g + 8) * 128 + swizzled);
            }
#pragma unroll
            for (int tt = 0; tt < T; tt++) b[tt] = shared_load16(xbox + (8 * tt + g) * 128 + swizzled);
            gemv_mma_chunk<R, T>(acc, a, b);
        }
        __syncthreads();  // every warp is done with this stage: refill it
        if (threadIdx.x == 0 && c + ST < chunks) {
            weights(c + ST);
            xs(c + ST);
        }
    }
    // Every copy has landed, so the ring holds the reduction (skinny_gemm's, plain form).
    float(*red)[R * T * 4][32] = reinterpret_cast<float(*)[R * T * 4][32]>(ring_ptr);
    gemv_stage_sums<R, T>(red, acc, warp, lane);
    __syncthreads();
    for (int i = threadIdx.x; i < R * T * 4 * 32; i += blockDim.x) {
        const int j = i >> 5, l = i & 31;
        float v = 0.0f;
        for (int q = 0; q < warps; q++) v += red[q][j][l];
        const int c = j & 3, tt = (j >> 2) % T, r = (j >> 2) / T;
        const int row = row0 + 16 * r + (l >> 2) + (c >= 2 ? 8 : 0);
        const int tok = 8 * tt + 2 * (l & 3) + (c & 1);
        if (row < n && tok < m) y[(size_t)tok * n + row] = v;
    }
}
#define GEMV_TMA(T, R, KC, ST) skinny_gemm_tma<T, R, KC, ST>(xmap, wmap, y, m, n, k)
#else
#define GEMV_TMA(T, R, KC, ST) __trap()
#endif

// gemv_tma_t<T>r<R>k<KC>s<ST>: grid ceil(n / (16·R)), block 32·warps (1-16), dynamic shared memory
// ST · KC/64 · (16·R + 8·T) · 128 + 1024 bytes (lab_gemv.py's tma_shared).
#define GEMV_TMA_ARGS const void* xmap, const void* wmap, float* __restrict__ y, int m, int n, int k
extern "C" __global__ void __launch_bounds__(512, 1) gemv_tma_t1r1k256s4(GEMV_TMA_ARGS) { GEMV_TMA(1, 1, 256, 4); }
extern "C" __global__ void __launch_bounds__(512, 1) gemv_tma_t1r2k256s4(GEMV_TMA_ARGS) { GEMV_TMA(1, 2, 256, 4); }
extern "C" __global__ void __launch_bounds__(512, 1) gemv_tma_t1r4k256s4(GEMV_TMA_ARGS) { GEMV_TMA(1, 4, 256, 4); }
extern "C" __global__ void __launch_bounds__(512, 1) gemv_tma_t2r2k256s4(GEMV_TMA_ARGS) { GEMV_TMA(2, 2, 256, 4); }
extern "C" __global__ void __launch_bounds__(512, 1) gemv_tma_t2r4k256s3(GEMV_TMA_ARGS) { GEMV_TMA(2, 4, 256, 3); }
extern "C" __global__ void __launch_bounds__(512, 1) gemv_tma_t2r2k512s3(GEMV_TMA_ARGS) { GEMV_TMA(2, 2, 512, 3); }
