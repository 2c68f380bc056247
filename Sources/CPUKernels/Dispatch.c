// Picks the kernel table for this CPU and splits each op into chunks for the pool.
//
// Chunk sizes: every chunk carries at least a few microseconds of work (a fork-join with
// spinning workers costs well under one), and an op gets several chunks per thread where it has
// the work, so that threads finish together even when one of them is slowed down.
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "AMXLayout.h"
#include "CPURelax.h"
#include "KernelTable.h"

// MARK: Instruction set

static _Atomic(const hifc_kernel_table *) active_table = NULL;
static _Atomic int active_isa = -1;

hifc_isa hifc_isa_detected(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return HIFC_ISA_PORTABLE;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!(fma && osxsave && avx && f16c)) return HIFC_ISA_PORTABLE;
    unsigned lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0x6) != 0x6) return HIFC_ISA_PORTABLE;  // the OS saves SSE and AVX state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return HIFC_ISA_PORTABLE;
    const int avx2 = (b >> 5) & 1;
    if (!avx2) return HIFC_ISA_PORTABLE;
    const int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1) && ((c >> 11) & 1);
    if (avx512 && (lo & 0xE0) == 0xE0) {  // ... and the AVX-512 state
        return (hifc_amx_status() & HIFC_AMX_READY) == HIFC_AMX_READY ? HIFC_ISA_AMX : HIFC_ISA_AVX512;
    }
    return HIFC_ISA_AVX2;
#else
    return HIFC_ISA_PORTABLE;
#endif
}

static const hifc_kernel_table *table_for(hifc_isa isa) {
#if defined(__x86_64__)
    if (isa == HIFC_ISA_AMX) return &hifc_kernels_amx;
    if (isa == HIFC_ISA_AVX512) return &hifc_kernels_avx512;
    if (isa == HIFC_ISA_AVX2) return &hifc_kernels_avx2;
#endif
    (void)isa;
    return &hifc_kernels_portable;
}

hifc_isa hifc_isa_select(hifc_isa isa) {
    hifc_isa detected = hifc_isa_detected();
    if (isa > detected || isa < HIFC_ISA_PORTABLE) isa = detected;
    atomic_store(&active_table, table_for(isa));
    atomic_store(&active_isa, (int)isa);
    return isa;
}

hifc_isa hifc_isa_active(void) {
    int isa = atomic_load(&active_isa);
    return isa < 0 ? hifc_isa_select(hifc_isa_detected()) : (hifc_isa)isa;
}

const char *hifc_isa_name(hifc_isa isa) { return table_for(isa)->name; }

static const hifc_kernel_table *kernels(void) {
    const hifc_kernel_table *t = atomic_load_explicit(&active_table, memory_order_relaxed);
    if (!t) {
        hifc_isa_active();
        t = atomic_load(&active_table);
    }
    return t;
}

// MARK: Work split

static long ceil_div(long a, long b) { return (a + b - 1) / b; }

/// How many chunks `units` units of work become: at most `per_thread` per thread, and none
/// below `min_units`.
static long chunk_count(hifc_pool *pool, long units, long min_units, int per_thread) {
    if (units <= 0) return 0;
    long most = ceil_div(units, min_units > 0 ? min_units : 1);
    long wanted = (long)hifc_pool_threads(pool) * per_thread;
    return most < wanted ? most : wanted;
}

/// Elementwise work worth one chunk: below this a fork-join costs more than it saves.
#define ELEMENTS_PER_CHUNK 8192
/// The same for ops that cost several times an add an element: quantizing to 8 bits (a block's
/// maximum, rounding, packing), the rotation and KV store; a gated activation's exponentials take
/// twice this (a decode row of 1536 stays on the caller). With 8 rows a decode step's
/// quantizations ran on the caller alone: 13% of the step on 16 cores (`hifc bench model --profile`).
#define COSTLY_ELEMENTS_PER_CHUNK 1024

// MARK: Row ops

typedef struct {
    const hifc_kernel_table *k;
    const float *x, *y, *w;
    float *sum, *out;
    long rows, width, chunks;
    float eps;
    int64_t *indices;
    void (*activation_mul)(const float *gate, const float *up, float *out, long n);  ///< of `k`
} rows_job;

static void rms_norm_chunk(void *context, long chunk, int thread) {
    (void)thread;
    rows_job *j = context;
    for (long r = j->rows * chunk / j->chunks; r < j->rows * (chunk + 1) / j->chunks; r++) {
        if (j->sum) {
            j->k->add_rms_norm_row(j->x + r * j->width, j->y + r * j->width, j->w, j->sum + r * j->width, j->out + r * j->width, j->width, j->eps);
        } else {
            j->k->rms_norm_row(j->x + r * j->width, j->w, j->out + r * j->width, j->width, j->eps);
        }
    }
}

void hifc_rms_norm(hifc_pool *pool, const float *x, const float *w, float *y, long rows, long width, float eps) {
    rows_job j = {.k = kernels(), .x = x, .w = w, .out = y, .rows = rows, .width = width, .eps = eps};
    j.chunks = chunk_count(pool, rows, ceil_div(ELEMENTS_PER_CHUNK, width), 2);
    hifc_parallel(pool, j.chunks, rms_norm_chunk, &j);
}

void hifc_add_rms_norm(
    hifc_pool *pool, const float *a, const float *b, const float *w, float *sum, float *normed, long rows, long width, float eps) {
    rows_job j = {.k = kernels(), .x = a, .y = b, .w = w, .sum = sum, .out = normed, .rows = rows, .width = width, .eps = eps};
    j.chunks = chunk_count(pool, rows, ceil_div(ELEMENTS_PER_CHUNK, width), 2);
    hifc_parallel(pool, j.chunks, rms_norm_chunk, &j);
}

static void add_chunk(void *context, long chunk, int thread) {
    (void)thread;
    rows_job *j = context;
    long lo = j->width * chunk / j->chunks, hi = j->width * (chunk + 1) / j->chunks;
    j->k->add(j->x + lo, j->y + lo, j->out + lo, hi - lo);
}

void hifc_add(hifc_pool *pool, const float *a, const float *b, float *out, long n) {
    rows_job j = {.k = kernels(), .x = a, .y = b, .out = out, .width = n};
    j.chunks = chunk_count(pool, n, ELEMENTS_PER_CHUNK, 2);
    hifc_parallel(pool, j.chunks, add_chunk, &j);
}

