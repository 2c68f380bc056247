// CPUKernels: the CPU backend's inner loops and its thread pool, in C.
//
// Why C and not Swift: Swift compiles a function once, for the target the package is built for
// (baseline x86-64: SSE2), and cannot build one function for several instruction sets and pick
// one at run time. The release binary has to run on any x86-64 machine yet use AVX2 or AVX-512
// where the CPU has them. Clang can: each kernel source below is compiled three times (a
// "portable" baseline, `target("avx2,fma,f16c")` and `target("avx512f,avx512bw,avx512vl,
// avx512vnni,...")`), once per instruction set, from one text (KernelsF32.inc and the quantized
// dot products), and `__builtin_cpu_supports` picks the best set once at start-up. The f32
// kernels use Clang's generic vector types, so the same text becomes SSE, AVX2 or AVX-512 code
// by the vector width it is compiled with; the int8 dot products of quantized weights use each
// set's own intrinsics (AVX2 `maddubs`, AVX-512 VNNI `dpbusd`) because no generic form exists.
//
// Threads: one process-wide pool of workers (`hifc_pool_*`) that the calling thread joins. Ops
// are short (microseconds at decode), so workers spin briefly for the next op before sleeping:
// a fork-join of a few hundred nanoseconds instead of the tens of microseconds a wake-up costs.
// Work is split into more chunks than threads and taken from an atomic counter, so a thread that
// the OS preempts delays only its current chunk.
//
// Everything here is called from Swift (Sources/Backend/CPU), which checks shapes first: the C
// functions trust their arguments.
#ifndef HIFC_CPU_KERNELS_H
#define HIFC_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: Instruction sets

/// The instruction set a kernel was compiled for, best last.
typedef enum {
    HIFC_ISA_PORTABLE = 0,  ///< baseline x86-64 (SSE2) or any other CPU: plain C.
    HIFC_ISA_AVX2 = 1,      ///< AVX2 + FMA + F16C (Haswell, Zen 1 and later).
    HIFC_ISA_AVX512 = 2,    ///< AVX-512 F/BW/VL/VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later).
    HIFC_ISA_AMX = 3,       ///< AVX-512 plus AMX-TILE/AMX-INT8 tiles for prefill products (Sapphire Rapids and later).
} hifc_isa;

/// The best instruction set this CPU supports.
hifc_isa hifc_isa_detected(void);
/// The set the kernels use now (the detected one unless lowered by `hifc_isa_select`).
hifc_isa hifc_isa_active(void);
/// Uses `isa`, or the detected set if `isa` is better than the CPU supports; returns the set in
/// use. For tests (every path can be checked on one machine) and `HIFC_CPU_ISA`.
hifc_isa hifc_isa_select(hifc_isa isa);
/// "portable", "avx2", "avx512" or "amx".
const char *hifc_isa_name(hifc_isa isa);

// MARK: Thread pool

/// Physical cores this process may run on (its CPU affinity, SMT siblings counted once): the
/// default thread count.
int hifc_physical_cores(void);

/// A pool of worker threads; the thread that calls `hifc_parallel` works as one of them.
typedef struct hifc_pool hifc_pool;

/// A pool of `threads` threads in all (`threads - 1` workers are started). `spin_microseconds`
/// is how long an idle worker polls for the next job before it sleeps.
hifc_pool *hifc_pool_create(int threads, int spin_microseconds);
/// Stops and joins the workers and frees the pool.
void hifc_pool_destroy(hifc_pool *pool);
/// Threads in the pool, the caller included.
int hifc_pool_threads(const hifc_pool *pool);

/// A job's body: does chunk `chunk` of `chunks`; `thread` (below the pool's thread count) names
/// per-thread scratch memory.
typedef void (*hifc_chunk_fn)(void *context, long chunk, int thread);

/// Runs `body(context, c, thread)` for every chunk `c` in `0..<chunks` on the pool and returns
/// when all are done. With a null pool, or while the pool runs another job (a second caller, or
/// a body that calls this), the chunks run on the calling thread.
void hifc_parallel(hifc_pool *pool, long chunks, hifc_chunk_fn body, void *context);

/// Wall time of the parallel calls of one body since profiling started (`hifc bench model --profile`).
typedef struct {
    hifc_chunk_fn body;  ///< the job's body; `hifc_chunk_fn_name` names the kernels' own
    long calls;          ///< `hifc_parallel` calls
    long pooled_calls;   ///< ... of which the pool ran (the others ran inline on the caller)
    long chunks;         ///< chunks over all calls
    long nanoseconds;    ///< wall time from each call's entry to its return, summed
    long gap_nanoseconds;  ///< the caller's time before each call since its previous call returned, summed
} hifc_region_profile;

