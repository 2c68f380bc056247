// The data layout of the Intel AMX path of the quantized products, and the arithmetic around the
// tile multiply, in plain C: KernelsAMX.c (compiled for AMX) and AMXLayout.c (compiled for any
// CPU, so that tests run it on machines without AMX) include the same text.
//
// One AMX `tdpbssd` multiplies a 16×32 s8 tile A by a 32×16 s8 tile B into 16×16 s32 sums. The
// GGML formats give every 32 weights their own scale, so one multiply covers exactly one block:
// A holds one block of 16 weight rows (row j = the 32 codes of weight row j), B the same block of
// 16 activation rows in the "VNNI" order the instruction reads (B's row r holds, for each
// activation row i, its 4 values 4r ..< 4r + 4), and the float epilogue applies the scales:
//
//   out[i][j] += c[j][i] · (d_w[j] · d_a[i]) + offset_w[j] · sum_a[i]
//
// where a weight is `d_w · code + offset_w` (Q8_0: offset 0; Q4_0: codes 0..15 and offset
// −8·d_w; Q4_1: offset m; Q5_0: codes 0..31 and offset −16·d_w; Q5_1: codes 0..31, offset m) and
// `sum_a = d_a · Σ codes_a` (hifc_block_q8's `sum`). The Q4 and Q5 codes are valid s8, so every
// format uses the s8×s8 `tdpbssd` with no sign tricks, and the s32 sums are exact: this is the
// portable kernel's arithmetic, block for block.
#ifndef HIFC_AMX_LAYOUT_H
#define HIFC_AMX_LAYOUT_H

#include <string.h>

#include "QuantBlocks.h"

typedef float amx_floats __attribute__((vector_size(64), aligned(4)));
typedef int32_t amx_ints __attribute__((vector_size(64), aligned(4)));

/// Whether the AMX path multiplies weights of `type` (the formats with 32-weight blocks, in the
/// file's rows or interleaved).
static inline int amx_handles(int type) {
    if (quant_is_x8_block32(type)) type = quant_x8_row_type(type);
    return type == HIFC_QUANT_Q8_0 || type == HIFC_QUANT_Q4_0 || type == HIFC_QUANT_Q4_1 || type == HIFC_QUANT_Q5_0 ||
           type == HIFC_QUANT_Q5_1;
}

/// One block of one weight row (`block`, in the file's format `type`) as a row of an A tile: its
/// 32 codes as s8, its scale and offset.
static inline void amx_pack_weight_row(int type, const uint8_t *block, int8_t *q, float *scale, float *offset) {
    if (type == HIFC_QUANT_Q8_0) {
        const block_q8_0 *x = (const block_q8_0 *)block;
        memcpy(q, x->qs, 32);
        *scale = hifc_half_to_float(x->d);
        *offset = 0;
    } else if (type == HIFC_QUANT_Q5_0) {
        const block_q5_0 *x = (const block_q5_0 *)block;
        for (int e = 0; e < 32; e++) q[e] = (int8_t)q5_value(x->qs, x->qh, e);
        *scale = hifc_half_to_float(x->d);
        *offset = -16 * *scale;
    } else if (type == HIFC_QUANT_Q5_1) {
        const block_q5_1 *x = (const block_q5_1 *)block;
        for (int e = 0; e < 32; e++) q[e] = (int8_t)q5_value(x->qs, x->qh, e);
        *scale = hifc_half_to_float(x->d);
        *offset = hifc_half_to_float(x->m);
    } else {
        // Q4_0 and Q4_1 share the nibble order: byte e holds weight e (low) and e + 16 (high).
        const uint8_t *nibbles;
        if (type == HIFC_QUANT_Q4_0) {
            const block_q4_0 *x = (const block_q4_0 *)block;
            nibbles = x->qs;
            *scale = hifc_half_to_float(x->d);
            *offset = -8 * *scale;
        } else {
            const block_q4_1 *x = (const block_q4_1 *)block;
            nibbles = x->qs;
            *scale = hifc_half_to_float(x->d);
            *offset = hifc_half_to_float(x->m);
        }
        for (int e = 0; e < 16; e++) {
            q[e] = (int8_t)(nibbles[e] & 0xF);
            q[e + 16] = (int8_t)(nibbles[e] >> 4);
        }
    }
}