static void activation_chunk(void *context, long chunk, int thread) {
    (void)thread;
    rows_job *j = context;
    const long inter = j->width, total = j->rows * inter;
    long i = total * chunk / j->chunks, end = total * (chunk + 1) / j->chunks;
    while (i < end) {
        long r = i / inter, c = i % inter;
        long n = inter - c < end - i ? inter - c : end - i;
        j->activation_mul(j->x + r * 2 * inter + c, j->x + r * 2 * inter + inter + c, j->out + i, n);
        i += n;
    }
}

static void activation_mul(
    hifc_pool *pool, void (*op)(const float *, const float *, float *, long), const float *gate_up, float *out, long rows, long inter) {
    rows_job j = {.k = kernels(), .x = gate_up, .out = out, .rows = rows, .width = inter, .activation_mul = op};
    j.chunks = chunk_count(pool, rows * inter, 2 * COSTLY_ELEMENTS_PER_CHUNK, 2);
    hifc_parallel(pool, j.chunks, activation_chunk, &j);
}

void hifc_silu_mul(hifc_pool *pool, const float *gate_up, float *out, long rows, long inter) {
    activation_mul(pool, kernels()->silu_mul, gate_up, out, rows, inter);
}

void hifc_gelu_tanh_mul(hifc_pool *pool, const float *gate_up, float *out, long rows, long inter) {
    activation_mul(pool, kernels()->gelu_tanh_mul, gate_up, out, rows, inter);
}

typedef struct {
    const hifc_kernel_table *k;
    const float *x;
    long columns, pieces;
    float *best;
    long *where;
} argmax_job;

static void argmax_chunk(void *context, long chunk, int thread) {
    (void)thread;
    argmax_job *j = context;
    long row = chunk / j->pieces, piece = chunk % j->pieces;
    long lo = j->columns * piece / j->pieces, hi = j->columns * (piece + 1) / j->pieces;
    const float *x = j->x + row * j->columns;
    long at = lo + j->k->argmax(x + lo, hi - lo);
    j->where[chunk] = at;
    j->best[chunk] = x[at];
}

double hifc_exp_scaled(const float *x, float *out, long n, float shift, float scale) {
    return kernels()->exp_scaled(x, out, n, shift, scale);
}

void hifc_argmax_rows(hifc_pool *pool, const float *x, long rows, long columns, int64_t *out) {
    argmax_job j = {.k = kernels(), .x = x, .columns = columns};
    // Pieces of at least 2,048 logits, one a thread: the logits were just written by every thread,
    // and SmolLM2's 49,152 in two pieces of 32,768 or fewer took 20-22 us on 16 cores, in 16
    // pieces 9 us (cpu-vs-llamacpp.md).
    j.pieces = chunk_count(pool, columns, 2048, 1);
    if (j.pieces < 1) j.pieces = 1;
    // A decode step's pieces fit on the stack; more are allocated, and if that fails, each row is
    // one piece, whose maximum the pool's single chunk finds without either.
    enum { STACK_PIECES = 512 };
    float best[STACK_PIECES];
    long where[STACK_PIECES];
    j.best = best;
    j.where = where;
    if (rows * j.pieces > STACK_PIECES) {
        j.best = malloc(sizeof(float) * (size_t)(rows * j.pieces));
        j.where = malloc(sizeof(long) * (size_t)(rows * j.pieces));
        if (!j.best || !j.where) {
            free(j.best);
            free(j.where);
            for (long r = 0; r < rows; r++) out[r] = j.k->argmax(x + r * columns, columns);
            return;
        }
    }
    hifc_parallel(pool, rows * j.pieces, argmax_chunk, &j);
    for (long r = 0; r < rows; r++) {
        long at = r * j.pieces;
        for (long p = 1; p < j.pieces; p++) {
            // The earlier piece wins ties; a NaN maximum (a piece of NaNs) never wins.
            if (j.best[r * j.pieces + p] > j.best[at] || j.best[at] != j.best[at]) at = r * j.pieces + p;
        }
        out[r] = j.where[at];
    }
    if (j.best != best) {
        free(j.best);
        free(j.where);
    }
}

// MARK: f32 GEMM

typedef struct {
    const hifc_kernel_table *k;
    const float *a, *b, *bias;
    float *c;
    long m, n, k_dim, column_chunks, row_blocks, rows_per_block;
} gemm_job;

static void gemm_chunk(void *context, long chunk, int thread) {
    (void)thread;
    gemm_job *j = context;
    long column_chunk = chunk % j->column_chunks, block = chunk / j->column_chunks;
    long groups = ceil_div(j->n, 4);
    long n0 = 4 * (groups * column_chunk / j->column_chunks), n1 = 4 * (groups * (column_chunk + 1) / j->column_chunks);
    if (n1 > j->n) n1 = j->n;
    long r0 = block * j->rows_per_block, r1 = r0 + j->rows_per_block < j->m ? r0 + j->rows_per_block : j->m;
    j->k->gemm_columns(j->a + r0 * j->k_dim, j->b, j->c + r0 * j->n, r1 - r0, j->n, j->k_dim, n0, n1);
    if (j->bias) {
        for (long r = r0; r < r1; r++)
            for (long col = n0; col < n1; col++) j->c[r * j->n + col] += j->bias[col];
    }
}

/// Rows of the activations per block: enough to reuse each loaded weight tile many times, few
/// enough that a block of activations stays in the core's L2 cache.
static long rows_per_block(long k, long bytes_per_feature) {
    long rows = (256 * 1024) / (k * bytes_per_feature + 1);
    return rows < 16 ? 16 : rows;
}

void hifc_gemm_f32(hifc_pool *pool, const float *a, const float *b, const float *bias, float *c, long m, long n, long k) {
    gemm_job j = {.k = kernels(), .a = a, .b = b, .bias = bias, .c = c, .m = m, .n = n, .k_dim = k};
    j.rows_per_block = rows_per_block(k, 4);
    j.row_blocks = ceil_div(m, j.rows_per_block);
    long macs_per_group = 4 * k * (m < j.rows_per_block ? m : j.rows_per_block);
    j.column_chunks = chunk_count(pool, ceil_div(n, 4), ceil_div(32768, macs_per_group), 4);
    hifc_parallel(pool, j.column_chunks * j.row_blocks, gemm_chunk, &j);
}

