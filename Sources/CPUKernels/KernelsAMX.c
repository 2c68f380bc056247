// The tile loop of the Intel AMX path (AMX-TILE + AMX-INT8, Sapphire Rapids and later): one
// 16×16 block of the output per pass, one `tdpbssd` per 32-weight block (AMXLayout.h gives the
// layout and the arithmetic). Compiled only for x86-64; Dispatch.c calls it only where
// `hifc_amx_status` reports the CPU, the OS and Linux's permission ready.
#if defined(__x86_64__)
#include <immintrin.h>

#include "AMXLayout.h"

#pragma clang attribute push(__attribute__((target("amx-tile,amx-int8,avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq"))), apply_to = function)

/// The tile shapes (palette 1): C0/C1 16 rows × 64 bytes (16 s32), A0/A1 16 rows × 32 bytes (one
/// block of 16 weight rows), B0/B1 8 rows × 64 bytes (one block of 16 activation rows). Two sets,
/// so that the next block's multiply overlaps this block's epilogue.
typedef struct __attribute__((aligned(64))) {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t bytes_per_row[16];
    uint8_t rows[16];
} tile_config;

enum { C0 = 0, A0 = 1, B0 = 2, C1 = 3, A1 = 4, B1 = 5 };

static void load_tile_config(void) {
    tile_config config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    const int rows[6] = {16, 16, 8, 16, 16, 8}, bytes[6] = {64, 32, 64, 64, 32, 64};
    for (int t = 0; t < 6; t++) {
        config.rows[t] = (uint8_t)rows[t];
        config.bytes_per_row[t] = (uint16_t)bytes[t];
    }
    _tile_loadconfig(&config);
}

void hifc_amx_panel_product(
    const hifc_amx_block *w, const hifc_amx_block *a, long blocks, int nr, long rows, float *out, long ldc) {
    // Each thread configures its own tiles (the state is per thread) and releases them after, so
    // that the kernel does not keep the large tile state live across context switches.
    load_tile_config();
    int32_t c0[256] __attribute__((aligned(64))), c1[256] __attribute__((aligned(64)));
    for (long row0 = 0; row0 < rows; row0 += 16) {
        const hifc_amx_block *at = a + (row0 / 16) * blocks;
        amx_floats acc[16];
#pragma unroll
        for (int j = 0; j < 16; j++) acc[j] = (amx_floats){0};
        long b = 0;
        for (; b + 2 <= blocks; b += 2) {
            _tile_zero(C0);
            _tile_zero(C1);
            _tile_loadd(A0, w[b].qs, 32);
            _tile_loadd(B0, at[b].qs, 64);
            _tile_dpbssd(C0, A0, B0);
            _tile_loadd(A1, w[b + 1].qs, 32);
            _tile_loadd(B1, at[b + 1].qs, 64);
            _tile_dpbssd(C1, A1, B1);
            _tile_stored(C0, c0, 64);
            amx_accumulate(c0, &w[b], &at[b], acc);
            _tile_stored(C1, c1, 64);
            amx_accumulate(c1, &w[b + 1], &at[b + 1], acc);
        }
        if (b < blocks) {
            _tile_zero(C0);
            _tile_loadd(A0, w[b].qs, 32);
            _tile_loadd(B0, at[b].qs, 64);
            _tile_dpbssd(C0, A0, B0);
            _tile_stored(C0, c0, 64);
            amx_accumulate(c0, &w[b], &at[b], acc);
        }
        int mr = rows - row0 < 16 ? (int)(rows - row0) : 16;
        amx_store(acc, mr, nr, out + row0 * ldc, ldc);
    }
    _tile_release();
}

/// Packs `nr` weight rows into `out` (one A tile per block) with the AVX-512 build of the plain
/// packing code, for the panel each thread builds before its tiles.
void hifc_amx_pack_weight_panel(int type, const uint8_t *w, long row_bytes, int nr, long blocks, hifc_amx_block *out) {
    for (long b = 0; b < blocks; b++) amx_pack_weight_block(type, w, row_bytes, nr, b, out + b);
}

/// Packs `mr` quantized activation rows into `out` (one B tile per block).
void hifc_amx_pack_activation_panel(const uint8_t *a, long act_bytes, int mr, long blocks, hifc_amx_block *out) {
    for (long b = 0; b < blocks; b++) amx_pack_activation_block(a, act_bytes, mr, b, out + b);
}

#pragma clang attribute pop
#endif
