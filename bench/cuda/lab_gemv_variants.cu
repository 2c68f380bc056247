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

// The weight stream by bulk asynchronous copies (cp.async.bulk, the TMA unit) instead of each
// thread's 16-byte loads. The product at m = 16 stalls on its loads (L1TEX scoreboard, two thirds
// of issue slots, gemv-h200.md) because the bytes a multiprocessor keeps in flight are bounded by
// its registers; a bulk copy puts a whole row segment in flight from one instruction and lands it
// in shared memory. Each CTA owns 16·R weight rows and walks k in chunks of KC elements through a
// ring of S shared-memory stages; a stage holds the chunk of each of its rows and of each x row,
// each row segment one copy, all counted on the stage's mbarrier. Warp 0 fills the stages: the
// weights of the first S chunks before the wait for the previous kernel (they depend on nothing),
// their x after it; then stage c % S again once every warp is done with chunk c (a block barrier
// a chunk). The warps take the chunk's 32-element sub-chunks in turn and run the same mma.sync
// arithmetic as skinny_gemm from 16-byte shared-memory reads: thread (g, t) reads 8 elements at k
// offset 8t of rows g and g + 8, rows padded by 64 bytes so that the two rows of a quarter warp
// fall in different banks. After the loop the stages hold skinny_gemm's reduction buffer.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void bulk_copy_to_shared(unsigned int dst, const void* src, unsigned int bytes, unsigned int bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
                 :: "r"(dst), "l"(src), "r"(bytes), "r"(bar) : "memory");
}

// mbar_wait that gives up after about a second (a lab run with a broken count then fails at once
// instead of hanging until its timeout).
__device__ __forceinline__ void mbar_wait_or_trap(unsigned int bar, int parity) {
    const long long start = clock64();
    unsigned int done = 0;
    while (!done) {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(bar), "r"(parity) : "memory");
        if (!done && clock64() - start > 2000000000ll) __trap();
    }
}

__device__ __forceinline__ uint4 shared_load16(unsigned int addr) {
    uint4 v;
    asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
    return v;
}

// Elements a staged row takes (KC a multiple of 64: a row is then 64 bytes past a multiple of
// 128), rows a stage holds, and the dynamic shared memory of the ring (lab_gemv.py computes the
// same).
template <int T, int R, int KC>
struct GemvBulkStage {
    static constexpr int ROW = KC + 32;
    static constexpr int ROWS = 16 * R + 8 * T;
    static constexpr int ELEMS = ROWS * ROW;
};

