// Lab-only configurations of attention.cu's tensor-core decode kernel, appended to it by
// lab_decode_attention.py and named in its LAB_VARIANTS (head dim 128 with other warps per block,
// keys per warp per stage or stages than paged_attention_decode_d128's w8 k16 s3). None at
// present: the configurations timed so far (w4 k16 s2/s3/s4/s6, w2 k16 s4, w6 k16 s4, w8 k16 s2,
// w12 k16 s2, w4 k32 s2/s3, per-warp copy pipelines, a compile-time block size, L2 prefetch-size
// hints) are in bench/results/decode-attention-h100.md and -h200.md, with the commits that had them.