/// Block `b` of `nr` (≤ 16) weight rows as one A tile: codes as s8, one row of 32 per weight
/// row, with each row's scale and offset; rows past `nr` are zero (their outputs are dropped).
/// Interleaved rows (`nr` a multiple of 8) are taken back out of their blocks first.
static inline void amx_pack_weight_block(int type, const uint8_t *w, long row_bytes, int nr, long b, hifc_amx_block *out) {
    memset(out, 0, sizeof *out);
    const int interleaved = quant_is_x8_block32(type), file_type = interleaved ? quant_x8_row_type(type) : type;
    const long block_bytes = hifc_quant_block_bytes(type);
    for (int j = 0; j < nr; j++) {
        const uint8_t *block = w + j * row_bytes + b * block_bytes;
        block_q8_0 row_block;  // the largest of the 32-weight formats' blocks
        if (interleaved) {
            quant_x8_row_block(type, w + (j / 8) * 8 * row_bytes + b * 8 * block_bytes, j % 8, &row_block);
            block = (const uint8_t *)&row_block;
        }
        amx_pack_weight_row(file_type, block, out->qs + 32 * j, &out->scale[j], &out->offset[j]);
    }
}

/// Block `b` of `mr` (≤ 16) quantized activation rows (`act_bytes` apart) as one B tile: row r
/// holds values 4r ..< 4r + 4 of each activation row in turn; rows past `mr` are zero.
static inline void amx_pack_activation_block(const uint8_t *a, long act_bytes, int mr, long b, hifc_amx_block *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < mr; i++) {
        const hifc_block_q8 *y = (const hifc_block_q8 *)(a + i * act_bytes) + b;
        for (int r = 0; r < 8; r++) memcpy(out->qs + 64 * r + 4 * i, y->qs + 4 * r, 4);
        out->scale[i] = y->d;
        out->offset[i] = y->sum;
    }
}

/// Adds one block's tile sums `c` (row j = weight row j, column i = activation row i) to the
/// accumulators `acc[j]` (lane i), scaled as the header says.
static inline __attribute__((always_inline)) void amx_accumulate(const int32_t *c, const hifc_amx_block *w, const hifc_amx_block *a, amx_floats acc[16]) {
    amx_floats scale, offset;
    memcpy(&scale, a->scale, sizeof scale);
    memcpy(&offset, a->offset, sizeof offset);
    // Unrolled so that the 16 accumulators stay in registers in the AMX build.
#pragma unroll
    for (int j = 0; j < 16; j++) {
        amx_ints sums;
        memcpy(&sums, c + 16 * j, sizeof sums);
        acc[j] += __builtin_convertvector(sums, amx_floats) * (w->scale[j] * scale);
        acc[j] += w->offset[j] * offset;
    }
}

/// Writes the accumulators (weight row j, activation row i) to `out[i·ldc + j]` for the `mr`
/// activation rows and `nr` weight rows that exist.
static inline __attribute__((always_inline)) void amx_store(const amx_floats acc[16], int mr, int nr, float *out, long ldc) {
    // All 16 copied by constant index first: a variable index into `acc` would keep the
    // accumulators in memory through the whole tile loop.
    float lanes[16][16];
#pragma unroll
    for (int j = 0; j < 16; j++) memcpy(lanes[j], &acc[j], sizeof lanes[j]);
    for (int j = 0; j < nr; j++)
        for (int i = 0; i < mr; i++) out[i * ldc + j] = lanes[j][i];
}

#endif