/// Most distinct bodies a profile tells apart (later ones are not counted).
#define HIFC_PROFILE_BODIES 64

/// Clears the pool's profile and starts counting every `hifc_parallel` call on it.
void hifc_pool_profile_start(hifc_pool *pool);
/// Stops counting and writes up to `capacity` bodies' figures to `out`; returns how many.
int hifc_pool_profile_stop(hifc_pool *pool, hifc_region_profile *out, int capacity);
/// The op a body of these kernels does ("quantized product", "attention", ...), or NULL for a
/// body from elsewhere.
const char *hifc_chunk_fn_name(hifc_chunk_fn body);

// MARK: f32 ops (all parallel over `pool`, which may be null)

/// `y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w` for each of `rows` rows of `width`.
void hifc_rms_norm(hifc_pool *pool, const float *x, const float *w, float *y, long rows, long width, float eps);
/// `sum = a + b`, then `normed = rms_norm(sum)`: the residual add fused with the next norm.
void hifc_add_rms_norm(
    hifc_pool *pool, const float *a, const float *b, const float *w, float *sum, float *normed, long rows, long width,
    float eps);
/// `out = a + b` over `n` floats.
void hifc_add(hifc_pool *pool, const float *a, const float *b, float *out, long n);
/// `out[r][i] = silu(gate_up[r][i]) * gate_up[r][inter + i]`.
void hifc_silu_mul(hifc_pool *pool, const float *gate_up, float *out, long rows, long inter);
/// `out[r][i] = gelu_tanh(gate_up[r][i]) * gate_up[r][inter + i]` (PyTorch's tanh approximation).
void hifc_gelu_tanh_mul(hifc_pool *pool, const float *gate_up, float *out, long rows, long inter);
/// `out[i] = e^((x[i] - shift) · scale)` for `n` values (`out` may be null), on the calling
/// thread; returns their sum (in double, from float partials of at most 512 values). Within 2 ulp of `expf` where the
/// exponent is at least -87.3, 0 below: the sampler's weights and the log probabilities' sum,
/// `shift` the largest logit and `scale` 1 / temperature.
double hifc_exp_scaled(const float *x, float *out, long n, float shift, float scale);
/// Index of the largest value of each row (the first on ties) into `out`.
void hifc_argmax_rows(hifc_pool *pool, const float *x, long rows, long columns, int64_t *out);
/// `c[m×n] = a[m×k] · b[n×k]ᵀ` (+ `bias[n]` when not null), all row-major.
void hifc_gemm_f32(
    hifc_pool *pool, const float *a, const float *b, const float *bias, float *c, long m, long n, long k);
/// `c[r] += bias` for each of `m` rows of `n` (after a BLAS product).
void hifc_add_bias(float *c, const float *bias, long m, long n);

// MARK: Scratch memory

/// The slots of `hifc_thread_scratch`: one per user, so that one op's scratch is never another's
/// that is still in use.
enum {
    HIFC_SCRATCH_OP = 0,         ///< an op's own scratch (the Swift side's, for the calls below)
    HIFC_SCRATCH_ATTENTION = 1,  ///< attention's work list, parts and per-thread buffers
    HIFC_SCRATCH_ROTARY = 2,     ///< rotated key rows of the KV write
    HIFC_SCRATCH_SLOTS = 3,
};
/// At least `bytes` of 64-byte aligned memory that the calling thread keeps for `slot` and reuses
/// on its next call for the same slot (the contents are then undefined); NULL when out of memory
/// (the slot then keeps its buffer). Freed when the thread exits.
void *hifc_thread_scratch(int slot, size_t bytes);

// MARK: Paged attention

/// The element type of a KV pool (`KVDType`): f32, FP8 E4M3 with one f32 scale per token and
/// KV head (an element stands for `scale · e4m3`), or bf16 (rounded to nearest even; the CUDA
/// backend's own dtype, kept here to measure fp8 against it).
typedef enum {
    HIFC_KV_F32 = 0,
    HIFC_KV_FP8_E4M3 = 1,
    HIFC_KV_BF16 = 2,
} hifc_kv_dtype;

