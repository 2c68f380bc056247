// The interleaved layouts (QuantBlocks.h): rows of a GGUF weight re-laid at load so that the
// vector kernels take eight rows in the lanes of one register (`hifc_quant_interleave`), and each
// row's block taken back out (`quant_x8_row_block`) for the plain-C products and AMX packing.

#include "QuantBlocks.h"

int hifc_quant_interleaved_type(int type) {
    switch (type) {
    case HIFC_QUANT_Q4_0:
    case HIFC_QUANT_Q4_1:
    case HIFC_QUANT_Q5_0:
    case HIFC_QUANT_Q5_1:
    case HIFC_QUANT_Q8_0:
    case HIFC_QUANT_Q4_K:
    case HIFC_QUANT_Q5_K:
    case HIFC_QUANT_Q6_K: return 100 + type;
    default: return 0;
    }
}

/// Block `b` of eight Q4_K or Q5_K rows `row_bytes` apart, interleaved into `out`.
static void interleave_k_block(int type, const uint8_t *w, long row_bytes, long b, uint8_t *out) {
    const int q5 = type == HIFC_QUANT_Q5_K;
    block_k_x8_header *h = (block_k_x8_header *)out;
    if (q5) memset(out, 0, sizeof(block_q5_K_x8));  // the fifth bits are or-ed in
    for (int r = 0; r < 8; r++) {
        const uint8_t *block = w + r * row_bytes + b * hifc_quant_block_bytes(type);
        const block_q4_K *x = (const block_q4_K *)block;  // Q5_K's d, dmin and scales lie alike
        const uint8_t *nibbles = q5 ? ((const block_q5_K *)block)->qs : x->qs;
        h->d[r] = x->d;
        h->dmin[r] = x->dmin;
        uint8_t sc[8], mn[8];
        q4k_scales_mins(x->scales, sc, mn);
        for (int j = 0; j < 8; j++) h->scales_low[8 * j + r] = (uint8_t)((sc[j] & 15) | (mn[j] & 15) << 4);
        for (int c = 0; c < 4; c++) {
            h->scales_high[8 * c + r] =
                (uint8_t)(sc[2 * c] >> 4 | (sc[2 * c + 1] >> 4) << 2 | (mn[2 * c] >> 4) << 4 | (mn[2 * c + 1] >> 4) << 6);
        }
        for (int c = 0; c < 4; c++) {
            uint8_t *qs = (uint8_t *)k_x8_nibbles(100 + type, out, c);
            for (int g = 0; g < 8; g++) memcpy(qs + 32 * g + 4 * r, nibbles + 32 * c + 4 * g, 4);
            if (!q5) continue;
            uint8_t *qh = ((block_q5_K_x8 *)out)->chunks[c].qh;
            for (int l = 0; l < 32; l++) {
                const int g = l / 4, t = l % 4, bits = ((const block_q5_K *)block)->qh[l] >> (2 * c) & 3;
                qh[32 * (g / 4) + 4 * r + t] |= (uint8_t)(bits << (2 * (g % 4)));
            }
        }
    }
}

/// Block `b` of eight Q6_K rows `row_bytes` apart, interleaved into `out`.
static void interleave_q6k_block(const uint8_t *w, long row_bytes, long b, block_q6_K_x8 *out) {
    for (int r = 0; r < 8; r++) {
        const block_q6_K *x = (const block_q6_K *)(w + r * row_bytes) + b;
        for (int h = 0; h < 2; h++)
            for (int g = 0; g < 8; g++) {
                for (int j = 0; j < 2; j++) memcpy((uint8_t *)q6k_x8_bytes(out, h, j, g) + 4 * r, x->ql + 64 * h + 32 * j + 4 * g, 4);
                memcpy((uint8_t *)q6k_x8_bytes(out, h, 2, g) + 4 * r, x->qh + 32 * h + 4 * g, 4);
            }
        for (int s = 0; s < 16; s++) out->scales[8 * s + r] = x->scales[s];
        out->d[r] = x->d;
    }
}

