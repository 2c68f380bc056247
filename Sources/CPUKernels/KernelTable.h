// The per-instruction-set kernels behind CPUKernels.h: each of KernelsPortable.c, KernelsAVX2.c
// and KernelsAVX512.c fills one `hifc_kernel_table` from the same source (KernelsF32.inc,
// QuantDot.inc), compiled for its instruction set; Dispatch.c picks one table at start-up and
// spreads the work over the pool. These work on one row, one tile or one attention item: the
// split over threads is Dispatch.c's.
#ifndef HIFC_KERNEL_TABLE_H
#define HIFC_KERNEL_TABLE_H

#include "CPUKernels.h"

/// One attention work item: query rows `row0 ..< row0 + rows` of a sequence, the query heads of
/// one KV head, keys `key0 ..< key1` (each row still sees only its causal prefix). With
/// `partial_*` null the result is normalized into `out`; otherwise the unnormalized sums and the
/// running max and denominator go there, for `attention_merge`.
typedef struct {
    const float *q;
    float *out;
    long row_stride;  // floats per row of q and out (heads * head_dim)
    int group;        // query heads per KV head
    int kv_head;
    float scale;
    const hifc_sequence *sequence;
    int row0, rows;
    int key0, key1;
    int window;  // keys a row sees at most (its own and the window - 1 before it); 0: all
    float *partial_max, *partial_sum, *partial_acc;  // [rows*group], [rows*group], [rows*group*d]
} hifc_attention_item;

/// Per-thread memory an attention item needs, in floats: a pass's row pointers, its decoded K or
/// V rows, and per (row, head) pair its scores, sums, running max and denominator, and (tiles
/// whose pairs are in the lanes, rounded up to whole vectors of at most 16 floats) its query by
/// element and the keys it sees; a multiple of 64 bytes, so that each thread's part starts aligned.
#define HIFC_ATTENTION_KEYS_PER_PASS 128
#define HIFC_ATTENTION_POINTER_FLOATS (HIFC_ATTENTION_KEYS_PER_PASS * (long)(sizeof(void *) / sizeof(float)))
static inline long hifc_attention_scratch_floats(int pairs, int head_dim) {
    long floats = HIFC_ATTENTION_POINTER_FLOATS + (long)HIFC_ATTENTION_KEYS_PER_PASS * head_dim +
                  (long)(pairs + 16) * (HIFC_ATTENTION_KEYS_PER_PASS + 2L * head_dim + 4);
    return (floats + 15) / 16 * 16;
}

/// Activations quantized for the integer dot products: 32 values with scale `d`, and
/// `d · Σ q` (for the formats with a min).
typedef struct {
    float d;
    float sum;
    int8_t qs[32];
} hifc_block_q8;

/// Activations quantized for the K formats: 256 values with scale `d` and the sums of each 16.
typedef struct {
    float d;
    int16_t sums[16];
    int8_t qs[256];
} hifc_block_q8k;

