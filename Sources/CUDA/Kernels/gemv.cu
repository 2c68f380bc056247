// Skinny matrix products for decode: y[m, n] (fp32) = x[m, k] (bf16) · W[n, k]ᵀ (bf16), m <= 16,
// fp32 accumulation. At these m the product reads every weight once and does little else, so
// the kernel is built around the weight stream: 16-byte loads that bypass L1, several in flight
// per thread, and enough warps per multiprocessor to keep HBM busy.
//
// The arithmetic runs on the tensor cores (mma.sync m16n8k16, bf16 in, fp32 accumulate) with
// 16 weight rows as the A operand and 8 tokens of x as B: at m = 16 an 8B layer is ~3.5 GFMA,
// which as FFMA (plus the x operand traffic it needs) would no longer hide under the loads.
//
// The order of k inside a dot product is free, so A and B fragments need not be laid out the
// way the PTX manual draws them as long as both use the same permutation of k. Thread
// (g = lane / 4, t = lane % 4) loads 8 consecutive k (16 bytes) of weight rows g and g + 8 and
// of x row g, all at the same k offset: registers .x/.y feed one mma, .z/.w the next. So no
// shuffles or shared-memory staging are needed, and x comes straight from L1 (it is small and
// every warp reads it).
//
// Work split: a CTA owns 16·R output features; its warps walk k in interleaved steps of 32·U
// and meet in shared memory at the end. Splitting k inside the CTA gives small-n shapes (4096
// features = 256 CTAs) enough warps per SM without atomics or a second pass; splitting k across
// CTAs as well (atomics into a zeroed y) was measured on the H100 and never paid.

// Weights are read once: keep them out of L1, and let L2 fetch whole 256-byte lines, since the
// next loads of this warp (and of its neighbours in k) continue the same rows.
template <int H>
__device__ __forceinline__ uint4 gemv_load_weight(const bf16_t* p) {
    uint4 v;
    if (H) {
        asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
            : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    } else {
        asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
            : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    }
    return v;
}

// x is reread by every CTA: cache it in L1.
__device__ __forceinline__ uint4 gemv_load_x(const bf16_t* p) {
    uint4 v;
    asm("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// silu(g)·u, as silu_mul_f32_to_bf16 computes it.
__device__ __forceinline__ float gemv_silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// acc = 0 for every tile.
template <int R, int T>
__device__ __forceinline__ void gemv_zero(float (&acc)[R][T][4]) {
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int tt = 0; tt < T; tt++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[r][tt][c] = 0.0f;
}

// One 32-k chunk of a thread's share: w[2r], w[2r + 1] its 8 k of tile r's rows g and g + 8, x[tt]
// the same 8 k of token row 8tt + g; .x/.y feed one mma, .z/.w the next (the k permutation above).
template <int R, int T>
__device__ __forceinline__ void gemv_mma_chunk(float (&acc)[R][T][4], const uint4 (&w)[2 * R], const uint4 (&x)[T]) {
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int tt = 0; tt < T; tt++) {
            mma_bf16(acc[r][tt], w[2 * r].x, w[2 * r + 1].x, w[2 * r].y, w[2 * r + 1].y, x[tt].x, x[tt].y);
            mma_bf16(acc[r][tt], w[2 * r].z, w[2 * r + 1].z, w[2 * r].w, w[2 * r + 1].w, x[tt].z, x[tt].w);
        }
}

// Where the rotary form (G = 2) puts its results: as rope_qkv_write_kv (norm_rope.cu) takes them.
// An fp8 pool takes the plain product, then rope_qkv_write_kv_fp8: the rotary form's own fp8
// epilogue (each CTA staging its rotated K/V, the one completing a head coding it) made 8B decode
// steps 0.4-1.1% slower on an H100 (bench/results/cuda-graphs-h200.md, 2026-12-06).
struct GemvRotaryOut {
    const int* positions;
    const float* inv_freq;
    const int* slots;
    float* q_out;
    bf16_t* pool;
    int heads, kv_heads, head_dim, layer, block_tokens;
    long block_stride;
};

// The residual form (G = 3), for the product that ends a block (o, down): adds the block's input
// (`residual`, fp32 [m, n]) to the sums, writes that (`sum`, the next block's input), then
// bf16(sum · norm_w) (`normed`, [m, n]) and each token's sum of squares over this CTA's features
// (`squares[token · CTAs + cta]`). `normed` is the next norm's output before its 1/rms factor, which
// needs every CTA's features: the product after it finds the factor from `squares` (GemvRowScale)
// and scales its own sums by it. So the add + RMSNorm kernel between the two products is gone.
struct GemvResidualOut {
    const float* residual;
    float* sum;
    const bf16_t* norm_w;
    bf16_t* normed;
    float* squares;
};

// A product whose x rows are still to be scaled each by 1 / sqrt(mean square + eps) (S = 1): x is
// a residual form's `normed`, `squares` its [16][parts] sums of squares (parts: its CTAs; rows past
// m unwritten), k the norm's width. A row's factor does not depend on k, so it scales the product's
// sums (not the same rounding as scaling x first, but as close to the unrounded norm).
struct GemvRowScale {
    const float* squares;
    int parts;
    float eps;
};

// A warp's sums into its plane of the reduction buffer `red`, accumulator c of tile (r, tt) of
// lane l at [(r·T + tt)·4 + c][l].
template <int R, int T>
__device__ __forceinline__ void gemv_stage_sums(float (*red)[R * T * 4][32], const float (&acc)[R][T][4], int warp, int lane) {
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int tt = 0; tt < T; tt++)
#pragma unroll
            for (int c = 0; c < 4; c++) red[warp][(r * T + tt) * 4 + c][lane] = acc[r][tt][c];
}