void hifc_add_bias(float *c, const float *bias, long m, long n) {
    for (long r = 0; r < m; r++) kernels()->add(c + r * n, bias, c + r * n, n);
}

// MARK: Quantized GEMM

typedef struct {
    const hifc_kernel_table *k;
    int type;
    const float *a;
    const uint8_t *w;
    const float *bias;
    float *c;
    uint8_t *quantized;
    long m, n, k_dim, row_bytes, act_bytes, column_chunks, rows_per_block, chunks;
} quant_job;

static void quantize_chunk(void *context, long chunk, int thread) {
    (void)thread;
    quant_job *j = context;
    for (long r = j->m * chunk / j->chunks; r < j->m * (chunk + 1) / j->chunks; r++) {
        if (quant_is_k(j->type)) {
            j->k->quantize_q8k(j->a + r * j->k_dim, (hifc_block_q8k *)(j->quantized + r * j->act_bytes), j->k_dim);
        } else {
            j->k->quantize_q8(j->a + r * j->k_dim, (hifc_block_q8 *)(j->quantized + r * j->act_bytes), j->k_dim);
        }
    }
}

/// The tile the kernels take `type` in: activation rows, and weight rows (the interleaved types'
/// come in eights).
static int quant_rows_per_tile(const hifc_kernel_table *k, int type) { return quant_is_x8(type) ? k->x8_tile_rows : k->quant_tile_rows; }
static int quant_columns_per_tile(const hifc_kernel_table *k, int type) { return quant_is_x8(type) ? 8 : k->quant_tile_columns; }

static void quant_chunk(void *context, long chunk, int thread) {
    (void)thread;
    quant_job *j = context;
    const int tr = quant_rows_per_tile(j->k, j->type), tc = quant_columns_per_tile(j->k, j->type);
    long column_chunk = chunk % j->column_chunks, block = chunk / j->column_chunks;
    long groups = ceil_div(j->n, tc);
    long n0 = tc * (groups * column_chunk / j->column_chunks), n1 = tc * (groups * (column_chunk + 1) / j->column_chunks);
    if (n1 > j->n) n1 = j->n;
    long r0 = block * j->rows_per_block, r1 = r0 + j->rows_per_block < j->m ? r0 + j->rows_per_block : j->m;
    for (long col = n0; col < n1; col += tc) {
        int nr = (int)(n1 - col < tc ? n1 - col : tc);
        for (long r = r0; r < r1; r += tr) {
            int mr = (int)(r1 - r < tr ? r1 - r : tr);
            j->k->gemm_quant_tile(
                j->type, j->w + col * j->row_bytes, j->row_bytes, nr, j->quantized + r * j->act_bytes, j->act_bytes, mr, j->k_dim,
                j->c + r * j->n + col, j->n);
        }
        if (j->bias) {
            for (long r = r0; r < r1; r++)
                for (long x = col; x < col + nr; x++) j->c[r * j->n + x] += j->bias[x];
        }
    }
}

// MARK: Quantized GEMM on AMX tiles

/// Packed activation tiles (16 rows each) a block of rows holds at most: enough rows that each
/// weight panel, packed once per block, serves many tiles; few enough that the block's packed
/// activations (640 bytes per 16 rows and 32 features) stay in the core's L2 cache.
static long amx_tiles_per_block(long blocks) {
    long tiles = (512 * 1024) / (blocks * (long)sizeof(hifc_amx_block));
    return tiles < 1 ? 1 : tiles;
}

typedef struct {
    quant_job *q;
    hifc_amx_block *activations;  // [tiles][blocks]
    hifc_amx_block *panels;       // [threads][blocks]: each thread's packed weight rows
    long blocks, tiles, tiles_per_block, column_chunks, chunks;
} amx_job;

static void amx_pack_chunk(void *context, long chunk, int thread) {
    (void)thread;
    amx_job *j = context;
    const quant_job *q = j->q;
    for (long t = j->tiles * chunk / j->chunks; t < j->tiles * (chunk + 1) / j->chunks; t++) {
        int mr = q->m - 16 * t < 16 ? (int)(q->m - 16 * t) : 16;
        q->k->amx_pack_activations(q->quantized + 16 * t * q->act_bytes, q->act_bytes, mr, j->blocks, j->activations + t * j->blocks);
    }
}

static void amx_chunk(void *context, long chunk, int thread) {
    amx_job *j = context;
    const quant_job *q = j->q;
    long column_chunk = chunk % j->column_chunks, block = chunk / j->column_chunks;
    long groups = ceil_div(q->n, 16);
    long n0 = 16 * (groups * column_chunk / j->column_chunks), n1 = 16 * (groups * (column_chunk + 1) / j->column_chunks);
    if (n1 > q->n) n1 = q->n;
    long t0 = block * j->tiles_per_block, t1 = t0 + j->tiles_per_block < j->tiles ? t0 + j->tiles_per_block : j->tiles;
    long r0 = 16 * t0, r1 = 16 * t1 < q->m ? 16 * t1 : q->m;
    hifc_amx_block *panel = j->panels + (long)thread * j->blocks;
    for (long col = n0; col < n1; col += 16) {
        int nr = (int)(n1 - col < 16 ? n1 - col : 16);
        q->k->amx_pack_weights(q->type, q->w + col * q->row_bytes, q->row_bytes, nr, j->blocks, panel);
        q->k->amx_panel_product(panel, j->activations + t0 * j->blocks, j->blocks, nr, r1 - r0, q->c + r0 * q->n + col, q->n);
        if (q->bias) {
            for (long r = r0; r < r1; r++)
                for (long x = col; x < col + nr; x++) q->c[r * q->n + x] += q->bias[x];
        }
    }
}

