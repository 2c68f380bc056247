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

// FP8 E4M3 KV (KVDType.fp8e4m3, HiFCCore.FP8E4M3): 1 sign, 4 exponent bits of bias 7, 3 mantissa
// bits, largest finite 448, codes 0x7f/0xff NaN. A pool of them is bytes; each (layer, K|V, token,
// KV head) row of head_dim codes has an f32 scale, `scale_offset` bytes from its block's start
// ([layer][K|V][token][kv_head] floats after the codes), and stands for scale · e4m3. The encoder
// is the CPU backend's (hifc_fp8_e4m3_from_float, Dispatch.c) step for step, so both backends
// write the same bytes for the same floats.
typedef unsigned char fp8_t;

// x as E4M3: round to nearest even, saturated to ±448 (NaN becomes 0x7f).
__device__ __forceinline__ fp8_t f32_to_e4m3(float x) {
    const unsigned int bits = __float_as_uint(x);
    const unsigned int sign = (bits >> 24) & 0x80u;
    const float a = fabsf(x);
    if (a != a) return (fp8_t)0x7f;
    if (a >= 448.0f) return (fp8_t)(sign | 0x7eu);
    if (a < 0.015625f) return (fp8_t)(sign | (unsigned int)rintf(a * 512.0f));  // subnormals, steps of 2^-9
    int exponent = (int)((bits >> 23) & 0xffu) - 127;                               // -6 ... 8
    const float mantissa = __uint_as_float((bits & 0x007fffffu) | 0x3f800000u);    // [1, 2), exact
    int q = (int)rintf((mantissa - 1.0f) * 8.0f);                                    // 0 ... 8
    if (q == 8) {
        q = 0;
        exponent++;
    }
    return (fp8_t)(sign | (unsigned int)((exponent + 7) << 3) | (unsigned int)q);
}

// The value of the E4M3 code in the low byte of `code`, exact: its exponent and mantissa bits
// placed at the top of an f32's (bias 127 - 7 = 120 too small), then scaled by 2^120; a
// subnormal code becomes an f32 subnormal on the way, which the multiply keeps exact since the
// kernels are compiled without flushing denormals. Five instructions, no branch. The NaN codes
// (0x7f, 0xff), which the encoder writes only for a NaN input, read as ±480 here.
__device__ __forceinline__ float e4m3_to_f32(unsigned int code) {
    return __uint_as_float(((code & 0x7fu) << 20) | ((code & 0x80u) << 24)) * __int_as_float(0x7b800000);  // 2^120
}

// A row's largest |x| skips NaN, as the CPU's comparison does.
__device__ __forceinline__ unsigned int e4m3_amax_bits(float x) {
    const float a = fabsf(x);
    return a == a ? __float_as_uint(a) : 0u;  // non-negative floats order as their bits
}

// `a` (0 <= a) rounded to the nearest E4M3 magnitude (ties to even, saturated at 448): the value
// of f32_to_e4m3(a), without building the code. The CPU's e4m3_rounded (Dispatch.c) step for step.
__device__ __forceinline__ float e4m3_rounded(float a) {
    const unsigned int bits = __float_as_uint(a);
    const float normal = __uint_as_float((bits + 0x7ffffu + ((bits >> 20) & 1u)) & 0xfff00000u);  // 3 of 23 mantissa bits
    const float subnormal = __fmul_rn(rintf(__fmul_rn(a, 512.0f)), 1.0f / 512.0f);                // steps of 2^-9
    const float rounded = a < 0.015625f ? subnormal : normal;
    return rounded < 448.0f ? rounded : 448.0f;
}