// Item i of a paired epilogue (gated, rotary): tile r's rows g and g + 8 for one token, whose
// sums over the CTA's warps are accumulators c and c + 2 (c < 2) of lane l = i mod 32 in
// `red`. Gives r, the token, the tile row g = l / 4 and both sums, in the warps' order.
template <int R, int T>
__device__ __forceinline__ void gemv_paired_item(const float (*red)[R * T * 4][32], int warps, int i,
                                                 int& r, int& tok, int& g, float& lo, float& hi) {
    const int j = i >> 5, l = i & 31;
    const int c = j & 1, tt = (j >> 1) % T;
    r = (j >> 1) / T;
    tok = 8 * tt + 2 * (l & 3) + c;
    g = l >> 2;
    const int a = (r * T + tt) * 4 + c;
    lo = 0.0f;
    hi = 0.0f;
    for (int q = 0; q < warps; q++) { lo += red[q][a][l]; hi += red[q][a + 2][l]; }
}

#ifdef HIFC_GEMV_PLACEMENT_PROBE
// Lab only (bench/cuda/lab_placement.py): the multiprocessor each CTA of the skinny GEMM ran on,
// when it started and when its thread 0 left (%globaltimer, ns), by block index; a later launch
// overwrites an earlier one's.
__device__ unsigned int gemv_probe_sm[1 << 16];
__device__ unsigned long long gemv_probe_start[1 << 16];
__device__ unsigned long long gemv_probe_end[1 << 16];
__device__ __forceinline__ unsigned long long gemv_probe_now() {
    unsigned long long now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    return now;
}
// Records the end time on every way out of the kernel.
struct GemvProbeEnd {
    __device__ ~GemvProbeEnd() {
        if (threadIdx.x == 0) gemv_probe_end[blockIdx.x] = gemv_probe_now();
    }
};
// Lab only (bench/cuda/lab_gemv_phases.py): when thread 0 was past the wait for the previous kernel,
// past its first chunk's arithmetic (its first weights and x in), and past the barrier after which
// every warp's sums are staged (the main loop over for the whole CTA).
__device__ unsigned long long gemv_probe_waited[1 << 16];
__device__ unsigned long long gemv_probe_first[1 << 16];
__device__ unsigned long long gemv_probe_staged[1 << 16];
#define GEMV_PROBE(at) \
    if (threadIdx.x == 0) at[blockIdx.x] = gemv_probe_now()
#else
#define GEMV_PROBE(at)
#endif

// Whether a residual form's sums of squares of the m rows fit in the reduction buffer of
// `capacity` floats (an 8B-shaped model's decode: every batch; a one-tile buffer holds 8 rows of
// 256 parts).
__device__ __forceinline__ bool gemv_squares_fit(const GemvRowScale& rs, int m, int capacity) { return m * rs.parts <= capacity; }

