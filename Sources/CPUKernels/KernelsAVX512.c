// The kernels for AVX-512 (F, BW, VL, DQ, VNNI), 16 floats per vector; integer dot products with VNNI `dpbusd`.
// Compiled only for x86-64; Dispatch.c uses this table only when the CPU reports these sets.
#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "QuantBlocks.h"

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni"))), apply_to = function)

#define VW 16
#include "KernelsF32.inc"

#define HIFC_VNNI 1
#define QT_ROWS 4
#define QT_COLUMNS 4
#include "QuantDot.inc"

#pragma clang attribute pop

// The AVX-512 entries both tables share.
#define AVX512_KERNEL_ENTRIES \
    .dot = k_dot, \
    .rms_norm_row = k_rms_norm_row, \
    .add_rms_norm_row = k_add_rms_norm_row, \
    .add = k_add, \
    .silu_mul = k_silu_mul, \
    .gelu_tanh_mul = k_gelu_tanh_mul, \
    .argmax = k_argmax, \
    .exp_scaled = k_exp_scaled, \
    .gemm_columns = k_gemm_columns, \
    .attention = k_attention, \
    .quantize_q8 = k_quantize_q8, \
    .quantize_q8k = k_quantize_q8k, \
    .gemm_quant_tile = q_gemm_tile, \
    .quant_tile_rows = QT_ROWS, \
    .quant_tile_columns = QT_COLUMNS, \
    .x8_tile_rows = X8_ROWS,

const hifc_kernel_table hifc_kernels_avx512 = {
    .name = "avx512",
    AVX512_KERNEL_ENTRIES
};

/// The same kernels; prefill products of the 32-weight formats go to AMX tiles (Dispatch.c
/// decides by the activation rows).
const hifc_kernel_table hifc_kernels_amx = {
    .name = "amx",
    AVX512_KERNEL_ENTRIES
    .amx_panel_product = hifc_amx_panel_product,
    .amx_pack_weights = hifc_amx_pack_weight_panel,
    .amx_pack_activations = hifc_amx_pack_activation_panel,
};
#endif
