// Lab-only configurations of attention.cu's decode kernels, appended to it by lab_decode_attention.py
// and named in its LAB_VARIANTS (bf16) and LAB_VARIANTS_FP8. Those timed before are
// in bench/results/decode-attention-h100.md, -h200.md, fp8-kv.md and cuda-graphs-h200.md with the
// commits that had them: the set of 2026-12-05 (other warps, keys and stages for fp8, clusters of 8
// and 16 blocks, one pool lookup a row, 2-block clusters) is in commit 32f0cfc, where one lookup a
// row and the 2-block cluster won and are hifc's kernels now; paged_attention_decode_d128_tma (K/V
// stages by bulk tensor copies over the prefill's tensor map), timed on 2026-12-06 and no faster,
// is in commit fcd13a5.

// The head-dim-128 kernel with 4 warps (three stages of 64 keys, 100 KiB of shared memory with Q's tile: two blocks a
// multiprocessor) for lab_layer_chain.py --attention-kernel: with the products, norms and combine asked for the same
// carveout (--carveout 57 --carveout-attention), no multiprocessor switches its L1/shared split in a decode layer.
// Timed 2026-12-07 (cuda-graphs-h200.md): no faster than the 8-warp kernel under the same carveout, in the lab or in
// whole steps (hifc's twin was on experiment/uniform-carveout).
extern "C" __global__ void __launch_bounds__(128) lab_decode_d128_w4k16s3(DECODE_PARAMS) {
    attention_decode_mma<128, 4, 16, 3, true>(DECODE_ARGS);
}