/// The product of the quantized activations in `q` on AMX tiles: the activations are packed
/// once into B tiles, then each chunk packs the 16 weight rows of each of its column groups
/// into A tiles and runs them against its block of activation tiles. Returns 0, having done
/// nothing, when the packed tiles' memory cannot be had: the caller then runs the product on
/// the vector kernels, which need none.
static int gemm_quant_amx(hifc_pool *pool, quant_job *q) {
    amx_job j = {.q = q, .blocks = q->k_dim / 32, .tiles = ceil_div(q->m, 16)};
    const size_t block_bytes = sizeof(hifc_amx_block);
    j.activations = aligned_alloc(64, block_bytes * (size_t)(j.tiles * j.blocks));
    j.panels = aligned_alloc(64, block_bytes * (size_t)j.blocks * (size_t)hifc_pool_threads(pool));
    if (!j.activations || !j.panels) {
        free(j.activations);
        free(j.panels);
        return 0;
    }
    j.chunks = chunk_count(pool, j.tiles, 1, 2);
    hifc_parallel(pool, j.chunks, amx_pack_chunk, &j);
    j.tiles_per_block = amx_tiles_per_block(j.blocks);
    // Few weight groups (a narrow product such as k/v) are split by rows as well, to give every
    // thread work; each chunk then packs its weight panel for fewer tiles.
    const long groups = ceil_div(q->n, 16), wanted = 2L * hifc_pool_threads(pool);
    if (groups * ceil_div(j.tiles, j.tiles_per_block) < wanted) {
        long split = ceil_div(j.tiles, ceil_div(wanted, groups));
        j.tiles_per_block = split < 2 ? 2 : split < j.tiles_per_block ? split : j.tiles_per_block;
    }
    long row_blocks = ceil_div(j.tiles, j.tiles_per_block);
    long macs_per_group = 16 * q->k_dim * 16 * (j.tiles < j.tiles_per_block ? j.tiles : j.tiles_per_block);
    j.column_chunks = chunk_count(pool, groups, ceil_div(1 << 20, macs_per_group), 4);
    hifc_parallel(pool, j.column_chunks * row_blocks, amx_chunk, &j);
    free(j.activations);
    free(j.panels);
    hifc_amx_count_product();
    return 1;
}

int hifc_gemm_quant_uses_amx(int type, long m, long n, long k, int threads) {
    return kernels()->amx_panel_product && amx_handles(type) && m >= HIFC_AMX_MIN_ROWS &&
           (double)m * (double)n * (double)k >= (double)threads * (double)HIFC_AMX_MIN_MACS_PER_THREAD;
}

/// Least multiply-adds of a quantized product's chunk: about a microsecond of a core's work. A
/// decode step's products are small (SmolLM2's qkv is 553K multiply-adds for one token): chunks
/// four times this size left 7 of 16 threads idle in it, where the workers wait spinning anyway.
#define QUANT_MACS_PER_CHUNK 16384

/// The job of `c[m×n] = a[m×k]·wᵀ (+ bias)` over `type`'s blocks, its activations to be quantized
/// into `quantized` (`hifc_gemm_quant_scratch` bytes).
static quant_job quant_job_of(int type, const float *a, const void *w, const float *bias, float *c, void *quantized, long m, long n, long k) {
    return (quant_job){
        .k = kernels(), .type = type, .a = a, .w = w, .bias = bias, .c = c, .quantized = quantized, .m = m, .n = n, .k_dim = k,
        .row_bytes = k / hifc_quant_block_weights(type) * hifc_quant_block_bytes(type),
        .act_bytes = (long)hifc_gemm_quant_scratch(type, 1, k)};
}

/// Quantizes the job's activations, split by rows.
static void quantize_activations(hifc_pool *pool, quant_job *j) {
    j->chunks = chunk_count(pool, j->m, ceil_div(COSTLY_ELEMENTS_PER_CHUNK, j->k_dim), 2);
    hifc_parallel(pool, j->chunks, quantize_chunk, j);
}

/// Splits the product into blocks of rows that stay in L2 and chunks of columns; returns the
/// chunks `quant_chunk` takes. Decode rows (fewer than a block) are one block.
static long split_product(hifc_pool *pool, quant_job *j) {
    j->rows_per_block = rows_per_block(j->k_dim, 1);
    const long row_blocks = ceil_div(j->m, j->rows_per_block);
    const int tc = quant_columns_per_tile(j->k, j->type);
    const long macs_per_group = tc * j->k_dim * (j->m < j->rows_per_block ? j->m : j->rows_per_block);
    j->column_chunks = chunk_count(pool, ceil_div(j->n, tc), ceil_div(QUANT_MACS_PER_CHUNK, macs_per_group), 4);
    return j->column_chunks * row_blocks;
}

void hifc_gemm_quant(
    hifc_pool *pool, int type, const float *a, const void *w, const float *bias, float *c, long m, long n, long k, void *scratch) {
    quant_job j = quant_job_of(type, a, w, bias, c, scratch, m, n, k);
    quantize_activations(pool, &j);
    if (hifc_gemm_quant_uses_amx(type, m, n, k, hifc_pool_threads(pool)) && gemm_quant_amx(pool, &j)) return;
    hifc_parallel(pool, split_product(pool, &j), quant_chunk, &j);
}

// MARK: Two ops in one parallel call

/// Two jobs in one parallel call: chunks below `first_chunks` are the first job's, the chunks after
/// them the second's, each of which first waits until every chunk of the first is done. The pool
/// hands chunks out in order, so a thread waiting in the second job waits only for chunks of the
/// first that other threads already run (or that run inline, in order, on one thread). What it
/// saves against two calls: a fork-join, and the caller's serial pass between the ops, in which
/// the workers spin.
typedef struct {
    hifc_chunk_fn first, second;
    void *first_context, *second_context;
    long first_chunks;
    _Alignas(64) _Atomic long first_done;
} two_phase_job;

/// `bytes` rounded up to whole cache lines: parts of one scratch buffer start on their own lines.
static size_t cache_lines(size_t bytes) { return (bytes + 63) / 64 * 64; }

static inline void two_phase_chunk(two_phase_job *j, long chunk, int thread) {
    if (chunk < j->first_chunks) {
        j->first(j->first_context, chunk, thread);
        atomic_fetch_add_explicit(&j->first_done, 1, memory_order_release);
        return;
    }
    while (atomic_load_explicit(&j->first_done, memory_order_acquire) < j->first_chunks) CPU_RELAX();
    j->second(j->second_context, chunk - j->first_chunks, thread);
}

// MARK: The gated MLP in one call

static int activation_block(int type) { return quant_is_k(type) ? 256 : 32; }

/// The gated MLP's first phase: each chunk computes a range of the intermediate columns (the gate
/// and up products), the activation, and its quantization for the down product, which is the
/// second phase.
typedef struct {
    quant_job up;    // the gate/up product: `c` = its f32 outputs, `[m, 2·inter]`
    quant_job down;  // the down product over `quantized` = the activation in 8 bits
    float *hidden;   // silu(gate) * up, `[m, inter]`
    long inter, groups, up_chunks, block;
} gated_mlp_job;