/// The fifth bits of a Q5_0 or Q5_1 block (bit e: weight e) in the interleaved order (bit 8i + t:
/// weight 4t + i), and back (`to_file`).
static uint32_t reorder_fifth_bits(uint32_t bits, int to_file) {
    uint32_t out = 0;
    for (int t = 0; t < 8; t++)
        for (int i = 0; i < 4; i++) {
            const int file = 4 * t + i, mine = 8 * i + t;
            out |= ((bits >> (to_file ? mine : file)) & 1u) << (to_file ? file : mine);
        }
    return out;
}

/// Block `b` of eight rows of a 32-weight format `row_bytes` apart, interleaved into `out`.
static void interleave_block32(int type, const uint8_t *w, long row_bytes, long b, uint8_t *out) {
    const uint16_t *d, *m;
    const uint32_t *qh;
    const uint8_t *qs;
    block32_x8_parts(100 + type, out, &d, &m, &qh, &qs);
    for (int r = 0; r < 8; r++) {
        const uint8_t *block = w + r * row_bytes + b * hifc_quant_block_bytes(type);
        memcpy((uint16_t *)d + r, block, 2);
        if (type == HIFC_QUANT_Q8_0) {
            const block_q8_0 *x = (const block_q8_0 *)block;
            for (int e = 0; e < 32; e++) ((uint8_t *)qs)[32 * (e / 4) + 4 * r + e % 4] = (uint8_t)x->qs[e] ^ 0x80;
            continue;
        }
        if (m) memcpy((uint16_t *)m + r, block + 2, 2);
        const uint8_t *nibbles = block + hifc_quant_block_bytes(type) - 16;  // every nibble format ends with them
        if (qh) {
            uint32_t bits;
            memcpy(&bits, nibbles - 4, 4);
            ((uint32_t *)qh)[r] = reorder_fifth_bits(bits, 0);
        }
        for (int g = 0; g < 4; g++) memcpy((uint8_t *)qs + 32 * g + 4 * r, nibbles + 4 * g, 4);
    }
}

typedef struct {
    int type;
    const uint8_t *in;
    uint8_t *out;
    long groups, blocks, row_bytes, chunks;
} interleave_job;

static void interleave_chunk(void *context, long chunk, int thread) {
    (void)thread;
    const interleave_job *j = context;
    const long x8_bytes = 8L * hifc_quant_block_bytes(j->type);
    for (long g = j->groups * chunk / j->chunks; g < j->groups * (chunk + 1) / j->chunks; g++) {
        const uint8_t *rows = j->in + 8 * g * j->row_bytes;
        uint8_t *at = j->out + 8 * g * j->row_bytes;
        for (long b = 0; b < j->blocks; b++, at += x8_bytes) {
            if (j->type == HIFC_QUANT_Q6_K) {
                interleave_q6k_block(rows, j->row_bytes, b, (block_q6_K_x8 *)at);
            } else if (quant_is_k(j->type)) {
                interleave_k_block(j->type, rows, j->row_bytes, b, at);
            } else {
                interleave_block32(j->type, rows, j->row_bytes, b, at);
            }
        }
    }
}

void hifc_quant_interleave(hifc_pool *pool, int type, const void *w, long rows, long k, void *out) {
    const long blocks = k / hifc_quant_block_weights(type);
    interleave_job j = {
        .type = type, .in = w, .out = out, .groups = rows / 8, .blocks = blocks, .row_bytes = blocks * hifc_quant_block_bytes(type)};
    // Chunks of at least a few hundred KB each: a load's copy is memory-bound, and spread over the
    // pool's threads (several chunks each) it takes a fraction of a large model's load time.
    const long least_groups = 1 + (256L << 10) / (8 * j.row_bytes);
    const long wanted = 4L * hifc_pool_threads(pool);
    j.chunks = j.groups / least_groups < wanted ? j.groups / least_groups : wanted;
    if (j.chunks < 1) j.chunks = 1;
    hifc_parallel(pool, j.chunks, interleave_chunk, &j);
}