/// Where one layer's K and V live in a block-major pool (`KVBlockLayout`):
/// `[layer][K|V][token][kvHead][headDim]` per block, blocks `block_stride` bytes apart; an fp8
/// block keeps its scales after its elements, `[layer][K|V][token][kvHead]` f32.
typedef struct {
    uint8_t *base;             ///< block 0
    long block_stride;         ///< bytes from one block to the next
    long key_offset;           ///< bytes from a block's start to token 0's K of the layer
    long value_offset;         ///< ... and to its V
    long key_scale_offset;     ///< fp8: bytes from a block's start to token 0's K scale of KV head 0
    long value_scale_offset;   ///< ... and to its V scale
    int block_tokens;          ///< tokens per block
    int kv_heads;              ///< KV heads
    int head_dim;              ///< elements per head
    int dtype;                 ///< a hifc_kv_dtype
} hifc_kv_layer;

/// `x` as FP8 E4M3, rounded to nearest even, saturated to ±448 (NaN becomes 0x7f).
uint8_t hifc_fp8_e4m3_from_float(float x);
/// The value of the E4M3 byte `bits` (0x7f and 0xff, E4M3's NaNs, read as NaN).
float hifc_fp8_e4m3_to_float(uint8_t bits);
/// Codes one head's `d` floats as E4M3 into `codes` and returns its scale: of `max |x| / 448 ·
/// 2^(j/8)`, j = 0...7, the one whose codes have the least squared error (0 for an all-zero head).
float hifc_fp8_e4m3_code_head(const float *x, uint8_t *codes, int d);
/// Writes one token's K and V (`kv_heads·head_dim` floats each) into the pool at `slot`
/// (block·blockTokens + offset), quantizing them (with their scales) for an fp8 pool.
void hifc_kv_store(const hifc_kv_layer *kv, long slot, const float *k, const float *v);

/// One sequence of a step (as `StepSequence`).
typedef struct {
    int32_t query_start;     ///< first row of its new tokens
    int32_t query_length;    ///< new tokens
    int32_t context_length;  ///< tokens after the step, cached plus new
    const int32_t *blocks;   ///< block table
} hifc_sequence;

/// The rotary table of a step: for row `r`, `cos(position[r]·f_i)` for the `head_dim/2`
/// inverse frequencies, then the sines, into `table[r·head_dim ...]` (angles in double).
void hifc_rope_table(const int32_t *positions, long rows, const float *inverse_frequencies, int head_dim, float *table);

/// Rotates q and k of each row of `qkv` (`[rows, (heads + 2·kvHeads)·headDim]`) by its row of
/// `table` (HF "rotate half": pairs `(i, i + headDim/2)`), writes the rotated q to `q_out`
/// (`[rows, heads·headDim]`) and k and v into the pool at `slots[r]` (block·blockTokens + offset).
void hifc_rope_store_kv(
    hifc_pool *pool, const float *qkv, long rows, int heads, const float *table, const int64_t *slots, float *q_out,
    hifc_kv_layer kv);

/// Causal attention of `q` (`[tokens, heads·headDim]`) over each sequence's K/V: query row `i`
/// of a sequence, at position `p = context - query_length + i`, sees positions `0 ... p`, or with
/// a sliding `window` (> 0; 0: none) only `p - window + 1 ... p`; head `h` reads KV head
/// `h / (heads / kv_heads)`. Writes `out` (`[tokens, heads·headDim]`) and returns 0, or, when the
/// calling thread's scratch could not grow (out of memory), returns the bytes it needed and writes
/// nothing.
size_t hifc_paged_attention(
    hifc_pool *pool, const float *q, float *out, int heads, float scale, const hifc_sequence *sequences,
    int sequence_count, int window, hifc_kv_layer kv);

// MARK: Quantized weights (GGML block formats)

/// GGML's type numbers for the block formats these kernels read.
typedef enum {
    HIFC_QUANT_Q4_0 = 2,  ///< 32 weights: f16 scale d, 16 bytes of nibbles; w = d·(q − 8)
    HIFC_QUANT_Q4_1 = 3,  ///< 32 weights: f16 d, f16 min m, 16 bytes of nibbles; w = d·q + m
    HIFC_QUANT_Q5_0 = 6,  ///< 32 weights: f16 d, 4 bytes of fifth bits, 16 bytes of nibbles; w = d·(q − 16)
    HIFC_QUANT_Q5_1 = 7,  ///< 32 weights: f16 d, f16 min m, 4 bytes of fifth bits, 16 bytes of nibbles; w = d·q + m
    HIFC_QUANT_Q8_0 = 8,  ///< 32 weights: f16 d, 32 int8; w = d·q
    HIFC_QUANT_Q4_K = 12, ///< 256 weights: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
    HIFC_QUANT_Q5_K = 13, ///< Q4_K's layout with 32 bytes of fifth bits between the scales and the nibbles
    HIFC_QUANT_Q6_K = 14, ///< 256 weights: 128 bytes low 4 bits, 64 bytes high 2 bits, 16 int8 scales, f16 d
    // hifc's own layouts, numbered 100 + the file format's: its rows interleaved for the kernels
    // eight at a time, block by block (`hifc_quant_interleave`).
    HIFC_QUANT_Q4_0_X8 = 102,
    HIFC_QUANT_Q4_1_X8 = 103,
    HIFC_QUANT_Q5_0_X8 = 106,
    HIFC_QUANT_Q5_1_X8 = 107,
    HIFC_QUANT_Q8_0_X8 = 108,
    HIFC_QUANT_Q4_K_X8 = 112,
    HIFC_QUANT_Q5_K_X8 = 113,
    HIFC_QUANT_Q6_K_X8 = 114,
} hifc_quant_type;

