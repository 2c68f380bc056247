// Quantized weights in plain C: block sizes, dequantization (the reference every SIMD path is
// tested against, and the "dequantize at load" path) and the portable integer dot products.
// (The activations' 8-bit quantization is in KernelsF32.inc, vectorized with the f32 kernels.)

#include "QuantBlocks.h"

int hifc_quant_block_weights(int type) {
    if (quant_is_x8(type)) type = quant_x8_row_type(type);
    switch (type) {
    case HIFC_QUANT_Q4_0:
    case HIFC_QUANT_Q4_1:
    case HIFC_QUANT_Q5_0:
    case HIFC_QUANT_Q5_1:
    case HIFC_QUANT_Q8_0: return 32;
    case HIFC_QUANT_Q4_K:
    case HIFC_QUANT_Q5_K:
    case HIFC_QUANT_Q6_K: return 256;
    default: return 0;
    }
}

int hifc_quant_block_bytes(int type) {
    if (quant_is_x8(type)) type = quant_x8_row_type(type);
    switch (type) {
    case HIFC_QUANT_Q4_0: return sizeof(block_q4_0);
    case HIFC_QUANT_Q4_1: return sizeof(block_q4_1);
    case HIFC_QUANT_Q5_0: return sizeof(block_q5_0);
    case HIFC_QUANT_Q5_1: return sizeof(block_q5_1);
    case HIFC_QUANT_Q8_0: return sizeof(block_q8_0);
    case HIFC_QUANT_Q4_K: return sizeof(block_q4_K);
    case HIFC_QUANT_Q5_K: return sizeof(block_q5_K);
    case HIFC_QUANT_Q6_K: return sizeof(block_q6_K);
    default: return 0;
    }
}

/// Block `b` of Q4_K or Q5_K blocks at `blocks`, as Q4_K's header (their d, dmin and scales lie
/// alike), with its nibbles in `qs` and, for Q5_K, its fifth bits in `qh` (else null).
static const block_q4_K *k_block_parts(int type, const void *blocks, long b, const uint8_t **qs, const uint8_t **qh) {
    if (type == HIFC_QUANT_Q5_K) {
        const block_q5_K *x = (const block_q5_K *)blocks + b;
        *qs = x->qs;
        *qh = x->qh;
        return (const block_q4_K *)x;
    }
    const block_q4_K *x = (const block_q4_K *)blocks + b;
    *qs = x->qs;
    *qh = NULL;
    return x;
}