static void gated_up_chunk(void *context, long chunk, int thread) {
    (void)thread;
    gated_mlp_job *j = context;
    const quant_job *u = &j->up;
    const int tr = quant_rows_per_tile(u->k, u->type), tc = quant_columns_per_tile(u->k, u->type);
    const long i0 = j->block * (j->groups * chunk / j->up_chunks), i1 = j->block * (j->groups * (chunk + 1) / j->up_chunks);
    for (int half = 0; half < 2; half++) {
        const long first = half * j->inter + i0, last = half * j->inter + i1;
        for (long col = first; col < last; col += tc) {
            int nr = (int)(last - col < tc ? last - col : tc);
            for (long r = 0; r < u->m; r += tr) {
                int mr = (int)(u->m - r < tr ? u->m - r : tr);
                u->k->gemm_quant_tile(
                    u->type, u->w + col * u->row_bytes, u->row_bytes, nr, u->quantized + r * u->act_bytes, u->act_bytes, mr, u->k_dim,
                    u->c + r * u->n + col, u->n);
            }
        }
    }
    const quant_job *d = &j->down;
    for (long r = 0; r < u->m; r++) {
        const float *gate = u->c + r * u->n;
        float *h = j->hidden + r * j->inter;
        u->k->silu_mul(gate + i0, gate + j->inter + i0, h + i0, i1 - i0);
        uint8_t *row = d->quantized + r * d->act_bytes;
        if (j->block == 256) {
            u->k->quantize_q8k(h + i0, (hifc_block_q8k *)row + i0 / 256, i1 - i0);
        } else {
            u->k->quantize_q8(h + i0, (hifc_block_q8 *)row + i0 / 32, i1 - i0);
        }
    }
}

static void gated_mlp_chunk(void *context, long chunk, int thread) { two_phase_chunk(context, chunk, thread); }

int hifc_gated_mlp_quant_fits(int down_type, long m, long inter) {
    return m >= 1 && m <= HIFC_ONE_CALL_MOST_ROWS && inter > 0 && inter % activation_block(down_type) == 0;
}

size_t hifc_gated_mlp_quant_scratch(int gate_up_type, int down_type, long m, long inter, long hidden) {
    // The quantized input, the gate/up outputs, the activation and its quantized copy.
    return cache_lines(hifc_gemm_quant_scratch(gate_up_type, m, hidden)) + cache_lines(sizeof(float) * (size_t)(m * 2 * inter)) +
           cache_lines(sizeof(float) * (size_t)(m * inter)) + cache_lines(hifc_gemm_quant_scratch(down_type, m, inter));
}

void hifc_gated_mlp_quant(
    hifc_pool *pool, int gate_up_type, const void *gate_up, int down_type, const void *down, const float *x, float *out, long m,
    long inter, long hidden, void *scratch) {
    uint8_t *at = scratch;
    uint8_t *quantized_x = at;
    at += cache_lines(hifc_gemm_quant_scratch(gate_up_type, m, hidden));
    float *gate_up_out = (float *)at;
    at += cache_lines(sizeof(float) * (size_t)(m * 2 * inter));
    float *hidden_act = (float *)at;
    at += cache_lines(sizeof(float) * (size_t)(m * inter));
    uint8_t *quantized_h = at;

    gated_mlp_job j = {
        .up = quant_job_of(gate_up_type, x, gate_up, NULL, gate_up_out, quantized_x, m, 2 * inter, hidden),
        .down = quant_job_of(down_type, hidden_act, down, NULL, out, quantized_h, m, hidden, inter),
        .hidden = hidden_act, .inter = inter, .block = activation_block(down_type)};
    quantize_activations(pool, &j.up);
    // The first phase splits the intermediate columns by whole activation blocks, the second is
    // the down product as hifc_gemm_quant splits it (decode rows: one block of rows).
    j.groups = inter / j.block;
    j.up_chunks = chunk_count(pool, j.groups, ceil_div(QUANT_MACS_PER_CHUNK, 2 * j.block * hidden * m), 4);
    const long down_chunks = split_product(pool, &j.down);
    two_phase_job both = {
        .first = gated_up_chunk, .first_context = &j, .first_chunks = j.up_chunks, .second = quant_chunk, .second_context = &j.down};
    atomic_init(&both.first_done, 0);
    hifc_parallel(pool, j.up_chunks + down_chunks, gated_mlp_chunk, &both);
}

// MARK: Rotary embedding and the KV write

typedef struct {
    const float *qkv, *table;
    const int64_t *slots;
    float *q_out;
    float *key_rows;  // one rotated key row per thread; null: on each thread's stack
    hifc_kv_layer kv;
    long rows, chunks;
    int heads;
} rope_job;

static void rotate(float *head, const float *cosines, const float *sines, int half) {
    for (int i = 0; i < half; i++) {
        float x1 = head[i], x2 = head[i + half];
        head[i] = x1 * cosines[i] - x2 * sines[i];
        head[i + half] = x2 * cosines[i] + x1 * sines[i];
    }
}

/// Rotates row `r`'s q into `q_out` and its key into `key` (`kv_heads·head_dim` floats), then
/// writes the key and value into the pool.
static inline void rope_row(const rope_job *j, long r, float *key) {
    const int d = j->kv.head_dim, half = d / 2, kv_heads = j->kv.kv_heads;
    const long width = (long)(j->heads + 2 * kv_heads) * d, kv_width = (long)kv_heads * d;
    const float *row = j->qkv + r * width, *cosines = j->table + r * d, *sines = cosines + half;
    float *q = j->q_out + r * (long)j->heads * d;
    memcpy(q, row, sizeof(float) * (size_t)j->heads * (size_t)d);
    for (int h = 0; h < j->heads; h++) rotate(q + (long)h * d, cosines, sines, half);
    // The key is rotated in place in a copy of the row (the KV write may quantize it).
    memcpy(key, row + (long)j->heads * d, sizeof(float) * (size_t)kv_width);
    for (int h = 0; h < kv_heads; h++) rotate(key + (long)h * d, cosines, sines, half);
    hifc_kv_store(&j->kv, j->slots[r], key, row + (long)(j->heads + kv_heads) * d);
}