// Stages a residual form's sums of squares of the m rows in the reduction buffer `flat` (unused
// until after the main loop) by cp.async while the product runs, so that only shared-memory reads
// follow the loop: an 8B decode step 1.2% shorter at batch 16 than with the sums prefetched into
// L1 and loaded after the loop (H100, bench/results/cuda-graphs-h200.md, 2026-12-07). They were
// just written, by the kernel before, so only after the wait. Sums that do not fit go to L1.
__device__ __forceinline__ void gemv_prefetch_squares(const GemvRowScale& rs, int m, float* flat, int capacity) {
    if (gemv_squares_fit(rs, m, capacity)) {
        for (int i = threadIdx.x; i < m * rs.parts; i += blockDim.x) cp_async4(smem_addr(flat + i), rs.squares + i, true);
        cp_async_commit();
        return;
    }
    for (int i = 32 * threadIdx.x; i < m * rs.parts; i += 32 * blockDim.x)
        asm volatile("prefetch.global.L1 [%0];" ::"l"(rs.squares + i));
}

// Brings what the residual form's epilogue reads into L1 while the product runs: the residual
// rows of this CTA's features (written several kernels back, by now likely out of L2) and their
// norm weights. A thread a row, 32 features a prefetch.
template <int R>
__device__ __forceinline__ void gemv_prefetch_residual(const GemvResidualOut& res, int m, int n, int row0) {
    const int row = threadIdx.x;
    for (int f = 0; f < 16 * R; f += 32) {
        if (row < m && row0 + f < n) asm volatile("prefetch.global.L1 [%0];" ::"l"(res.residual + (size_t)row * n + row0 + f));
        if (row == m && row0 + f < n) asm volatile("prefetch.global.L1 [%0];" ::"l"(res.norm_w + row0 + f));
    }
}

// Each row's factor 1 / sqrt(mean square + eps), from rs's [16][parts] sums of squares (staged
// in `flat`, the reduction buffer of `capacity` floats, when they fit): warp w sums rows w,
// w + warps, ..., its lanes every 32nd part and then a butterfly, so every CTA sums a row in the
// same order. Row r's factor goes to flat[r · stride]: over the row's first staged sum, which only
// this warp reads and has read by the end of its butterfly, or (not staged) at r. Returns the
// stride, after a barrier.
__device__ __forceinline__ int gemv_row_factors(const GemvRowScale& rs, int m, int k, float* flat, int capacity, int warp, int lane,
                                                int warps) {
    const float* source = rs.squares;
    int stride = 1;
    if (gemv_squares_fit(rs, m, capacity)) {
        cp_async_wait<0>();
        __syncthreads();
        source = flat;
        stride = rs.parts;
    }
    for (int row = warp; row < m; row += warps) {
        const float* squares = source + row * rs.parts;
        float total = 0.0f;
#pragma unroll 8
        for (int p = lane; p < rs.parts; p += 32) total += squares[p];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
        if (lane == 0) flat[row * stride] = rsqrtf(total / k + rs.eps);
    }
    __syncthreads();
    return stride;
}

