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

// Balanced: exactly `gridDim.x` CTAs (the places the device has for them) share the product's
// work units (a 16·R-row tile by a 32·U-k step) evenly, each a contiguous run of units that may
// start and end inside a tile, so that no multiprocessor idles at the end while others finish a last
// round of CTAs (gate|up's 1792 one-row CTAs are 6.8 rounds of 264 places). A tile's first part
// belongs to the CTA whose run holds the tile's first unit (the owner, which reaches it last, at its
// run's end); any later part is the first segment of a later CTA's run, which it does first: that
// CTA leaves its sums in `partials` (its slot, 16·R rows x 8·T tokens) and raises its flag, and the
// owner adds the later parts in CTA order (so the sums do not depend on timing), lowers the flags
// for the next launch, and stores the tile. Every CTA is resident at once (the grid is the places),
// and an owner waits only for CTAs after it, so the waits end. Plain form only.
template <int T, int R, int U, int W>
__device__ __forceinline__ void skinny_gemm_balanced(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, float* __restrict__ y,
                                                     int m, int n, int k, float* __restrict__ partials, int* __restrict__ flags) {
    __shared__ float red[W][R * T * 4][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    constexpr int STEP = 32 * U, SLOT = 16 * R * 8 * T;
    const long steps = (k + STEP - 1) / STEP, tiles = (n + 16 * R - 1) / (16 * R), total = steps * tiles;
    const long G = gridDim.x, c = blockIdx.x;
    const auto run_start = [&](long cta) { return cta * total / G; };
    const long u0 = run_start(c), u1 = run_start(c + 1);
    bool xon[T];
#pragma unroll
    for (int tt = 0; tt < T; tt++) xon[tt] = 8 * tt + g < m;
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
    // Unit u: tile u / steps, step u % steps.
    const auto load = [&](long u, uint4 (&wr)[U][2 * R], uint4 (&xr)[U][T], bool with_w, bool with_x) {
        const int tile = (int)(u / steps), kb = (int)(u % steps) * STEP;
#pragma unroll
        for (int uu = 0; uu < U; uu++) {
            const int kk = kb + 32 * uu + 8 * t;
            const bool in = kk < k;
#pragma unroll
            for (int r = 0; r < R && with_w; r++) {
                const int row = tile * 16 * R + 16 * r + g;
                wr[uu][2 * r] = in ? gemv_load_weight<1>(w + (size_t)min(row, n - 1) * k + kk) : zero;
                wr[uu][2 * r + 1] = in ? gemv_load_weight<1>(w + (size_t)min(row + 8, n - 1) * k + kk) : zero;
            }
            if (with_x) {
#pragma unroll
                for (int tt = 0; tt < T; tt++) xr[uu][tt] = in && xon[tt] ? gemv_load_x(x + (size_t)(8 * tt + g) * k + kk) : zero;
            }
        }
    };
    long u = u0 + warp;
    uint4 wa[U][2 * R], xa[U][T];
    if (u < u1) load(u, wa, xa, true, false);
    wait_for_previous_kernel();
    if (u < u1) load(u, wa, xa, false, true);
    for (long tile = u0 / steps; tile * steps < u1; tile++) {
        const long tb = max(u0, tile * steps), te = min(u1, (tile + 1) * steps);
        float acc[R][T][4];
        gemv_zero<R, T>(acc);
        for (; u < te; u += W) {
            uint4 wn[U][2 * R], xn[U][T];
            if (u + W < u1) load(u + W, wn, xn, true, true);
#pragma unroll
            for (int uu = 0; uu < U; uu++) gemv_mma_chunk<R, T>(acc, wa[uu], xa[uu]);
#pragma unroll
            for (int uu = 0; uu < U; uu++) {
#pragma unroll
                for (int j = 0; j < 2 * R; j++) wa[uu][j] = wn[uu][j];
#pragma unroll
                for (int tt = 0; tt < T; tt++) xa[uu][tt] = xn[uu][tt];
            }
        }
        gemv_stage_sums<R, T>(red, acc, warp, lane);
        __syncthreads();
        const bool owner = tb == tile * steps;
        long last = c;  // the last CTA with a part of this tile
        while (last + 1 < G && run_start(last + 1) < (tile + 1) * steps) last++;
        if (owner && last > c && threadIdx.x == 0) {
            const long long start = clock64();
            for (long o = c + 1; o <= last; o++) {
                while (true) {
                    int f;
                    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(f) : "l"(flags + o) : "memory");
                    if (f) break;
                    if (clock64() - start > 2000000000ll) __trap();  // about a second: a lab bug fails at once
                }
            }
        }
        __syncthreads();
        for (int i = threadIdx.x; i < R * T * 4 * 32; i += blockDim.x) {
            const int j = i >> 5, l = i & 31;
            float v = 0.0f;
            for (int q = 0; q < W; q++) v += red[q][j][l];
            const int cc = j & 3, tt = (j >> 2) % T, r = (j >> 2) / T;
            const int lr = 16 * r + (l >> 2) + (cc >= 2 ? 8 : 0), tok = 8 * tt + 2 * (l & 3) + (cc & 1);
            if (!owner) {
                partials[c * SLOT + lr * 8 * T + tok] = v;
                continue;
            }
            for (long o = c + 1; o <= last; o++) v += __ldcg(partials + o * SLOT + lr * 8 * T + tok);
            const long row = tile * 16 * R + lr;
            if (row < n && tok < m) y[(size_t)tok * n + row] = v;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            if (!owner) {
                __threadfence();
                asm volatile("st.release.gpu.global.b32 [%0], %1;" :: "l"(flags + c), "r"(1) : "memory");
            } else {
                for (long o = c + 1; o <= last; o++) flags[o] = 0;
            }
        }
    }
}

// gemv_bal_t<T>r<R>u<U>: grid = the CTAs a multiprocessor holds x the multiprocessors (no more),
// block 32·W (W = 8 here); partials: grid x 16·R x 8·T floats; flags: grid ints, zero before the
// first launch (each launch leaves them zero).
#define GEMV_BAL_ARGS const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, float* __restrict__ y, int m, int n, int k, \
    float* __restrict__ partials, int* __restrict__ flags
extern "C" __global__ void __launch_bounds__(256) gemv_bal_t1r1u4(GEMV_BAL_ARGS) { skinny_gemm_balanced<1, 1, 4, 8>(x, w, y, m, n, k, partials, flags); }
extern "C" __global__ void __launch_bounds__(256) gemv_bal_t1r1u2(GEMV_BAL_ARGS) { skinny_gemm_balanced<1, 1, 2, 8>(x, w, y, m, n, k, partials, flags); }
extern "C" __global__ void __launch_bounds__(256, 2) gemv_bal_t2r2u2(GEMV_BAL_ARGS) { skinny_gemm_balanced<2, 2, 2, 8>(x, w, y, m, n, k, partials, flags); }
extern "C" __global__ void __launch_bounds__(256, 2) gemv_bal_t2r2u1(GEMV_BAL_ARGS) { skinny_gemm_balanced<2, 2, 1, 8>(x, w, y, m, n, k, partials, flags); }