/// The interleaved layout the kernels multiply `type` fastest in (HIFC_QUANT_Q4_K_X8 for Q4_K, ...),
/// or 0 where `type` has none. (The AMX path packs its tiles from the 32-weight formats'
/// interleaved blocks as from the file's rows.) An interleaved block holds one block of each of eight rows in the
/// same bytes as those eight blocks, laid out so that each 256-bit vector holds four weights of
/// each row and the products come out one row per lane: no sums across lanes, one scale multiply
/// per sub-block for eight rows (bench/results/cpu-vs-llamacpp.md, 2026-12-05).
int hifc_quant_interleaved_type(int type);
/// Writes `rows` (a multiple of 8) rows of `k` weights in `type`'s blocks as
/// `hifc_quant_interleaved_type(type)` blocks into `out` (the same number of bytes), spread over
/// `pool` (may be null): rows `8g ..< 8g + 8` start where row `8g` started, so a product over rows
/// `8g ...` still starts `8g` rows' bytes in.
void hifc_quant_interleave(hifc_pool *pool, int type, const void *w, long rows, long k, void *out);

/// Weights per block of `type` (32 or 256); 0 for a type not listed.
int hifc_quant_block_weights(int type);
/// Bytes per block of `type` (for an interleaved type, per row: an eighth of its block); 0 for a
/// type not listed.
int hifc_quant_block_bytes(int type);
/// Writes the `count` weights (a multiple of the block size) of `blocks` as f32: the reference
/// the kernels are checked against, and the "dequantize at load" path.
void hifc_dequantize(int type, const void *blocks, float *out, long count);
/// Bytes of scratch `hifc_gemm_quant` needs for `m` activation rows of `k` features.
size_t hifc_gemm_quant_scratch(int type, long m, long k);
/// `c[m×n] = a[m×k] · wᵀ` (+ `bias[n]`) for weights `w` of `n` rows of `k` (a multiple of the
/// block size) in `type`'s blocks, row after row (an interleaved type: `n` a multiple of 8). The activations are first quantized to 8 bits
/// per block of 32 (or 256 for the K formats) into `scratch`, as llama.cpp does, so the products
/// are integer dot products.
void hifc_gemm_quant(
    hifc_pool *pool, int type, const float *a, const void *w, const float *bias, float *c, long m, long n, long k,
    void *scratch);

/// Rows up to which `hifc_gated_mlp_quant` and `hifc_project_rope_store_kv` run two ops as one
/// parallel call (decode steps and small batches); more rows take the ops one after another (from
/// HIFC_AMX_MIN_ROWS rows, the products on AMX tiles where the CPU has them).
#define HIFC_ONE_CALL_MOST_ROWS 8
/// Bytes of scratch `hifc_gated_mlp_quant` needs.
size_t hifc_gated_mlp_quant_scratch(int gate_up_type, int down_type, long m, long inter, long hidden);
/// Whether `hifc_gated_mlp_quant` takes these shapes: at most HIFC_ONE_CALL_MOST_ROWS rows, and
/// `inter` a multiple of the block that `down_type`'s activations are quantized in (32 or 256).
int hifc_gated_mlp_quant_fits(int down_type, long m, long inter);
/// A gated MLP over quantized weights in one parallel call: `out[m×hidden] =
/// silu(x·gateᵀ) * (x·upᵀ) · downᵀ`, with `gate_up` the `[2·inter, hidden]` rows of gate then up
/// in `gate_up_type`'s blocks and `down` `[hidden, inter]` in `down_type`'s. The same values as
/// `hifc_gemm_quant`, `hifc_silu_mul`, `hifc_gemm_quant` in turn (bit for bit), but each thread
/// applies the activation to the columns it computed and quantizes them for the down product
/// itself, and the down product's chunks start when the first product's are done, in the same
/// call: no serial pass on the caller and one fork-join fewer. Needs `hifc_gated_mlp_quant_fits`.
void hifc_gated_mlp_quant(
    hifc_pool *pool, int gate_up_type, const void *gate_up, int down_type, const void *down, const float *x, float *out, long m,
    long inter, long hidden, void *scratch);