// The byte offset, within a block, of the scale of `token`'s K (value 0) or V (1) row of KV head
// `kv_head` in `layer`.
__device__ __forceinline__ long kv_scale_offset(long scale_offset, int layer, int value, int token, int block_tokens, int kv_heads,
                                                int kv_head) {
    return scale_offset + ((((long)(layer * 2 + value) * block_tokens + token) * kv_heads) + kv_head) * 4;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// A row of up to E4M3_ROW_SLOTS · 32 elements held by a warp, element lane + 32·c in slot c of
// every lane (0 past the row's end): loaded once, with all of a lane's loads in flight together,
// for the scale search below and the codes after it.
#define E4M3_ROW_SLOTS 8
template <typename Load>
__device__ __forceinline__ void warp_row_load(float (&x)[E4M3_ROW_SLOTS], Load load, int n, int lane) {
#pragma unroll
    for (int c = 0; c < E4M3_ROW_SLOTS; c++) x[c] = lane + 32 * c < n ? load(lane + 32 * c) : 0.0f;
}

// How an fp8 row (a K or V head of one token, n <= 256 elements held as warp_row_load leaves
// them) is coded, as the CPU backend's hifc_fp8_e4m3_code_head codes it: of the scales
// top / 448 · 2^(j/8), j = 0...7 (top: the row's largest |x|), the one whose codes have the least
// squared error over the row; codes are f32_to_e4m3(x · inverse). E4M3 keeps 3 mantissa bits at
// any scale, so the error depends on where the row falls on the code grid, which the eight scales
// shift by eighths of an octave (bench/results/fp8-kv.md). Every lane gets the same scale.
// Products are rounded one by one (no FMA), as on the CPU, so both pick the same scale unless
// two scales' errors tie within the sums' rounding. The eight errors are independent until the
// pick, so their sums and the warp's shuffles overlap instead of running one scale after another
// (in a decode step, rope_qkv_write_kv_fp8's search is on the path to the attention).
// An all-zero row: 0 and 0.
struct E4M3Scale {
    float scale, inverse;
};
__device__ __forceinline__ E4M3Scale warp_e4m3_least_error_scale(const float (&x)[E4M3_ROW_SLOTS], int n, float top, int lane) {
    E4M3Scale best = {__fdiv_rn(top, 448.0f), top > 0.0f ? __fdiv_rn(448.0f, top) : 0.0f};
    if (!(top > 0.0f)) return best;
    const float octave_steps[8] = {1.0f, 1.0905077f, 1.1892071f, 1.2968396f, 1.4142135f, 1.5422108f, 1.6817929f, 1.8340081f};
    float scales[8], inverses[8], errors[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const float stepped = __fmul_rn(top, octave_steps[j]);
        scales[j] = __fdiv_rn(stepped, 448.0f);
        inverses[j] = __fdiv_rn(448.0f, stepped);
        float error = 0.0f;
#pragma unroll
        for (int c = 0; c < E4M3_ROW_SLOTS; c++) {
            if (lane + 32 * c >= n) break;
            const float a = fabsf(x[c]);
            const float miss = __fsub_rn(__fmul_rn(e4m3_rounded(__fmul_rn(a, inverses[j])), scales[j]), a);
            error = __fadd_rn(error, __fmul_rn(miss, miss));
        }
        errors[j] = error;
    }
    float least = __int_as_float(0x7f800000);
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const float error = warp_sum(errors[j]);  // the same in every lane: each step adds a pair both ways round
        if (error < least) {
            least = error;
            best = {scales[j], inverses[j]};
        }
    }
    return best;
}