static void rope_chunk(void *context, long chunk, int thread) {
    rope_job *j = context;
    const long kv_width = (long)j->kv.kv_heads * j->kv.head_dim;
    const long r0 = j->rows * chunk / j->chunks, r1 = j->rows * (chunk + 1) / j->chunks;
    if (j->key_rows) {
        for (long r = r0; r < r1; r++) rope_row(j, r, j->key_rows + (long)thread * kv_width);
    } else {
        float key[kv_width];  // hifc_rope_store_kv got no scratch: see there
        for (long r = r0; r < r1; r++) rope_row(j, r, key);
    }
}

/// `a` (0 <= a, not NaN) rounded to the nearest E4M3 magnitude (ties to even, saturated at 448),
/// as a float. Branch-free, so the scale search's loop vectorizes.
static inline float e4m3_rounded(float a) {
    uint32_t bits;
    memcpy(&bits, &a, 4);
    bits = (bits + 0x7ffffu + ((bits >> 20) & 1u)) & 0xfff00000u;  // keep 3 of 23 mantissa bits
    float normal;
    memcpy(&normal, &bits, 4);
    const float subnormal = ((a * 512.0f + 0x1.8p23f) - 0x1.8p23f) * (1.0f / 512.0f);  // steps of 2^-9, to nearest even
    const float rounded = a < 0.015625f ? subnormal : normal;
    return rounded < 448.0f ? rounded : 448.0f;
}

uint8_t hifc_fp8_e4m3_from_float(float x) {
    uint32_t bits;
    memcpy(&bits, &x, 4);
    const uint8_t sign = (uint8_t)((bits >> 24) & 0x80);
    const float a = fabsf(x);
    if (a != a) return 0x7f;
    const float rounded = e4m3_rounded(a);  // its bits hold the code: exponent and 3 mantissa bits
    if (rounded < 0.015625f) return sign | (uint8_t)(rounded * 512.0f);  // subnormals: 8 is 2^-6, 0x08
    memcpy(&bits, &rounded, 4);
    return sign | (uint8_t)((((int)(bits >> 23) - 127 + 7) << 3) | ((bits >> 20) & 7));
}

float hifc_fp8_e4m3_to_float(uint8_t bits) { return hifc_e4m3_value(bits); }

/// Of the scales `max |x| / 448 * 2^(j/8)`, j = 0...7, the one whose codes have the least
/// squared error over the head. E4M3 keeps 3 mantissa bits whatever the scale, so the error of a
/// head depends on where its values fall on the code grid; the 8 scales shift that grid by an
/// eighth of an octave each. On SmolLM2 this takes fp8 KV's perplexity cost against bf16 KV from
/// 1.20% to 0.78% (bench/results/fp8-kv.md). Readers only multiply by the stored scale, so the
/// choice is the writer's; the CUDA writers (`warp_e4m3_least_error_scale`, common.cuh) choose the
/// same way, with the same table of steps. Compiled for AVX-512 and AVX2 too, picked at load (ifunc): this file
/// is built for baseline x86-64, where the search takes 1.4 us a 64-wide head against 0.45.
#if defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
float hifc_fp8_e4m3_code_head(const float *x, uint8_t *codes, int d) {
#pragma clang fp contract(off)  // no FMA in the clones either: every CPU picks the same scale
    static const float octave_steps[8] = {1.0f, 1.0905077f, 1.1892071f, 1.2968396f, 1.4142135f, 1.5422108f, 1.6817929f, 1.8340081f};
    float top = 0;
    for (int e = 0; e < d; e++) top = fabsf(x[e]) > top ? fabsf(x[e]) : top;
    float scale = top / 448.0f, inverse = top > 0 ? 448.0f / top : 0;
    if (top > 0) {
        float least = INFINITY;
        for (int j = 0; j < 8; j++) {
            const float candidate = top * octave_steps[j] / 448.0f, candidate_inverse = 448.0f / (top * octave_steps[j]);
            float lanes[8] = {0};  // partial sums, so the loop vectorizes without reassociating
            int e = 0;
            for (; e + 8 <= d; e += 8)
                for (int l = 0; l < 8; l++) {
                    const float a = fabsf(x[e + l]), miss = e4m3_rounded(a * candidate_inverse) * candidate - a;
                    lanes[l] += miss * miss;
                }
            for (; e < d; e++) {
                const float a = fabsf(x[e]), miss = e4m3_rounded(a * candidate_inverse) * candidate - a;
                lanes[0] += miss * miss;
            }
            const float error = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
            if (error < least) {
                least = error;
                scale = candidate;
                inverse = candidate_inverse;
            }
        }
    }
    for (int e = 0; e < d; e++) codes[e] = hifc_fp8_e4m3_from_float(x[e] * inverse);
    return scale;
}

/// Quantizes `count` heads of `d` floats: each head's bytes and its scale.
static void quantize_heads(const float *x, uint8_t *out, float *scales, int count, int d) {
    for (int h = 0; h < count; h++) scales[h] = hifc_fp8_e4m3_code_head(x + (long)h * d, out + (long)h * d, d);
}