// T: token tiles of 8 (m <= 8·T); R: 16-feature tiles per CTA; U: 32-k chunks per step;
// P: prefetch the next step's loads before the current step's mma; H: L2 256-byte hint;
// W: the most warps a CTA may have (sizes the shared reduction buffer); G: gated, rotary (below)
// or residual (GemvResidualOut).
//
// Gated (G = 1), for an MLP's fused gate|up weight (n rows: gate rows 0 .. n/2 - 1, then up):
// tile r takes gate rows f .. f + 7 as its A rows 0-7 and the up rows of the same features as
// rows 8-15 (f = 8·(R·cta + r), cta below), so one thread ends up holding a feature's gate and up
// sums for the same tokens and writes silu(gate)·up as bf16 ([m, n/2]). The sums are the ones
// the plain kernel would write, so the result is bit for bit that of the product followed by
// silu_mul_f32_to_bf16, without the fp32 [m, n] round trip and the extra launch.
//
// Rotary (G = 2), for attention's fused q|k|v weight (n = (heads + 2·kv_heads)·head_dim rows,
// head_dim a multiple of 16): tile i takes dims d .. d + 7 of head h as its A rows 0-7 and
// dims d + head_dim/2 .. + 7 as rows 8-15 (h = i / (head_dim/16), d = 8·(i mod head_dim/16)),
// so a thread holds both halves of each "rotate half" pair and does what rope_qkv_write_kv
// would: rotates q and k by the token's position, writes q (fp32) to q_out and k, v (bf16) to
// the token's slot in the pool. No y is written.
//
// cta: which CTA's share of the features this is (blockIdx.x in the kernels below); wait(): what
// comes between the first weight loads and the first read of x (the kernels: the wait for the
// previous kernel; a lab's persistent kernel: its grid barrier).
// S: x rows still to be scaled (GemvRowScale rs); res: the residual form's (G = 3) outputs.
template <int T, int R, int U, int P, int H, int W, int G, int S = 0, typename Wait>
__device__ __forceinline__ void skinny_gemm(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w,
                                            void* __restrict__ y, int m, int n, int k, const GemvRotaryOut ro,
                                            const unsigned int cta, const Wait& wait,
                                            const GemvRowScale rs = GemvRowScale{}, const GemvResidualOut res = GemvResidualOut{}) {
    __shared__ float red[W][R * T * 4][32];
#ifdef HIFC_GEMV_PLACEMENT_PROBE
    const GemvProbeEnd probe_end;
    if (threadIdx.x == 0) {
        unsigned int sm;
        asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
        gemv_probe_sm[blockIdx.x] = sm;
        gemv_probe_start[blockIdx.x] = gemv_probe_now();
    }
#endif
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    // Output features per CTA: 16 a tile, or 8 gated (each tile row pairs with its up row).
    const int half = n / 2;
    const int row0 = cta * ((G == 1 ? 8 : 16) * R);

    // Rows past n (past n / 2 gated) read the last row (valid memory) and are not stored.
    const bf16_t* wp[2 * R];
    const int tiles_per_head = G == 2 ? ro.head_dim / 16 : 1;
#pragma unroll
    for (int r = 0; r < R; r++) {
        if (G == 1) {
            const int f = min(row0 + 8 * r + g, half - 1);
            wp[2 * r] = w + (size_t)f * k + 8 * t;
            wp[2 * r + 1] = w + (size_t)(half + f) * k + 8 * t;
        } else if (G == 2) {
            const int tile = min(cta * R + r, n / 16 - 1);
            const int f = (tile / tiles_per_head) * ro.head_dim + 8 * (tile % tiles_per_head) + g;
            wp[2 * r] = w + (size_t)f * k + 8 * t;
            wp[2 * r + 1] = w + (size_t)(f + ro.head_dim / 2) * k + 8 * t;
        } else {
            wp[2 * r] = w + (size_t)min(row0 + 16 * r + g, n - 1) * k + 8 * t;
            wp[2 * r + 1] = w + (size_t)min(row0 + 16 * r + g + 8, n - 1) * k + 8 * t;
        }
    }
    const bf16_t* xp[T];
    bool xon[T];
#pragma unroll
    for (int tt = 0; tt < T; tt++) {
        xon[tt] = 8 * tt + g < m;
        xp[tt] = x + (size_t)(xon[tt] ? 8 * tt + g : 0) * k + 8 * t;
    }

    float acc[R][T][4];
    gemv_zero<R, T>(acc);

    const int STEP = 32 * U;
    const int steps = (k + STEP - 1) / STEP;
    const int stride = warps;
    int s = warp;

    uint4 wa[U][2 * R], xa[U][T];
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
    // k % 8 == 0, so a thread's 8-element chunk is either wholly inside k or wholly outside.
#define GEMV_LOAD_W(S, WR)                                                                \
    {                                                                                     \
        const int kb = (S) * STEP;                                                        \
        _Pragma("unroll") for (int u = 0; u < U; u++) {                                   \
            const bool in = kb + 32 * u + 8 * t < k;                                      \
            _Pragma("unroll") for (int j = 0; j < 2 * R; j++)                             \
                WR[u][j] = in ? gemv_load_weight<H>(wp[j] + kb + 32 * u) : zero;          \
        }                                                                                 \
    }
#define GEMV_LOAD_X(S, XR)                                                                \
    {                                                                                     \
        const int kb = (S) * STEP;                                                        \
        _Pragma("unroll") for (int u = 0; u < U; u++) {                                   \
            const bool in = kb + 32 * u + 8 * t < k;                                      \
            _Pragma("unroll") for (int tt = 0; tt < T; tt++)                              \
                XR[u][tt] = in && xon[tt] ? gemv_load_x(xp[tt] + kb + 32 * u) : zero;     \
        }                                                                                 \
    }
#define GEMV_LOAD(S, WR, XR) { GEMV_LOAD_W(S, WR); GEMV_LOAD_X(S, XR); }
#define GEMV_COMPUTE(WR, XR) \
    { _Pragma("unroll") for (int u = 0; u < U; u++) gemv_mma_chunk<R, T>(acc, WR[u], XR[u]); }

    // The reduction buffer as floats: unused until after the main loop, so it can stage a residual
    // form's sums of squares meanwhile.
    float* const flat = &red[0][0][0];
    constexpr int capacity = W * R * T * 4 * 32;
    // What the kernel before wrote is read only after this: the wait, then the prefetches of the
    // residual form's inputs.
    const auto wait_then_prefetch = [&] {
        wait();
        GEMV_PROBE(gemv_probe_waited);
        if (S) gemv_prefetch_squares(rs, m, flat, capacity);
        if (G == 3) gemv_prefetch_residual<R>(res, m, n, row0);
    };

    // The weights do not depend on the kernel before this one, so their first loads are issued
    // before waiting for it (programmatic dependent launch, common.cuh); x is its output.
    if (P) {
        if (s < steps) GEMV_LOAD_W(s, wa);
        wait_then_prefetch();
        if (s < steps) GEMV_LOAD_X(s, xa);
        for (; s < steps; s += stride) {
            uint4 wn[U][2 * R], xn[U][T];
            const int sn = s + stride;
            if (sn < steps) GEMV_LOAD(sn, wn, xn);
            GEMV_COMPUTE(wa, xa);
            if (s == warp) { GEMV_PROBE(gemv_probe_first); }
#pragma unroll
            for (int u = 0; u < U; u++) {
#pragma unroll
                for (int j = 0; j < 2 * R; j++) wa[u][j] = wn[u][j];
#pragma unroll
                for (int tt = 0; tt < T; tt++) xa[u][tt] = xn[u][tt];
            }
        }
    } else {
        wait_then_prefetch();
        for (; s < steps; s += stride) {
            GEMV_LOAD(s, wa, xa);
            GEMV_COMPUTE(wa, xa);
        }
    }
#undef GEMV_LOAD
#undef GEMV_LOAD_W
#undef GEMV_LOAD_X
#undef GEMV_COMPUTE

    // Accumulator c of tile (r, tt) holds feature row0 + 16r + g (+8 for c >= 2), token
    // 8tt + 2t + (c & 1).
    if (S) {
        const int factor_stride = gemv_row_factors(rs, m, k, flat, capacity, warp, lane, warps);
#pragma unroll
        for (int tt = 0; tt < T; tt++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                // Tokens past m have no factor (and their sums are not stored): read row m - 1's.
                const float f = flat[min(8 * tt + 2 * t + c, m - 1) * factor_stride];
#pragma unroll
                for (int r = 0; r < R; r++) {
                    acc[r][tt][c] *= f;
                    acc[r][tt][c + 2] *= f;
                }
            }
        __syncthreads();  // every factor read before red takes the sums
    }
    gemv_stage_sums<R, T>(red, acc, warp, lane);
    __syncthreads();
    GEMV_PROBE(gemv_probe_staged);
    if (G == 2) {
        // Each item: a rotation pair's first half (dim d) and second (d + head_dim/2).
        const int hd = ro.head_dim, rhalf = hd / 2, kv_elems = ro.kv_heads * hd;
        for (int i = threadIdx.x; i < R * T * 2 * 32; i += blockDim.x) {
            int r, tok, row;
            float a, b;
            gemv_paired_item<R, T>(red, warps, i, r, tok, row, a, b);
            const int tile = cta * R + r;
            if (tile >= n / 16 || tok >= m) continue;
            const int head = tile / tiles_per_head, d = 8 * (tile % tiles_per_head) + row;
            if (head >= ro.heads + ro.kv_heads) {
                bf16_t* v = kv_slot_k_row(ro.pool, ro.slots[tok], ro.layer, ro.block_tokens, kv_elems, ro.block_stride)
                    + (long)ro.block_tokens * kv_elems + (head - ro.heads - ro.kv_heads) * hd;
                v[d] = f32_to_bf16(a);
                v[d + rhalf] = f32_to_bf16(b);
                continue;
            }
            float sn, cs;
            sincosf((float)ro.positions[tok] * ro.inv_freq[d], &sn, &cs);
            const float lo = a * cs - b * sn, hi = b * cs + a * sn;
            if (head < ro.heads) {
                float* qh = ro.q_out + (long)tok * ro.heads * hd + head * hd;
                qh[d] = lo;
                qh[d + rhalf] = hi;
            } else {
                bf16_t* kh = kv_slot_k_row(ro.pool, ro.slots[tok], ro.layer, ro.block_tokens, kv_elems, ro.block_stride)
                    + (head - ro.heads) * hd;
                kh[d] = f32_to_bf16(lo);
                kh[d + rhalf] = f32_to_bf16(hi);
            }
        }
        return;
    }
    if (G == 1) {
        // Each item: a feature's gate and up sums.
        for (int i = threadIdx.x; i < R * T * 2 * 32; i += blockDim.x) {
            int r, tok, row;
            float gate, up;
            gemv_paired_item<R, T>(red, warps, i, r, tok, row, gate, up);
            const int f = row0 + 8 * r + row;
            if (f < half && tok < m) static_cast<bf16_t*>(y)[(size_t)tok * half + f] = f32_to_bf16(gemv_silu_times(gate, up));
        }
        return;
    }
    for (int i = threadIdx.x; i < R * T * 4 * 32; i += blockDim.x) {
        const int j = i >> 5, l = i & 31;
        float v = 0.0f;
        for (int q = 0; q < warps; q++) v += red[q][j][l];
        const int c = j & 3, tt = (j >> 2) % T, r = (j >> 2) / T;
        const int row = row0 + 16 * r + (l >> 2) + (c >= 2 ? 8 : 0);
        const int tok = 8 * tt + 2 * (l & 3) + (c & 1);
        if (G == 3) {
            float square = 0.0f;
            if (row < n && tok < m) {
                const size_t o = (size_t)tok * n + row;
                const float sum = res.residual[o] + v;
                res.sum[o] = sum;
                res.normed[o] = f32_to_bf16(sum * bf16_to_f32(res.norm_w[row]));
                square = sum * sum;
            }
            // Slot (j, l) of every warp's plane is read by this item alone, just above.
            red[0][j][l] = square;
        } else if (row < n && tok < m) {
            static_cast<float*>(y)[(size_t)tok * n + row] = v;
        }
    }
    if (G == 3) {
        // Each token's sum of squares over this CTA's features, in a fixed order (so a step
        // gives the same bits every time): its slots are those of tile r, c = 2h + (tok & 1),
        // lane 4g + (tok & 7) / 2, for every r, h and g.
        __syncthreads();
        const int tok = threadIdx.x;
        if (tok < m) {
            const int tt = tok >> 3, t2 = (tok & 7) >> 1, c0 = tok & 1;
            float total = 0.0f;
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int h = 0; h < 2; h++)
#pragma unroll
                    for (int g2 = 0; g2 < 8; g2++) total += red[0][(r * T + tt) * 4 + 2 * h + c0][4 * g2 + t2];
            res.squares[tok * gridDim.x + cta] = total;
        }
    }
}