// The K row of the token at `slot` (block · block_tokens + offset) in `layer` of the block-major
// KV pool ([layer][K|V][token][kv_head][head_dim] a block, blocks block_stride elements apart,
// HiFCCore.KVBlockLayout); its V row is block_tokens · token_elems elements further on. T is the
// element type: bf16_t, or fp8_t (whose elements are bytes).
template <typename T>
__device__ __forceinline__ T* kv_slot_k_row(T* pool, long slot, int layer, int block_tokens, int token_elems, long block_stride) {
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

// Every kernel's first statement (the skinny GEMM's comes after its first weight loads). The next
// kernel is let in only after this one's wait (the one-row norms below excepted): letting every
// kernel's successor in before (so that a product's first loads start while the product two kernels
// back drains) made 8B decode steps 28-30% slower on an H200 (bench/results/cuda-graphs-h200.md,
// 2026-12-05).
__device__ __forceinline__ void wait_for_previous_kernel() {
    grid_dependency_wait();
    grid_dependents_launch();
}

// A one-row norm's twin (norm_rope.cu, `_next_first`) lets the next kernel in before its own wait:
// the product after it is then scheduled while the product before the norm drains and issues its
// first weight loads then, instead of after that product has finished. Whole 8B decode steps at
// batch 1 took 1.6% less on an H100 (1B: 1.0-1.2%); at batches 8 and 16 the products after it ran
// a third slower and the steps 18% (bench/results/cuda-graphs-h200.md, 2026-12-06), so CUDAKernels
// takes it for a single row only. The split combine doing the same made batch-1 steps 13% slower.
__device__ __forceinline__ void let_next_kernel_in_then_wait() {
    grid_dependents_launch();
    grid_dependency_wait();
}

// Tensor-core and asynchronous-copy helpers (sm_80 and later: cp.async, ldmatrix, mma.sync), used
// by attention.cu, prefill_attention.cu and gemv.cu. A module that does not call them compiles
// none of them. Moving them here from those files left every module's cubin byte-identical for
// sm_80, sm_90 and sm_100 (NVRTC 13.0).

// The shared-memory address of a generic pointer, as cp.async and ldmatrix take it.
__device__ __forceinline__ unsigned int smem_addr(const void* p) { return (unsigned int)__cvta_generic_to_shared(p); }

// 16 bytes global -> shared, asynchronously; with valid false the destination is zero-filled and
// nothing is read (keys past the context must be finite: P = 0 times a NaN V would still be NaN).
__device__ __forceinline__ void cp_async16(unsigned int dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory"); }

__device__ __forceinline__ void ldmatrix_x4(unsigned int addr, unsigned int& r0, unsigned int& r1, unsigned int& r2, unsigned int& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned int addr, unsigned int& r0, unsigned int& r1, unsigned int& r2, unsigned int& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}

// c += a · b for one 16x8 fp32 tile (a: 16x16 bf16 row-major fragment in a0..a3, b: 16x8 bf16
// column-major in b0, b1).
__device__ __forceinline__ void mma_bf16(float c[4], unsigned int a0, unsigned int a1, unsigned int a2, unsigned int a3,
                                         unsigned int b0, unsigned int b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Two fp32 as bf16x2 (round to nearest even): lo in the low half.
__device__ __forceinline__ unsigned int pack_bf16x2(float lo, float hi) {
    unsigned int r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// c += a · b as mma_bf16, over f16 operands.
__device__ __forceinline__ void mma_f16(float c[4], unsigned int a0, unsigned int a1, unsigned int a2, unsigned int a3,
                                        unsigned int b0, unsigned int b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// An 8x8 matrix of 16-bit elements, one row pair a lane in the MMA accumulator layout (lane
// holds row lane / 4, columns 2·(lane % 4) and + 1), transposed in registers: the lane then holds
// the same positions of the transpose.
__device__ __forceinline__ unsigned int transpose_8x8_b16(unsigned int x) {
    unsigned int y;
    asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(y) : "r"(x));
    return y;
}

// Two fp32 as f16x2 (round to nearest even): lo in the low half.
__device__ __forceinline__ unsigned int pack_f16x2(float lo, float hi) {
    unsigned int r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// The two E4M3 codes in the low 16 bits of `pair` (element 0 in the low byte) as floats, exactly.
// sm_89 and later convert a pair in one instruction (to f16, which holds every E4M3 value); the
// decode of the attention kernels' tiles was most of their instructions without it.
__device__ __forceinline__ float2 e4m3x2_to_f32x2(unsigned int pair) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    unsigned int halves;
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(halves) : "h"((unsigned short)(pair & 0xffffu)));  // low code -> low half
    float lo, hi;
    asm("{\n\t.reg .f16 l, h;\n\tmov.b32 {l, h}, %2;\n\tcvt.f32.f16 %0, l;\n\tcvt.f32.f16 %1, h;\n\t}" : "=f"(lo), "=f"(hi) : "r"(halves));
    return make_float2(lo, hi);
#else
    return make_float2(e4m3_to_f32(pair & 0xffu), e4m3_to_f32((pair >> 8) & 0xffu));
#endif
}

// Four E4M3 codes (a little-endian word) as two f16x2 words, exactly (f16 holds every E4M3
// value): codes 0, 1 in .x, codes 2, 3 in .y, the lower code in the lower half. One instruction
// a pair from sm_89 on (the fp8 decode attention's operands).
__device__ __forceinline__ uint2 e4m3x4_to_f16x4(unsigned int codes) {
    uint2 r;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    asm("{\n\t.reg .b16 lo, hi;\n\tmov.b32 {lo, hi}, %2;\n\tcvt.rn.f16x2.e4m3x2 %0, lo;\n\tcvt.rn.f16x2.e4m3x2 %1, hi;\n\t}"
        : "=r"(r.x), "=r"(r.y) : "r"(codes));
#else
    r.x = pack_f16x2(e4m3_to_f32(codes & 0xffu), e4m3_to_f32((codes >> 8) & 0xffu));
    r.y = pack_f16x2(e4m3_to_f32((codes >> 16) & 0xffu), e4m3_to_f32(codes >> 24));
#endif
    return r;
}

// Eight codes (two little-endian words) times `scale`, as four bf16x2 words (element 0 in the low
// half of the first): the bf16 tiles the tensor-core attention kernels read.
__device__ __forceinline__ uint4 e4m3x8_to_bf16x8(uint2 codes, float scale) {
    const unsigned int w[2] = {codes.x, codes.y};
    unsigned int out[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const float2 f = e4m3x2_to_f32x2(w[j >> 1] >> ((j & 1) * 16));
        out[j] = pack_bf16x2(f.x * scale, f.y * scale);
    }
    return make_uint4(out[0], out[1], out[2], out[3]);
}

// 4 bytes global -> shared, asynchronously (zero-filled and nothing read when valid is false):
// an fp8 row's scale.
__device__ __forceinline__ void cp_async4(unsigned int dst, const void* src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" :: "r"(dst), "l"(src), "r"(valid ? 4 : 0) : "memory");
}

// Shared tiles are [rows][D] bf16 with each row's 16-byte chunks XOR-swizzled by (row & 7), so the
// eight rows one ldmatrix reads (same logical chunk) fall in eight different bank groups.
template <int D>
__device__ __forceinline__ int swz(int row, int chunk) { return row * D + ((chunk ^ (row & 7)) << 3); }


// MARK: mbarriers and bulk tensor copies (sm_90 on: the Hopper prefill kernel's pipeline)

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// mbarriers in shared memory.
__device__ __forceinline__ void mbar_init(unsigned int bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned int bar) {
    asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" :: "r"(bar) : "memory");
}
// Arrives on `bar` and adds `bytes` to the transfers its phase waits for (the bulk copies below).
__device__ __forceinline__ void mbar_expect_bytes(unsigned int bar, unsigned int bytes) {
    asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" :: "r"(bar), "r"(bytes) : "memory");
}
// A bulk tensor copy (TMA) of one box of the tensor map at `map` (global memory), at coordinates
// c0..c4 (innermost first), into shared memory at `dst`; its bytes count on mbarrier `bar`.
__device__ __forceinline__ void tma_load_5d(unsigned int dst, const void* map, unsigned int bar, int c0, int c1, int c2, int c3, int c4) {
    asm volatile(
        "cp.async.bulk.tensor.5d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5, %6}], [%7];\n"
        :: "r"(dst), "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(c4), "r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(unsigned int bar, int parity) {
    asm volatile(
        "{\n.reg .pred done;\nWAIT:\nmbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n@!done bra WAIT;\n}\n"
        :: "r"(bar), "r"(parity) : "memory");
}

// Shared-memory writes of the generic proxy (st.shared, cp.async) made visible to the async
// proxy's accesses (wgmma's reads, bulk copies' writes).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
#endif

// MARK: Thread block clusters (sm_90 on; below it these trap, and no launcher picks a kernel
// that calls them)

// Every thread of every block of the cluster arrives, then waits for all (shared-memory writes
// before it are visible to the cluster after it).
__device__ __forceinline__ void cluster_barrier() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#else
    __trap();
#endif
}

// `at` of this block's shared memory layout, as an address in block `rank`'s (sm_90 on).
__device__ __forceinline__ unsigned int cluster_address(unsigned int at, int rank) {
    unsigned int remote = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(at), "r"(rank));
#endif
    return remote;
}

// The value at shared address `at` of this block's layout in block `rank` of the cluster, for
// T = float, double or unsigned int.
template <typename T>
__device__ T cluster_load(unsigned int at, int rank);

template <>
__device__ __forceinline__ float cluster_load<float>(unsigned int at, int rank) {
    float v = 0.0f;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("ld.shared::cluster.f32 %0, [%1];\n" : "=f"(v) : "r"(cluster_address(at, rank)) : "memory");
#else
    __trap();
#endif
    return v;
}

template <>
__device__ __forceinline__ double cluster_load<double>(unsigned int at, int rank) {
    double v = 0.0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("ld.shared::cluster.f64 %0, [%1];\n" : "=d"(v) : "r"(cluster_address(at, rank)) : "memory");
#else
    __trap();
#endif
    return v;
}

template <>
__device__ __forceinline__ unsigned int cluster_load<unsigned int>(unsigned int at, int rank) {
    unsigned int v = 0u;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("ld.shared::cluster.u32 %0, [%1];\n" : "=r"(v) : "r"(cluster_address(at, rank)) : "memory");
#else
    __trap();
#endif
    return v;
}