/// `x` as bf16 bits, rounded to nearest even (NaN stays NaN), as the CUDA kernels round.
static uint16_t bf16_bits(float x) {
    uint32_t bits;
    memcpy(&bits, &x, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

void hifc_kv_store(const hifc_kv_layer *kv, long slot, const float *k, const float *v) {
    uint8_t *block = kv->base + (slot / kv->block_tokens) * kv->block_stride;
    const long token = slot % kv->block_tokens, width = (long)kv->kv_heads * kv->head_dim;
    if (kv->dtype == HIFC_KV_FP8_E4M3) {
        float *key_scales = (float *)(block + kv->key_scale_offset) + token * kv->kv_heads;
        float *value_scales = (float *)(block + kv->value_scale_offset) + token * kv->kv_heads;
        quantize_heads(k, block + kv->key_offset + token * width, key_scales, kv->kv_heads, kv->head_dim);
        quantize_heads(v, block + kv->value_offset + token * width, value_scales, kv->kv_heads, kv->head_dim);
    } else if (kv->dtype == HIFC_KV_BF16) {
        uint16_t *key = (uint16_t *)(block + kv->key_offset) + token * width;
        uint16_t *value = (uint16_t *)(block + kv->value_offset) + token * width;
        for (long i = 0; i < width; i++) {
            key[i] = bf16_bits(k[i]);
            value[i] = bf16_bits(v[i]);
        }
    } else {
        memcpy(block + kv->key_offset + token * width * 4, k, sizeof(float) * (size_t)width);
        memcpy(block + kv->value_offset + token * width * 4, v, sizeof(float) * (size_t)width);
    }
}

void hifc_rope_table(const int32_t *positions, long rows, const float *inverse_frequencies, int head_dim, float *table) {
    const int half = head_dim / 2;
    for (long r = 0; r < rows; r++) {
        for (int i = 0; i < half; i++) {
            // Angles in double: positions reach 10^5 and f32 would lose the low digits.
            double angle = (double)positions[r] * (double)inverse_frequencies[i];
            table[r * head_dim + i] = (float)cos(angle);
            table[r * head_dim + half + i] = (float)sin(angle);
        }
    }
}

void hifc_rope_store_kv(
    hifc_pool *pool, const float *qkv, long rows, int heads, const float *table, const int64_t *slots, float *q_out,
    hifc_kv_layer kv) {
    rope_job j = {.qkv = qkv, .table = table, .slots = slots, .q_out = q_out, .kv = kv, .rows = rows, .heads = heads};
    j.chunks = chunk_count(pool, rows, ceil_div(COSTLY_ELEMENTS_PER_CHUNK, (heads + 2 * kv.kv_heads) * kv.head_dim), 2);
    // Without scratch (out of memory) each thread rotates its keys on its stack instead: one row
    // of kv_heads·head_dim floats, 16 KB for 32 KV heads of 128 (the pool's threads have 1 MB).
    // This op returns nothing its Swift caller could throw from, and the fallback gives the same
    // values, so it runs rather than end the process.
    j.key_rows = hifc_thread_scratch(HIFC_SCRATCH_ROTARY, sizeof(float) * (size_t)hifc_pool_threads(pool) * (size_t)kv.kv_heads * (size_t)kv.head_dim);
    hifc_parallel(pool, j.chunks, rope_chunk, &j);
}

// MARK: The attention inputs in one call

static void attention_inputs_chunk(void *context, long chunk, int thread) { two_phase_chunk(context, chunk, thread); }

size_t hifc_project_rope_store_kv_scratch(int type, long rows, long hidden, long width, long kv_width, int threads) {
    return cache_lines(hifc_gemm_quant_scratch(type, rows, hidden)) + cache_lines(sizeof(float) * (size_t)(rows * width)) +
           sizeof(float) * (size_t)threads * (size_t)kv_width;
}

void hifc_project_rope_store_kv(
    hifc_pool *pool, int type, const float *x, const void *w, const float *bias, long rows, long hidden, int heads, const float *table,
    const int64_t *slots, float *q_out, hifc_kv_layer kv, void *scratch) {
    const long width = (long)(heads + 2 * kv.kv_heads) * kv.head_dim;
    uint8_t *at = scratch;
    uint8_t *quantized = at;
    at += cache_lines(hifc_gemm_quant_scratch(type, rows, hidden));
    float *products = (float *)at;
    at += cache_lines(sizeof(float) * (size_t)(rows * width));
    quant_job q = quant_job_of(type, x, w, bias, products, quantized, rows, width, hidden);
    quantize_activations(pool, &q);
    // The product as hifc_gemm_quant splits it, then the rows' rotation.
    const long product_chunks = split_product(pool, &q);
    rope_job r = {.qkv = q.c, .table = table, .slots = slots, .q_out = q_out, .key_rows = (float *)at, .kv = kv, .rows = rows, .heads = heads};
    r.chunks = chunk_count(pool, rows, ceil_div(COSTLY_ELEMENTS_PER_CHUNK, width), 2);
    two_phase_job both = {
        .first = quant_chunk, .first_context = &q, .first_chunks = product_chunks, .second = rope_chunk, .second_context = &r};
    atomic_init(&both.first_done, 0);
    hifc_parallel(pool, product_chunks + r.chunks, attention_inputs_chunk, &both);
}

// MARK: Attention

/// One call's attention: its items (a tile of rows of a sequence, one KV head, a range of keys),
/// the parts of split items to merge, and each thread's buffer, all in the caller's scratch.
typedef struct {
    const hifc_kernel_table *k;
    hifc_kv_layer kv;
    hifc_attention_item *items;
    long item_count;
    const int *splits;  // parts of each sequence's items
    const hifc_sequence *sequences;
    float *out;
    float *scratch;
    long scratch_per_thread;
    int heads, group;
    size_t missing_bytes;  // nonzero: the scratch of this many bytes could not be had, nothing planned
} attention_job;

static void attention_chunk(void *context, long chunk, int thread) {
    attention_job *j = context;
    j->k->attention(&j->items[chunk], &j->kv, j->scratch + (long)thread * j->scratch_per_thread);
}

/// Keys below which one (rows, KV head) item is not split further: a decode row of a short
/// context still spreads over the threads (SmolLM2 has 3 KV heads: 3 items a layer unsplit, and
/// on 16 cores a 16-token prompt's attention took 11% of the decode step), while a part keeps
/// enough keys that its merge (a few floats a query head) stays small beside it.
#define KEYS_PER_SPLIT 32

/// Parts a sequence's items are split into by keys: one unless it has a single tile of rows and
/// the unsplit items (`unsplit`) would leave threads idle.
static int key_splits(const hifc_sequence *seq, long tiles, long unsplit, int threads, int window) {
    if (tiles != 1 || unsplit >= 2L * threads) return 1;
    long by_keys = (window > 0 && window < seq->context_length ? window : seq->context_length) / KEYS_PER_SPLIT;
    long by_threads = ceil_div(2L * threads, unsplit);
    long split = by_keys < by_threads ? by_keys : by_threads;
    return split < 1 ? 1 : (int)split;
}

/// Lists the attention's items into the calling thread's scratch (`HIFC_SCRATCH_ATTENTION`):
/// the splits, the items, the parts' floats, then each thread's buffer.
static attention_job plan_attention(
    hifc_pool *pool, const float *q, float *out, int heads, float scale, const hifc_sequence *sequences, int sequence_count,
    int window, hifc_kv_layer kv) {
    const int d = kv.head_dim, group = heads / kv.kv_heads;
    const int tile_rows = group >= 16 ? 1 : 16 / group;
    const int threads = hifc_pool_threads(pool);
    // Items before splitting keys, to see whether long contexts must be split to fill the threads.
    long unsplit = 0;
    for (int s = 0; s < sequence_count; s++) unsplit += ceil_div(sequences[s].query_length, tile_rows) * kv.kv_heads;
    long items = 0, partial_pairs = 0;
    for (int s = 0; s < sequence_count; s++) {
        long tiles = ceil_div(sequences[s].query_length, tile_rows);
        int split = key_splits(&sequences[s], tiles, unsplit, threads, window);
        items += tiles * kv.kv_heads * split;
        if (split > 1) partial_pairs += (long)kv.kv_heads * split * sequences[s].query_length * group;
    }
    const long per_thread = hifc_attention_scratch_floats(tile_rows * group, d);
    const size_t split_bytes = cache_lines(sizeof(int) * (size_t)(sequence_count > 0 ? sequence_count : 1));
    const size_t item_bytes = cache_lines(sizeof(hifc_attention_item) * (size_t)(items > 0 ? items : 1));
    const size_t partial_bytes = cache_lines(sizeof(float) * (size_t)partial_pairs * (size_t)(d + 2));
    const size_t bytes = split_bytes + item_bytes + partial_bytes + sizeof(float) * (size_t)per_thread * (size_t)threads;
    int *splits = hifc_thread_scratch(HIFC_SCRATCH_ATTENTION, bytes);
    if (!splits) return (attention_job){.missing_bytes = bytes};
    // Counted again, now that there is room to keep them (the count above sized that room).
    for (int s = 0; s < sequence_count; s++)
        splits[s] = key_splits(&sequences[s], ceil_div(sequences[s].query_length, tile_rows), unsplit, threads, window);
    uint8_t *at = (uint8_t *)splits + split_bytes;
    hifc_attention_item *list = (hifc_attention_item *)at;
    at += item_bytes;
    float *partials = (float *)at;
    at += partial_bytes;
    long n = 0, used = 0;
    for (int s = 0; s < sequence_count; s++) {
        const hifc_sequence *seq = &sequences[s];
        // The last tiles first: a causal tile's keys grow with its rows, and the pool hands items
        // out in order, so the longest start first and the short ones fill the threads' ends.
        for (int row0 = (int)(ceil_div(seq->query_length, tile_rows) - 1) * tile_rows; row0 >= 0; row0 -= tile_rows) {
            int rows = seq->query_length - row0 < tile_rows ? seq->query_length - row0 : tile_rows;
            // Keys any row of the tile sees: from the first row's window start to the context's end.
            long low = window > 0 ? (long)seq->context_length - seq->query_length + row0 + 1 - window : 0;
            if (low < 0) low = 0;
            long span = seq->context_length - low;
            for (int h = 0; h < kv.kv_heads; h++) {
                for (int part = 0; part < splits[s]; part++) {
                    hifc_attention_item it = {
                        .q = q, .out = out, .row_stride = (long)heads * d, .group = group, .kv_head = h, .scale = scale,
                        .sequence = seq, .row0 = row0, .rows = rows, .window = window,
                        .key0 = (int)(low + span * part / splits[s]),
                        .key1 = (int)(low + span * (part + 1) / splits[s])};
                    if (splits[s] > 1) {
                        long pairs = (long)rows * group;
                        it.partial_max = partials + used;
                        it.partial_sum = partials + used + pairs;
                        it.partial_acc = partials + used + 2 * pairs;
                        used += pairs * (d + 2);
                    }
                    list[n++] = it;
                }
            }
        }
    }
    return (attention_job){
        .k = kernels(), .kv = kv, .items = list, .item_count = n, .splits = splits, .sequences = sequences, .out = out,
        .scratch = (float *)at, .scratch_per_thread = per_thread, .heads = heads, .group = group};
}

/// Merges the parts of split items into `out`: weights e^(max_part − max) of each part's sums.
static void merge_attention_parts(const attention_job *j) {
    const int d = j->kv.head_dim, group = j->group, heads = j->heads;
    for (long i = 0; i < j->item_count;) {
        const hifc_attention_item *first = &j->items[i];
        int parts = j->splits[first->sequence - j->sequences];
        if (parts == 1) {
            i++;
            continue;
        }
        long pairs = (long)first->rows * group;
        for (long p = 0; p < pairs; p++) {
            float top = -INFINITY;
            for (int part = 0; part < parts; part++) top = j->items[i + part].partial_max[p] > top ? j->items[i + part].partial_max[p] : top;
            float denominator = 0;
            float *o = j->out + (long)(first->sequence->query_start + first->row0 + p / group) * heads * d + (long)(first->kv_head * group + p % group) * d;
            memset(o, 0, sizeof(float) * (size_t)d);
            for (int part = 0; part < parts; part++) {
                const hifc_attention_item *it = &j->items[i + part];
                if (it->partial_max[p] == -INFINITY) continue;
                float weight = expf(it->partial_max[p] - top);
                denominator += weight * it->partial_sum[p];
                const float *acc = it->partial_acc + p * d;
                for (int e = 0; e < d; e++) o[e] += weight * acc[e];
            }
            float inverse = denominator != 0 ? 1 / denominator : 0;  // a part's NaN (a NaN key) stays NaN
            for (int e = 0; e < d; e++) o[e] *= inverse;
        }
        i += parts;
    }
}

size_t hifc_paged_attention(
    hifc_pool *pool, const float *q, float *out, int heads, float scale, const hifc_sequence *sequences, int sequence_count,
    int window, hifc_kv_layer kv) {
    attention_job j = plan_attention(pool, q, out, heads, scale, sequences, sequence_count, window, kv);
    if (j.missing_bytes) return j.missing_bytes;
    hifc_parallel(pool, j.item_count, attention_chunk, &j);
    merge_attention_parts(&j);
    return 0;
}

// MARK: Names

const char *hifc_chunk_fn_name(hifc_chunk_fn body) {
    if (body == rms_norm_chunk) return "rms norm";
    if (body == add_chunk) return "add";
    if (body == activation_chunk) return "gated activation";
    if (body == argmax_chunk) return "argmax";
    if (body == gemm_chunk) return "f32 product";
    if (body == quantize_chunk) return "activation quantization";
    if (body == quant_chunk) return "quantized product";
    if (body == amx_pack_chunk) return "AMX activation packing";
    if (body == amx_chunk) return "AMX product";
    if (body == rope_chunk) return "rotary + KV write";
    if (body == attention_chunk) return "attention";
    if (body == gated_mlp_chunk) return "gated MLP (both products)";
    if (body == attention_inputs_chunk) return "q|k|v product + rotary + KV write";
    return NULL;
}