/// Bytes of scratch `hifc_project_rope_store_kv` needs, `width` being the q|k|v row's and
/// `kv_width` a key row's floats, for a pool of `threads`.
size_t hifc_project_rope_store_kv_scratch(int type, long rows, long hidden, long width, long kv_width, int threads);
/// `hifc_gemm_quant` of `x` (`[rows, hidden]`, at most HIFC_ONE_CALL_MOST_ROWS rows) by the
/// quantized q|k|v weight `w` (+ `bias`), then `hifc_rope_store_kv` of its rows, in one parallel
/// call: the same values, bit for bit, with one fork-join fewer and no serial pass between them.
void hifc_project_rope_store_kv(
    hifc_pool *pool, int type, const float *x, const void *w, const float *bias, long rows, long hidden, int heads, const float *table,
    const int64_t *slots, float *q_out, hifc_kv_layer kv, void *scratch);

// MARK: Intel AMX tiles (the prefill's quantized products)

/// What the AMX path needs, as bits of `hifc_amx_status`: the CPU's AMX-TILE and AMX-INT8 (CPUID
/// leaf 7, EDX bits 24 and 25), the OS saving the tile state (XCR0 bits 17 and 18), and Linux's
/// permission for this process (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`).
typedef enum {
    HIFC_AMX_CPU_TILE = 1,
    HIFC_AMX_CPU_INT8 = 2,
    HIFC_AMX_OS_STATE = 4,
    HIFC_AMX_PERMITTED = 8,
    HIFC_AMX_READY = 15,  ///< all of the above: `hifc_isa_detected` reports HIFC_ISA_AMX
} hifc_amx_status_bits;

/// The HIFC_AMX_* bits this process has (asks Linux for the permission once, on first call).
int hifc_amx_status(void);
/// Quantized products that have run on AMX tiles in this process (for checks that it was used).
long hifc_amx_products(void);
/// Activation rows from which `hifc_gemm_quant` uses the tiles (where AMX is active); fewer
/// rows (decode) stay on the AVX-512 kernels.
#define HIFC_AMX_MIN_ROWS 16
/// Multiply-adds per thread below which the tiles lose to AVX-512 (each thread's AMX start-up
/// then outweighs its work): on the GPU host's Xeon (2026-12-02) 16 threads lost with 0.13 M and
/// 0.33 M per thread and won with 3.5 M; one thread won from 2 M.
#define HIFC_AMX_MIN_MACS_PER_THREAD 1048576L  // 2^20
/// Whether `hifc_gemm_quant` of `m × k` activations and `n` weight rows of `type` on `threads`
/// threads runs on AMX tiles with the kernels active now.
int hifc_gemm_quant_uses_amx(int type, long m, long n, long k, int threads);

/// One 32-value block of 16 rows as an AMX tile operand with its per-row scale and offset (see
/// AMXLayout.h): weights as the A tile (row j: the 32 codes of weight row j), quantized
/// activations as the B tile (row r: values 4r ..< 4r + 4 of each of the 16 activation rows).
typedef struct {
    int8_t qs[512];
    float scale[16];
    float offset[16];
} hifc_amx_block;

// The AMX path's packing and epilogue, for tests on machines without AMX: the tile kernel runs
// the same code around its `tdpbssd`.

/// Block `block` of `nr` (≤ 16) weight rows of `type` (a 32-weight format, or its interleaved
/// layout with `nr` a multiple of 8), `row_bytes` apart.
void hifc_amx_pack_weights(int type, const void *w, long row_bytes, int nr, long block, hifc_amx_block *out);
/// Quantizes `mr` (≤ 16) rows of `k` floats as the portable kernels do and packs every block:
/// `out[k / 32]`.
void hifc_amx_pack_activations(const float *a, int mr, long k, hifc_amx_block *out);
/// Adds one block's tile sums `c[16·16]` (row j: weight row j; column i: activation row i) to
/// `acc[16·16]` (same order), scaled.
void hifc_amx_accumulate(const int32_t *c, const hifc_amx_block *w, const hifc_amx_block *a, float *acc);
/// Writes `acc` (as `hifc_amx_accumulate` leaves it) to `out[i·ldc + j]`, `i < mr`, `j < nr`.
void hifc_amx_store(const float *acc, int mr, int nr, float *out, long ldc);

#ifdef __cplusplus
}
#endif

#endif
