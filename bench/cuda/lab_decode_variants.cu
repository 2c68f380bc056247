// Lab-only configurations of attention.cu's tensor-core decode kernels, appended to it by
// lab_decode_attention.py and named in its LAB_VARIANTS (bf16) and LAB_VARIANTS_FP8: head dim 128
// with other warps per block, keys per warp per stage or stages than paged_attention_decode_d128
// (w8 k16 s3) and paged_attention_decode_d128_fp8 (w8 k16 s3), and those two with one pool lookup a
// copied row (_once, decode_copy_kv_once). The bf16 configurations timed
// before (w4 k16 s2/s3/s4/s6, w2 k16 s4, w6 k16 s4, w8 k16 s2, w12 k16 s2, w4 k32 s2/s3, per-warp
// copy pipelines, a compile-time block size, L2 prefetch-size hints) are in
// bench/results/decode-attention-h100.md and -h200.md, with the commits that had them; the fp8
// ones, of the kernel before its products were transposed (a22cca5, 36a1919) and of the
// transposed one (its lab form fp8t_*, 36a1919), in bench/results/fp8-kv.md.
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8_w8k16s2(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 16, 2>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8_w8k16s5(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 16, 5>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d128_fp8_w4k16s3(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 4, 16, 3>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8_w8k32s3(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 32, 3>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(512) paged_attention_decode_d128_fp8_w16k16s2(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 16, 16, 2>(DECODE_ARGS, scale_offset);
}
// The production shapes with one pool lookup a copied row (decode_copy_kv_once), against
// paged_attention_decode_d128 and _d128_fp8 at the same split counts.
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_once(DECODE_PARAMS) {
    attention_decode_mma<128, 8, 16, 3, true>(DECODE_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8_once(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 16, 3, true>(DECODE_ARGS, scale_offset);
}
// The production shapes with the splits combined inside a thread block cluster (finish_decode_block's CL), at the
// split count of their name and no paged_attention_combine: 16 is hifc's pick at batch 1 up to 64K tokens (a
// cluster of 16 needs the non-portable size, which the lab allows), 8 the portable limit, 2 hifc's pick at batch 16
// over 8192 tokens.
extern "C" __global__ void __cluster_dims__(1, 1, 16) __launch_bounds__(256) paged_attention_decode_d128_cluster16(DECODE_PARAMS) {
    attention_decode_mma<128, 8, 16, 3, false, 16>(DECODE_ARGS);
}
extern "C" __global__ void __cluster_dims__(1, 1, 8) __launch_bounds__(256) paged_attention_decode_d128_cluster8(DECODE_PARAMS) {
    attention_decode_mma<128, 8, 16, 3, false, 8>(DECODE_ARGS);
}
extern "C" __global__ void __cluster_dims__(1, 1, 2) __launch_bounds__(256) paged_attention_decode_d128_cluster2(DECODE_PARAMS) {
    attention_decode_mma<128, 8, 16, 3, false, 2>(DECODE_ARGS);
}
extern "C" __global__ void __cluster_dims__(1, 1, 16) __launch_bounds__(256) paged_attention_decode_d128_fp8_cluster16(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 16, 3, false, 16>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __cluster_dims__(1, 1, 8) __launch_bounds__(256) paged_attention_decode_d128_fp8_cluster8(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 16, 3, false, 8>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __cluster_dims__(1, 1, 2) __launch_bounds__(256) paged_attention_decode_d128_fp8_cluster2(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 16, 3, false, 2>(DECODE_ARGS, scale_offset);
}
// Both: one lookup a copied row and the splits combined in the cluster.
extern "C" __global__ void __cluster_dims__(1, 1, 2) __launch_bounds__(256) paged_attention_decode_d128_fp8_once_cluster2(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 16, 3, true, 2>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __cluster_dims__(1, 1, 16) __launch_bounds__(256) paged_attention_decode_d128_once_cluster16(DECODE_PARAMS) {
    attention_decode_mma<128, 8, 16, 3, true, 16>(DECODE_ARGS);
}
