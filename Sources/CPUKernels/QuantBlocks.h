// GGML's quantized block layouts, byte for byte as GGUF files store them (ggml-common.h in
// llama.cpp describes the same bytes; the structs here are written from that description).
// Every struct is packed to its documented size; the f16 fields are raw IEEE half bits.
#ifndef HIFC_QUANT_BLOCKS_H
#define HIFC_QUANT_BLOCKS_H

#include <stdint.h>
#include <string.h>

#include "KernelTable.h"

/// Q8_0: 32 weights `d·q`.
typedef struct {
    uint16_t d;
    int8_t qs[32];
} block_q8_0;

/// Q4_0: 32 weights `d·(q − 8)`; byte j holds weight j (low nibble) and weight j + 16 (high).
typedef struct {
    uint16_t d;
    uint8_t qs[16];
} block_q4_0;

/// Q4_1: 32 weights `d·q + m`, nibbles as Q4_0.
typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qs[16];
} block_q4_1;

/// Q5_0: 32 weights `d·(q − 16)` with 5-bit q: the low 4 bits as Q4_0's nibbles, bit 4 of
/// weight j in bit j of `qh` (little-endian).
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[16];
} block_q5_0;

/// Q5_1: 32 weights `d·q + m` with 5-bit q, the bits as Q5_0's.
typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[16];
} block_q5_1;

/// Q4_K: 256 weights in 8 sub-blocks of 32, sub-block j being `d·sc_j·q − dmin·m_j` with 6-bit
/// `sc_j`, `m_j` packed in `scales` (see `q4k_scale_min`). Each 32 bytes of `qs` hold two
/// sub-blocks: 2c in the low nibbles, 2c + 1 in the high.
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qs[128];
} block_q4_K;

/// Q5_K: Q4_K's sub-blocks with 5-bit q: the low 4 bits as Q4_K's nibbles, bit 4 of weight l of
/// sub-block j in bit j of `qh[l]`.
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
} block_q5_K;

/// Q6_K: 256 weights `d·scales[e/16]·(q − 32)` with 6-bit q: low 4 bits in `ql`, high 2 in `qh`
/// (see `hifc_dequantize` for the order).
typedef struct {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;
} block_q6_K;