template <int T, int R, int KC, int S>
__device__ __forceinline__ void skinny_gemm_bulk(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, float* __restrict__ y,
                                                 int m, int n, int k) {
    using Stage = GemvBulkStage<T, R, KC>;
    static_assert(KC % 64 == 0, "a stage row must end 64 bytes past a multiple of 128");
    extern __shared__ __align__(128) unsigned char gemv_bulk_smem[];
    __shared__ __align__(8) unsigned long long full[S];
    const unsigned int ring = smem_addr(gemv_bulk_smem), bar0 = smem_addr(full);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int row0 = blockIdx.x * 16 * R;
    const int chunks = (k + KC - 1) / KC;
    constexpr int SUB = KC / 32;

    if (threadIdx.x == 0) {
        for (int s = 0; s < S; s++) mbar_init(bar0 + 8 * s, 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    // Chunk c's stage, its bytes a row, and the copies (warp 0): lane 0 arrives once with the
    // stage's whole count, so the phase ends only when the last of them has landed. Rows past n
    // repeat row n - 1 (valid memory, never stored).
    const auto stage_of = [&](int c) { return ring + 2u * (unsigned int)((c % S) * Stage::ELEMS); };
    const auto row_bytes = [&](int c) { return 2u * (unsigned int)min(KC, k - c * KC); };
    const auto announce = [&](int c) {
        if (lane == 0) mbar_expect_bytes(bar0 + 8 * (c % S), (16 * R + m) * row_bytes(c));
        __syncwarp();
    };
    const auto copy_weights = [&](int c) {
        for (int i = lane; i < 16 * R; i += 32)
            bulk_copy_to_shared(stage_of(c) + 2u * i * Stage::ROW, w + (size_t)min(row0 + i, n - 1) * k + (size_t)c * KC, row_bytes(c),
                                bar0 + 8 * (c % S));
    };
    const auto copy_x = [&](int c) {
        for (int i = lane; i < m; i += 32)
            bulk_copy_to_shared(stage_of(c) + 2u * (16 * R + i) * Stage::ROW, x + (size_t)i * k + (size_t)c * KC, row_bytes(c),
                                bar0 + 8 * (c % S));
    };

    const int first = min(S, chunks);
    if (warp == 0)
        for (int c = 0; c < first; c++) {
            announce(c);
            copy_weights(c);
        }
    wait_for_previous_kernel();
    if (warp == 0)
        for (int c = 0; c < first; c++) copy_x(c);

    float acc[R][T][4];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int tt = 0; tt < T; tt++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[r][tt][c] = 0.0f;
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
    for (int c = 0; c < chunks; c++) {
        mbar_wait_or_trap(bar0 + 8 * (c % S), (c / S) & 1);
        const unsigned int stage = stage_of(c);
        // Sub-chunk q of the whole walk goes to warp q mod warps.
        for (int j = ((warp - c * SUB) % warps + warps) % warps; j < SUB; j += warps) {
            const int kk = 32 * j + 8 * t;
            const bool in = c * KC + kk < k;  // k % 8 == 0: a thread's 8 elements are all in or all out
            uint4 a[2 * R], b[T];
#pragma unroll
            for (int r = 0; r < R; r++) {
                a[2 * r] = in ? shared_load16(stage + 2u * ((16 * r + g) * Stage::ROW + kk)) : zero;
                a[2 * r + 1] = in ? shared_load16(stage + 2u * ((16 * r + g + 8) * Stage::ROW + kk)) : zero;
            }
#pragma unroll
            for (int tt = 0; tt < T; tt++) b[tt] = in ? shared_load16(stage + 2u * ((16 * R + 8 * tt + g) * Stage::ROW + kk)) : zero;
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int tt = 0; tt < T; tt++) {
                    mma_bf16(acc[r][tt], a[2 * r].x, a[2 * r + 1].x, a[2 * r].y, a[2 * r + 1].y, b[tt].x, b[tt].y);
                    mma_bf16(acc[r][tt], a[2 * r].z, a[2 * r + 1].z, a[2 * r].w, a[2 * r + 1].w, b[tt].z, b[tt].w);
                }
        }
        __syncthreads();  // every warp is done with this stage: refill it
        if (warp == 0 && c + S < chunks) {
            announce(c + S);
            copy_weights(c + S);
            copy_x(c + S);
        }
    }

    // Every copy has landed (each chunk was waited for): the ring holds the reduction.
    float(*red)[R * T * 4][32] = reinterpret_cast<float(*)[R * T * 4][32]>(gemv_bulk_smem);
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int tt = 0; tt < T; tt++)
#pragma unroll
            for (int c = 0; c < 4; c++) red[warp][(r * T + tt) * 4 + c][lane] = acc[r][tt][c];
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
#define GEMV_BULK(T, R, KC, S) skinny_gemm_bulk<T, R, KC, S>(x, w, static_cast<float*>(y), m, n, k)
#else
#define GEMV_BULK(T, R, KC, S) __trap()
#endif

// gemv_bulk_t<T>r<R>k<KC>s<S>: grid ceil(n / (16·R)), block 32·warps (4-16), dynamic shared
// memory S · (16·R + 8·T) · (KC + 32) · 2 bytes (at least the reduction's warps · R·T·512 bytes).
extern "C" __global__ void __launch_bounds__(512) gemv_bulk_t1r1k256s4(GEMV_ARGS) { GEMV_BULK(1, 1, 256, 4); }
extern "C" __global__ void __launch_bounds__(512) gemv_bulk_t1r2k256s4(GEMV_ARGS) { GEMV_BULK(1, 2, 256, 4); }
extern "C" __global__ void __launch_bounds__(512) gemv_bulk_t1r2k512s3(GEMV_ARGS) { GEMV_BULK(1, 2, 512, 3); }
extern "C" __global__ void __launch_bounds__(512) gemv_bulk_t2r1k256s4(GEMV_ARGS) { GEMV_BULK(2, 1, 256, 4); }
extern "C" __global__ void __launch_bounds__(512) gemv_bulk_t2r2k256s4(GEMV_ARGS) { GEMV_BULK(2, 2, 256, 4); }
extern "C" __global__ void __launch_bounds__(512) gemv_bulk_t2r2k128s6(GEMV_ARGS) { GEMV_BULK(2, 2, 128, 6); }
extern "C" __global__ void __launch_bounds__(512) gemv_bulk_t2r4k128s4(GEMV_ARGS) { GEMV_BULK(2, 4, 128, 4); }