void hifc_dequantize(int type, const void *blocks, float *out, long count) {
    const long n = count / hifc_quant_block_weights(type);
    for (long b = 0; b < n; b++) {
        switch (type) {
        case HIFC_QUANT_Q8_0: {
            const block_q8_0 *x = (const block_q8_0 *)blocks + b;
            float d = hifc_half_to_float(x->d);
            for (int i = 0; i < 32; i++) out[i] = d * x->qs[i];
            out += 32;
            break;
        }
        case HIFC_QUANT_Q4_0: {
            const block_q4_0 *x = (const block_q4_0 *)blocks + b;
            float d = hifc_half_to_float(x->d);
            for (int i = 0; i < 16; i++) {
                out[i] = d * ((x->qs[i] & 0xF) - 8);
                out[i + 16] = d * ((x->qs[i] >> 4) - 8);
            }
            out += 32;
            break;
        }
        case HIFC_QUANT_Q4_1: {
            const block_q4_1 *x = (const block_q4_1 *)blocks + b;
            float d = hifc_half_to_float(x->d), m = hifc_half_to_float(x->m);
            for (int i = 0; i < 16; i++) {
                out[i] = d * (x->qs[i] & 0xF) + m;
                out[i + 16] = d * (x->qs[i] >> 4) + m;
            }
            out += 32;
            break;
        }
        case HIFC_QUANT_Q5_0: {
            const block_q5_0 *x = (const block_q5_0 *)blocks + b;
            float d = hifc_half_to_float(x->d);
            for (int i = 0; i < 32; i++) out[i] = d * (q5_value(x->qs, x->qh, i) - 16);
            out += 32;
            break;
        }
        case HIFC_QUANT_Q5_1: {
            const block_q5_1 *x = (const block_q5_1 *)blocks + b;
            float d = hifc_half_to_float(x->d), m = hifc_half_to_float(x->m);
            for (int i = 0; i < 32; i++) out[i] = d * q5_value(x->qs, x->qh, i) + m;
            out += 32;
            break;
        }
        case HIFC_QUANT_Q4_K:
        case HIFC_QUANT_Q5_K: {
            const uint8_t *qs, *qh;
            const block_q4_K *x = k_block_parts(type, blocks, b, &qs, &qh);
            float d = hifc_half_to_float(x->d), dmin = hifc_half_to_float(x->dmin);
            for (int j = 0; j < 8; j++) {
                uint8_t sc, m;
                q4k_scale_min(j, x->scales, &sc, &m);
                for (int l = 0; l < 32; l++) out[32 * j + l] = d * sc * q4k_value(qs, qh, j, l) - dmin * m;
            }
            out += 256;
            break;
        }
        case HIFC_QUANT_Q6_K: {
            const block_q6_K *x = (const block_q6_K *)blocks + b;
            float d = hifc_half_to_float(x->d);
            for (int e = 0; e < 256; e++) out[e] = d * x->scales[e / 16] * (q6k_value(x, e) - 32);
            out += 256;
            break;
        }
        default: return;
        }
    }
}

/// Bytes of one block's quantized activations for `type` (a block of 256 for the K formats, 32 else).
static long activation_block_bytes(int type) { return quant_is_k(type) ? (long)sizeof(hifc_block_q8k) : (long)sizeof(hifc_block_q8); }

size_t hifc_gemm_quant_scratch(int type, long m, long k) {
    return (size_t)m * (size_t)(k / (quant_is_k(type) ? 256 : 32)) * (size_t)activation_block_bytes(type);
}

/// `Σ w·a` of one block of a K format and its quantized activations, in plain C.
static float k_block_dot(int type, const void *block, const hifc_block_q8k *y) {
    if (type == HIFC_QUANT_Q4_K || type == HIFC_QUANT_Q5_K) {
        const uint8_t *qs, *qh;
        const block_q4_K *x = k_block_parts(type, block, 0, &qs, &qh);
        int scaled = 0, mins = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            q4k_scale_min(j, x->scales, &sc, &m);
            int sum = 0;
            for (int l = 0; l < 32; l++) sum += q4k_value(qs, qh, j, l) * y->qs[32 * j + l];
            scaled += sc * sum;
            mins += m * (y->sums[2 * j] + y->sums[2 * j + 1]);
        }
        return y->d * (hifc_half_to_float(x->d) * (float)scaled - hifc_half_to_float(x->dmin) * (float)mins);
    }
    const block_q6_K *x = block;
    int scaled = 0;
    for (int g = 0; g < 16; g++) {
        int sum = 0;
        for (int e = 16 * g; e < 16 * g + 16; e++) sum += q6k_value(x, e) * y->qs[e];
        scaled += x->scales[g] * (sum - 32 * y->sums[g]);
    }
    return y->d * hifc_half_to_float(x->d) * (float)scaled;
}