// grid ceil(n / (16·R)) (gated: ceil(n / 2 / (8·R))), block 32·warps (warps <= the launch bound
// / 32, and <= 8 for _b8); x, w 16-byte aligned, k % 8 == 0 (gated: n even). Names: t<token
// tiles>r<feature tiles>u<chunks per step>p<prefetch>h<L2 hint>; _silu: gated, y is bf16
// [m, n/2]; _rope: rotary (head_dim % 16 == 0). The first three won two sweeps (12 and 11
// variants × 4-16 warps) on the H100 (bench/results/gemv-h100.md): prefetching the next step
// beat deeper unrolling without it, and at m = 16 two feature tiles per CTA, which halve the x
// reads per weight byte, came out ahead.
// Four tiles (t2r4, 4 warps, four CTAs a multiprocessor) won at m = 16 on the H200 where n is
// large (gate_up, the LM head; bench/results/gemv-h200.md).
#define GEMV_ARGS const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, void* __restrict__ y, int m, int n, int k
#define GEMV_PLAIN GemvRotaryOut{}
#define GEMV_WAIT [] { wait_for_previous_kernel(); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u2p1h1(GEMV_ARGS) { skinny_gemm<1, 1, 2, 1, 1, 16, 0>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u4p1h1(GEMV_ARGS) { skinny_gemm<1, 1, 4, 1, 1, 16, 0>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r2u2p1h1(GEMV_ARGS) { skinny_gemm<2, 2, 2, 1, 1, 16, 0>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT); }
extern "C" __global__ void __launch_bounds__(256) gemv_bf16_t2r4u1p1h1_b8(GEMV_ARGS) { skinny_gemm<2, 4, 1, 1, 1, 8, 0>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u2p1h1_silu(GEMV_ARGS) { skinny_gemm<1, 1, 2, 1, 1, 16, 1>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u4p1h1_silu(GEMV_ARGS) { skinny_gemm<1, 1, 4, 1, 1, 16, 1>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r2u2p1h1_silu(GEMV_ARGS) { skinny_gemm<2, 2, 2, 1, 1, 16, 1>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT); }
extern "C" __global__ void __launch_bounds__(256) gemv_bf16_t2r4u1p1h1_b8_silu(GEMV_ARGS) { skinny_gemm<2, 4, 1, 1, 1, 8, 1>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT); }

// _rope: the rotary form; y is unused (pass 0), the rest is rope_qkv_write_kv's.
#define GEMV_ROPE_ARGS GEMV_ARGS, const int* __restrict__ positions, const float* __restrict__ inv_freq, \
    const int* __restrict__ slots, float* __restrict__ q_out, bf16_t* __restrict__ pool, int heads, int kv_heads, \
    int head_dim, int layer, int block_tokens, long block_stride
#define GEMV_ROPE GemvRotaryOut{positions, inv_freq, slots, q_out, pool, heads, kv_heads, head_dim, layer, block_tokens, block_stride}
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u2p1h1_rope(GEMV_ROPE_ARGS) { skinny_gemm<1, 1, 2, 1, 1, 16, 2>(x, w, y, m, n, k, GEMV_ROPE, blockIdx.x, GEMV_WAIT); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u4p1h1_rope(GEMV_ROPE_ARGS) { skinny_gemm<1, 1, 4, 1, 1, 16, 2>(x, w, y, m, n, k, GEMV_ROPE, blockIdx.x, GEMV_WAIT); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r2u2p1h1_rope(GEMV_ROPE_ARGS) { skinny_gemm<2, 2, 2, 1, 1, 16, 2>(x, w, y, m, n, k, GEMV_ROPE, blockIdx.x, GEMV_WAIT); }
extern "C" __global__ void __launch_bounds__(256) gemv_bf16_t2r4u1p1h1_b8_rope(GEMV_ROPE_ARGS) { skinny_gemm<2, 4, 1, 1, 1, 8, 2>(x, w, y, m, n, k, GEMV_ROPE, blockIdx.x, GEMV_WAIT); }

// _res: the residual form (GemvResidualOut), y unused (pass 0). _rs: x rows still to be scaled
// (GemvRowScale), for the products after a residual form: plain, gated and rotary.
#define GEMV_RES_ARGS GEMV_ARGS, const float* __restrict__ residual, float* __restrict__ sum, \
    const bf16_t* __restrict__ norm_w, bf16_t* __restrict__ normed, float* __restrict__ squares
#define GEMV_RES GemvRowScale{}, GemvResidualOut{residual, sum, norm_w, normed, squares}
#define GEMV_RS_ARGS const float* __restrict__ squares, int parts, float eps
#define GEMV_RS GemvRowScale{squares, parts, eps}
// t1r1u2's _rope_rs is held to 64 registers, as its _rope twin: left alone NVRTC gave it 78, and a
// multiprocessor then holds three of the 8-warp CTAs that q|k|v launches instead of four.
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u2p1h1_res(GEMV_RES_ARGS) { skinny_gemm<1, 1, 2, 1, 1, 16, 3>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT, GEMV_RES); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u4p1h1_res(GEMV_RES_ARGS) { skinny_gemm<1, 1, 4, 1, 1, 16, 3>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT, GEMV_RES); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r2u2p1h1_res(GEMV_RES_ARGS) { skinny_gemm<2, 2, 2, 1, 1, 16, 3>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT, GEMV_RES); }
extern "C" __global__ void __launch_bounds__(256) gemv_bf16_t2r4u1p1h1_b8_res(GEMV_RES_ARGS) { skinny_gemm<2, 4, 1, 1, 1, 8, 3>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT, GEMV_RES); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u2p1h1_rs(GEMV_ARGS, GEMV_RS_ARGS) { skinny_gemm<1, 1, 2, 1, 1, 16, 0, 1>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT, GEMV_RS); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u4p1h1_rs(GEMV_ARGS, GEMV_RS_ARGS) { skinny_gemm<1, 1, 4, 1, 1, 16, 0, 1>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT, GEMV_RS); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r2u2p1h1_rs(GEMV_ARGS, GEMV_RS_ARGS) { skinny_gemm<2, 2, 2, 1, 1, 16, 0, 1>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT, GEMV_RS); }
extern "C" __global__ void __launch_bounds__(256) gemv_bf16_t2r4u1p1h1_b8_rs(GEMV_ARGS, GEMV_RS_ARGS) { skinny_gemm<2, 4, 1, 1, 1, 8, 0, 1>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT, GEMV_RS); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u2p1h1_silu_rs(GEMV_ARGS, GEMV_RS_ARGS) { skinny_gemm<1, 1, 2, 1, 1, 16, 1, 1>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT, GEMV_RS); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u4p1h1_silu_rs(GEMV_ARGS, GEMV_RS_ARGS) { skinny_gemm<1, 1, 4, 1, 1, 16, 1, 1>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT, GEMV_RS); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r2u2p1h1_silu_rs(GEMV_ARGS, GEMV_RS_ARGS) { skinny_gemm<2, 2, 2, 1, 1, 16, 1, 1>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT, GEMV_RS); }
extern "C" __global__ void __launch_bounds__(256) gemv_bf16_t2r4u1p1h1_b8_silu_rs(GEMV_ARGS, GEMV_RS_ARGS) { skinny_gemm<2, 4, 1, 1, 1, 8, 1, 1>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT, GEMV_RS); }
extern "C" __global__ void __launch_bounds__(512, 2) gemv_bf16_t1r1u2p1h1_rope_rs(GEMV_ROPE_ARGS, GEMV_RS_ARGS) { skinny_gemm<1, 1, 2, 1, 1, 16, 2, 1>(x, w, y, m, n, k, GEMV_ROPE, blockIdx.x, GEMV_WAIT, GEMV_RS); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u4p1h1_rope_rs(GEMV_ROPE_ARGS, GEMV_RS_ARGS) { skinny_gemm<1, 1, 4, 1, 1, 16, 2, 1>(x, w, y, m, n, k, GEMV_ROPE, blockIdx.x, GEMV_WAIT, GEMV_RS); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r2u2p1h1_rope_rs(GEMV_ROPE_ARGS, GEMV_RS_ARGS) { skinny_gemm<2, 2, 2, 1, 1, 16, 2, 1>(x, w, y, m, n, k, GEMV_ROPE, blockIdx.x, GEMV_WAIT, GEMV_RS); }
extern "C" __global__ void __launch_bounds__(256) gemv_bf16_t2r4u1p1h1_b8_rope_rs(GEMV_ROPE_ARGS, GEMV_RS_ARGS) { skinny_gemm<2, 4, 1, 1, 1, 8, 2, 1>(x, w, y, m, n, k, GEMV_ROPE, blockIdx.x, GEMV_WAIT, GEMV_RS); }