typedef struct {
    const char *name;
    float (*dot)(const float *x, const float *y, long n);
    void (*rms_norm_row)(const float *x, const float *w, float *y, long width, float eps);
    void (*add_rms_norm_row)(const float *a, const float *b, const float *w, float *sum, float *y, long width, float eps);
    void (*add)(const float *a, const float *b, float *out, long n);
    void (*silu_mul)(const float *gate, const float *up, float *out, long n);
    void (*gelu_tanh_mul)(const float *gate, const float *up, float *out, long n);
    long (*argmax)(const float *x, long n);
    /// `out[i] = e^((x[i] - shift) · scale)`; returns their sum.
    double (*exp_scaled)(const float *x, float *out, long n, float shift, float scale);
    /// Columns `n0 ..< n1` of `c[m×n] = a · bᵀ`.
    void (*gemm_columns)(const float *a, const float *b, float *c, long m, long n, long k, long n0, long n1);
    void (*attention)(const hifc_attention_item *item, const hifc_kv_layer *kv, float *scratch);
    /// `d·q` of 32 (or 256) values per block, as hifc_block_q8 / hifc_block_q8k.
    void (*quantize_q8)(const float *x, hifc_block_q8 *out, long k);
    void (*quantize_q8k)(const float *x, hifc_block_q8k *out, long k);
    /// `out[i·ldc + r] = Σ w_r·a_i` for weight rows `r < nr` (in `type`'s blocks, `row_bytes`
    /// apart) and quantized activation rows `i < mr` (`act_bytes` apart), over `k` features.
    void (*gemm_quant_tile)(
        int type, const uint8_t *w, long row_bytes, int nr, const uint8_t *a, long act_bytes, int mr, long k, float *out,
        long ldc);
    /// The tile `gemm_quant_tile` is fastest at: activation rows, weight rows.
    int quant_tile_rows, quant_tile_columns;
    /// Activation rows of its tiles of the interleaved types (whose weight rows come in eights).
    int x8_tile_rows;
    /// Non-null in the AMX table: the prefill products of the 32-weight formats on AMX tiles.
    /// `out[i·ldc + j] = Σ w_j·a_i` for `rows` activation rows (packed, 16 per tile, `blocks`
    /// blocks per tile) and the `nr` (≤ 16) weight rows packed in `w[blocks]`.
    void (*amx_panel_product)(const hifc_amx_block *w, const hifc_amx_block *a, long blocks, int nr, long rows, float *out, long ldc);
    /// The AMX path's packing (AMXLayout.h) built for the same CPU: `nr` weight rows of `type`, and
    /// `mr` quantized activation rows `act_bytes` apart, into one block each of `out[blocks]`.
    void (*amx_pack_weights)(int type, const uint8_t *w, long row_bytes, int nr, long blocks, hifc_amx_block *out);
    void (*amx_pack_activations)(const uint8_t *a, long act_bytes, int mr, long blocks, hifc_amx_block *out);
} hifc_kernel_table;

extern const hifc_kernel_table hifc_kernels_portable;
void hifc_gemm_quant_tile_portable(
    int type, const uint8_t *w, long row_bytes, int nr, const uint8_t *a, long act_bytes, int mr, long k, float *out, long ldc);
#if defined(__x86_64__)
extern const hifc_kernel_table hifc_kernels_avx2;
extern const hifc_kernel_table hifc_kernels_avx512;
/// The AVX-512 kernels with the AMX prefill products (KernelsAMX.c).
extern const hifc_kernel_table hifc_kernels_amx;
void hifc_amx_panel_product(const hifc_amx_block *w, const hifc_amx_block *a, long blocks, int nr, long rows, float *out, long ldc);
void hifc_amx_pack_weight_panel(int type, const uint8_t *w, long row_bytes, int nr, long blocks, hifc_amx_block *out);
void hifc_amx_pack_activation_panel(const uint8_t *a, long act_bytes, int mr, long blocks, hifc_amx_block *out);
#endif
/// Counts one product run on AMX tiles (`hifc_amx_products`).
void hifc_amx_count_product(void);

/// f16 (IEEE half) bits to f32, without F16C.
static inline float hifc_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    uint32_t bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {  // subnormal: normalize
            int shift = 0;
            while (!(mantissa & 0x400)) {
                mantissa <<= 1;
                shift++;
            }
            mantissa &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - shift + 1) << 23) | (mantissa << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
}

/// The value of the E4M3 byte `bits`: exact in f32 (normals as bit fields, subnormals m·2^-9).
static inline float hifc_e4m3_value(uint8_t bits) {
    uint32_t exponent = (bits >> 3) & 15, mantissa = bits & 7;
    float f;
    if ((bits & 0x7f) == 0x7f) {
        f = __builtin_nanf("");
    } else if (exponent == 0) {
        f = (float)mantissa * (1.0f / 512);
    } else {
        uint32_t word = ((exponent + 120) << 23) | (mantissa << 20);
        __builtin_memcpy(&f, &word, 4);
    }
    return bits & 0x80 ? -f : f;
}

#endif
