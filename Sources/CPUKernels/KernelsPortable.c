// The kernels for any CPU: KernelsF32.inc at 4 floats per vector (SSE2 on x86-64, NEON on
// arm64) and the plain-C integer dot products of QuantPortable.c.
#include "KernelTable.h"

#define VW 4
#include "KernelsF32.inc"

const hifc_kernel_table hifc_kernels_portable = {
    .name = "portable",
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
    .gemm_quant_tile = hifc_gemm_quant_tile_portable,
    .quant_tile_rows = 1,
    .quant_tile_columns = 4,
    .x8_tile_rows = 1,
};
