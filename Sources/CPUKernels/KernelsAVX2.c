// The kernels for AVX2 + FMA + F16C, 8 floats per vector; integer dot products with `maddubs`.
// Compiled only for x86-64; Dispatch.c uses this table only when the CPU reports these sets.
#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "QuantBlocks.h"

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)

#define VW 8
#include "KernelsF32.inc"

#define QT_ROWS 4
#define QT_COLUMNS 2
#include "QuantDot.inc"

#pragma clang attribute pop

const hifc_kernel_table hifc_kernels_avx2 = {
    .name = "avx2",
    .dot = k_dot,
    .rms_norm_row = k_rms_norm_row,
    .add_rms_norm_row = k_add_rms_norm_row,
    .add = k_add,
    .silu_mul = k_silu_mul,
    .gelu_tanh_mul = k_gelu_tanh_mul,
    .argmax = k_argmax,
    .exp_scaled = k_exp_scaled,
    .gemm_columns = k_gemm_columns,
    .attention = k_attention,
    .quantize_q8 = k_quantize_q8,
    .quantize_q8k = k_quantize_q8k,
    .gemm_quant_tile = q_gemm_tile,
    .quant_tile_rows = QT_ROWS,
    .quant_tile_columns = QT_COLUMNS,
    .x8_tile_rows = X8_ROWS,
};
#endif