/// Row `r`'s Q4_K or Q5_K block of interleaved block `x8`, into `out`.
static void k_row_block(int type, const void *x8, int r, void *out) {
    const int q5 = type == HIFC_QUANT_Q5_K_X8;
    const block_k_x8_header *h = x8;
    block_q4_K *x = out;
    uint8_t *nibbles = q5 ? ((block_q5_K *)out)->qs : x->qs;
    x->d = h->d[r];
    x->dmin = h->dmin[r];
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; j++) {
        const uint8_t high = h->scales_high[8 * (j / 2) + r] >> (2 * (j % 2));
        sc[j] = (uint8_t)((h->scales_low[8 * j + r] & 15) | (high & 3) << 4);
        mn[j] = (uint8_t)((h->scales_low[8 * j + r] >> 4) | ((high >> 4) & 3) << 4);
    }
    // GGML's packing of the 6-bit values (q4k_scale_min reads it back).
    for (int j = 0; j < 4; j++) {
        x->scales[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        x->scales[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        x->scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
    if (q5) memset(((block_q5_K *)out)->qh, 0, 32);  // the fifth bits are or-ed in
    for (int c = 0; c < 4; c++) {
        const uint8_t *qs = k_x8_nibbles(type, x8, c);
        for (int g = 0; g < 8; g++) memcpy(nibbles + 32 * c + 4 * g, qs + 32 * g + 4 * r, 4);
        if (!q5) continue;
        const uint8_t *qh = ((const block_q5_K_x8 *)x8)->chunks[c].qh;
        for (int l = 0; l < 32; l++) {
            const int g = l / 4, t = l % 4, bits = qh[32 * (g / 4) + 4 * r + t] >> (2 * (g % 4)) & 3;
            ((block_q5_K *)out)->qh[l] |= (uint8_t)(bits << (2 * c));
        }
    }
}

/// Row `r`'s block of a 32-weight format's interleaved block `x8`, into `out`.
static void block32_row_block(int type, const uint8_t *x8, int r, uint8_t *out) {
    const uint16_t *d, *m;
    const uint32_t *qh;
    const uint8_t *qs;
    block32_x8_parts(type, x8, &d, &m, &qh, &qs);
    const int bytes = hifc_quant_block_bytes(type);
    memcpy(out, d + r, 2);
    if (type == HIFC_QUANT_Q8_0_X8) {
        block_q8_0 *x = (block_q8_0 *)out;
        for (int e = 0; e < 32; e++) x->qs[e] = (int8_t)(qs[32 * (e / 4) + 4 * r + e % 4] ^ 0x80);
        return;
    }
    if (m) memcpy(out + 2, m + r, 2);
    uint8_t *nibbles = out + bytes - 16;
    if (qh) {
        const uint32_t bits = reorder_fifth_bits(qh[r], 1);
        memcpy(nibbles - 4, &bits, 4);
    }
    for (int g = 0; g < 4; g++) memcpy(nibbles + 4 * g, qs + 32 * g + 4 * r, 4);
}

/// Row `r`'s Q6_K block of interleaved block `x8`, into `out`.
static void q6k_row_block(const block_q6_K_x8 *x8, int r, block_q6_K *out) {
    for (int h = 0; h < 2; h++)
        for (int g = 0; g < 8; g++) {
            for (int j = 0; j < 2; j++) memcpy(out->ql + 64 * h + 32 * j + 4 * g, q6k_x8_bytes(x8, h, j, g) + 4 * r, 4);
            memcpy(out->qh + 32 * h + 4 * g, q6k_x8_bytes(x8, h, 2, g) + 4 * r, 4);
        }
    for (int s = 0; s < 16; s++) out->scales[s] = x8->scales[8 * s + r];
    out->d = x8->d[r];
}

void quant_x8_row_block(int type, const void *x8, int r, void *out) {
    if (quant_is_x8_block32(type)) {
        block32_row_block(type, x8, r, out);
    } else if (type == HIFC_QUANT_Q6_K_X8) {
        q6k_row_block(x8, r, out);
    } else {
        k_row_block(type, x8, r, out);
    }
}