/// `Σ w·a` of one block of a 32-weight format and its quantized activations, in plain C.
static float block32_dot(int type, const uint8_t *block, const hifc_block_q8 *y) {
    int sum = 0;
    switch (type) {
    case HIFC_QUANT_Q8_0: {
        const block_q8_0 *x = (const block_q8_0 *)block;
        for (int i = 0; i < 32; i++) sum += x->qs[i] * y->qs[i];
        return hifc_half_to_float(x->d) * y->d * (float)sum;
    }
    case HIFC_QUANT_Q4_0: {
        const block_q4_0 *x = (const block_q4_0 *)block;
        for (int i = 0; i < 16; i++) sum += (x->qs[i] & 0xF) * y->qs[i] + (x->qs[i] >> 4) * y->qs[i + 16];
        return hifc_half_to_float(x->d) * (y->d * (float)sum - 8 * y->sum);
    }
    case HIFC_QUANT_Q4_1: {
        const block_q4_1 *x = (const block_q4_1 *)block;
        for (int i = 0; i < 16; i++) sum += (x->qs[i] & 0xF) * y->qs[i] + (x->qs[i] >> 4) * y->qs[i + 16];
        return hifc_half_to_float(x->d) * y->d * (float)sum + hifc_half_to_float(x->m) * y->sum;
    }
    case HIFC_QUANT_Q5_0: {
        const block_q5_0 *x = (const block_q5_0 *)block;
        for (int i = 0; i < 32; i++) sum += q5_value(x->qs, x->qh, i) * y->qs[i];
        return hifc_half_to_float(x->d) * (y->d * (float)sum - 16 * y->sum);
    }
    case HIFC_QUANT_Q5_1: {
        const block_q5_1 *x = (const block_q5_1 *)block;
        for (int i = 0; i < 32; i++) sum += q5_value(x->qs, x->qh, i) * y->qs[i];
        return hifc_half_to_float(x->d) * y->d * (float)sum + hifc_half_to_float(x->m) * y->sum;
    }
    default: return 0;
    }
}

/// `Σ w·a` of one block of `type` and its quantized activations (`y`: a hifc_block_q8 or, for
/// the K formats, a hifc_block_q8k), in plain C.
static float block_dot(int type, const uint8_t *block, const uint8_t *y) {
    return quant_is_k(type) ? k_block_dot(type, block, (const hifc_block_q8k *)y) : block32_dot(type, block, (const hifc_block_q8 *)y);
}

/// `Σ w·a` of one weight row and one quantized activation row, in plain C.
static float dot_row(int type, const uint8_t *w, const uint8_t *a, long k) {
    float total = 0;
    const long bytes = hifc_quant_block_bytes(type), act = activation_block_bytes(type);
    for (long b = 0; b < k / hifc_quant_block_weights(type); b++) total += block_dot(type, w + b * bytes, a + b * act);
    return total;
}

/// An interleaved tile in plain C: each row's blocks taken back out of the interleaved ones and
/// multiplied as `dot_row` multiplies the file's rows (the same floats).
static void tile_x8(int type, const uint8_t *w, int nr, const uint8_t *a, long act_bytes, int mr, long k, float *out, long ldc) {
    const int row_type = quant_x8_row_type(type);
    const long x8_bytes = 8L * hifc_quant_block_bytes(type), act = activation_block_bytes(row_type);
    block_q6_K row_block;  // the largest of the formats' blocks
    for (int i = 0; i < mr; i++) {
        for (int r = 0; r < nr; r++) {
            float total = 0;
            for (long b = 0; b < k / hifc_quant_block_weights(type); b++) {
                quant_x8_row_block(type, w + b * x8_bytes, r, &row_block);
                total += block_dot(row_type, (const uint8_t *)&row_block, a + i * act_bytes + b * act);
            }
            out[i * ldc + r] = total;
        }
    }
}

void hifc_gemm_quant_tile_portable(
    int type, const uint8_t *w, long row_bytes, int nr, const uint8_t *a, long act_bytes, int mr, long k, float *out, long ldc) {
    if (quant_is_x8(type)) {
        tile_x8(type, w, nr, a, act_bytes, mr, k, out, ldc);
        return;
    }
    for (int i = 0; i < mr; i++) {
        for (int r = 0; r < nr; r++) out[i * ldc + r] = dot_row(type, w + r * row_bytes, a + i * act_bytes, k);
    }
}