_Static_assert(sizeof(block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(block_q4_1) == 20, "Q4_1 block is 20 bytes");
_Static_assert(sizeof(block_q5_0) == 22, "Q5_0 block is 22 bytes");
_Static_assert(sizeof(block_q5_1) == 24, "Q5_1 block is 24 bytes");
_Static_assert(sizeof(block_q4_K) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(block_q5_K) == 176, "Q5_K block is 176 bytes");
_Static_assert(sizeof(block_q6_K) == 210, "Q6_K block is 210 bytes");

/// Eight rows' blocks of Q4_K (or Q5_K) interleaved: the kernels' layout of those formats
/// (`hifc_quant_interleave`). The same bytes as the eight blocks; a 256-bit vector of `qs` holds
/// four weights of each row (row r in lane r), so a `dpbusd` against four broadcast activations
/// leaves each row's sum in its own lane, and a sub-block's scale is one multiply for all eight.
/// The scales are re-packed so that eight rows' come out with a few vector operations.
typedef struct {
    uint16_t d[8], dmin[8];   // row r's
    uint8_t scales_low[64];   // byte 8j + r: the low 4 bits of row r's scale j, of its min j above them
    uint8_t scales_high[32];  // byte 8c + r: the high 2 bits of scales 2c, 2c + 1, then of mins 2c, 2c + 1
} block_k_x8_header;

/// Q4_K_X8: 32 bytes at 32·(8c + g) of `qs` hold row r's `qs[32c + 4g ..< 32c + 4g + 4]` at 4r
/// (weights 4g ..< 4g + 4 of sub-blocks 2c, low nibbles, and 2c + 1, high nibbles).
typedef struct {
    block_k_x8_header h;
    uint8_t qs[1024];
} block_q4_K_x8;

/// Q5_K_X8: Q4_K_X8's nibbles with the fifth bits, in four chunks of 64 weights a row (sub-blocks
/// 2c and 2c + 1), each chunk's fifth bits before its nibbles, so that a decode row reads the block
/// in order: byte 4r + t of `qh[32·(g / 4) ..< +32]` holds, in bits 2·(g % 4) and 2·(g % 4) + 1,
/// the fifth bits of weight 4g + t of row r's sub-blocks 2c and 2c + 1; `qs` as Q4_K_X8's chunk c.
typedef struct {
    block_k_x8_header h;
    struct {
        uint8_t qh[64];
        uint8_t qs[256];
    } chunks[4];
} block_q5_K_x8;

/// The nibbles of chunk `c` (sub-blocks 2c and 2c + 1) of a Q4_K_X8 or Q5_K_X8 block.
static inline const uint8_t *k_x8_nibbles(int type, const uint8_t *block, int c) {
    return type == HIFC_QUANT_Q5_K_X8 ? ((const block_q5_K_x8 *)block)->chunks[c].qs : ((const block_q4_K_x8 *)block)->qs + 256 * c;
}

/// Q6_K_X8: eight Q6_K blocks. For each half h of the block and 4-byte group g, 96 bytes at
/// 96·(8h + g) of `q`: row r's `ql[64h + 4g ..< +4]` at 4r, its `ql[64h + 32 + 4g ..< +4]` at
/// 32 + 4r and its `qh[32h + 4g ..< +4]` at 64 + 4r (each load of the four values' bytes in
/// order: a decode row reads the block front to back); byte 8s + r of `scales` is row r's scale s
/// (of 16 weights).
typedef struct {
    uint8_t q[1536];
    int8_t scales[128];
    uint16_t d[8];
} block_q6_K_x8;

/// The 32 bytes of a Q6_K_X8 block holding the eight rows' `ql[64h + 32j + 4g ..< +4]` (`j` 0 or
/// 1), or with `j` = 2 their `qh[32h + 4g ..< +4]`.
static inline const uint8_t *q6k_x8_bytes(const block_q6_K_x8 *x, int h, int j, int g) { return x->q + 96 * (8 * h + g) + 32 * j; }

_Static_assert(sizeof(block_q4_K_x8) == 8 * sizeof(block_q4_K), "an interleaved block is its eight blocks' bytes");
_Static_assert(sizeof(block_q6_K_x8) == 8 * sizeof(block_q6_K), "an interleaved block is its eight blocks' bytes");
_Static_assert(sizeof(block_q5_K_x8) == 8 * sizeof(block_q5_K), "an interleaved block is its eight blocks' bytes");

/// The file format an interleaved `type` holds (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K or Q6_K).
static inline int quant_x8_row_type(int type) { return type - 100; }
/// Row `r`'s block (of `quant_x8_row_type(type)`) of the interleaved block `x8`, into `out`: the
/// file's bytes again, for the plain-C products.
void quant_x8_row_block(int type, const void *x8, int r, void *out);

/// Whether `type` is one of the interleaved layouts of the nibble formats.
static inline int quant_is_x8_block32(int type) {
    return type == HIFC_QUANT_Q4_0_X8 || type == HIFC_QUANT_Q4_1_X8 || type == HIFC_QUANT_Q5_0_X8 || type == HIFC_QUANT_Q5_1_X8 ||
           type == HIFC_QUANT_Q8_0_X8;
}

/// Whether `type` is one of the interleaved layouts.
static inline int quant_is_x8(int type) {
    return type == HIFC_QUANT_Q4_K_X8 || type == HIFC_QUANT_Q5_K_X8 || type == HIFC_QUANT_Q6_K_X8 || quant_is_x8_block32(type);
}

/// Eight rows' blocks of a 32-weight format interleaved, in the same bytes: row r's f16 `d` (and
/// `m`) at `d[r]` (`m[r]`, after the eight `d`), then for Q5_0 and Q5_1 the fifth bits as one
/// 32-bit word per row (bit 8i + t: weight 4t + i, so that a shift and a mask put the bits of
/// four weights of every row into place), then the codes: for the nibble formats 32 bytes at 32g
/// holding row r's `qs[4g ..< 4g + 4]` at 4r (weights 4g ..< 4g + 4 low, 16 + 4g ..< 20 + 4g
/// high); for Q8_0 32 bytes at 32t holding row r's `qs[4t ..< 4t + 4]` + 128 (unsigned bytes, as
/// VNNI multiplies them) at 4r.
///
/// The parts of interleaved block `x8` of such a format: the eight rows' `d`, their `m` (Q4_1,
/// Q5_1; else null), fifth bits (Q5_0, Q5_1; else null) and codes.
static inline void block32_x8_parts(
    int type, const uint8_t *x8, const uint16_t **d, const uint16_t **m, const uint32_t **qh, const uint8_t **qs) {
    const int with_min = type == HIFC_QUANT_Q4_1_X8 || type == HIFC_QUANT_Q5_1_X8;
    const int q5 = type == HIFC_QUANT_Q5_0_X8 || type == HIFC_QUANT_Q5_1_X8;
    *d = (const uint16_t *)x8;
    *m = with_min ? *d + 8 : NULL;
    const uint8_t *after = x8 + (with_min ? 32 : 16);
    *qh = q5 ? (const uint32_t *)after : NULL;
    *qs = q5 ? after + 32 : after;
}

/// Whether `type` is a K format (256-weight blocks, activations in `hifc_block_q8k`).
static inline int quant_is_k(int type) {
    return type == HIFC_QUANT_Q4_K || type == HIFC_QUANT_Q5_K || type == HIFC_QUANT_Q6_K || type == HIFC_QUANT_Q4_K_X8 ||
           type == HIFC_QUANT_Q5_K_X8 || type == HIFC_QUANT_Q6_K_X8;
}

/// The fifth bits of a Q5_0 or Q5_1 block (its `qh`), bit j for weight j.
static inline uint32_t q5_high_bits(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

/// The 5-bit value of weight `e` (0 ..< 32) of a Q5_0 or Q5_1 block (its `qs` and `qh`), unsigned.
static inline int q5_value(const uint8_t qs[16], const uint8_t qh[4], int e) {
    int low = e < 16 ? qs[e] & 0xF : qs[e - 16] >> 4;
    return low | (int)((q5_high_bits(qh) >> e) & 1) << 4;
}

/// Sub-block `j`'s 6-bit scale and min of a Q4_K block: j < 4 in the low 6 bits of bytes j and
/// j + 4; j ≥ 4 split between the low/high nibble of byte j + 4 and the top 2 bits of bytes
/// j − 4 and j.
static inline void q4k_scale_min(int j, const uint8_t *q, uint8_t *scale, uint8_t *min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *min = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/// All eight 6-bit scales and mins of a Q4_K or Q5_K block (`q4k_scale_min` for each j), from
/// the 12 bytes as three 32-bit words: bytes 0-3 hold scales 0-3 and the top bits of scales 4-7,
/// bytes 4-7 mins 0-3 and the top bits of mins 4-7, bytes 8-11 the low 4 bits of both.
static inline void q4k_scales_mins(const uint8_t *q, uint8_t scales[8], uint8_t mins[8]) {
    uint32_t word[3], out[4];
    memcpy(word, q, 12);
    out[0] = word[0] & 0x3f3f3f3fu;
    out[1] = (word[2] & 0x0f0f0f0fu) | ((word[0] >> 6) & 0x03030303u) << 4;
    out[2] = word[1] & 0x3f3f3f3fu;
    out[3] = ((word[2] >> 4) & 0x0f0f0f0fu) | ((word[1] >> 6) & 0x03030303u) << 4;
    memcpy(scales, out, 8);
    memcpy(mins, out + 2, 8);
}

/// The value of weight `l` (0 ..< 32) of sub-block `j` of a Q4_K block (4 bits) or a Q5_K one (5
/// bits: `qh` non-null), unsigned; `qs` is the block's nibbles.
static inline int q4k_value(const uint8_t *qs, const uint8_t *qh, int j, int l) {
    const uint8_t *q = qs + 32 * (j / 2);
    int low = j % 2 ? q[l] >> 4 : q[l] & 0xF;
    return qh ? low | ((qh[l] >> j) & 1) << 4 : low;
}

/// The 6-bit value of weight `e` (0 ..< 256) of a Q6_K block, unsigned (0 ..< 64).
static inline int q6k_value(const block_q6_K *b, int e) {
    int half = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
    const uint8_t *ql = b->ql + 64 * half, *qh = b->qh + 32 * half;
    int low = quarter & 1 ? ql[l + 32] : ql[l];
    low = quarter < 2 ? low & 0xF : low >> 4;
    int high = (qh[l] >> (2 * quarter)) & 3;
    return low | (high << 4);
}

#endif
