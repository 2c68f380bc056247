// Lab-only configurations of attention.cu's tensor-core decode kernel (appended to it by
// lab_decode_attention.py): head dim 128 with other warps per block (w), keys per warp per stage
// (k) and stages (s) than paged_attention_decode_d128's w8 k16 s3. (Its copies with the L2
// prefetch-size hints, timed in bench/results/decode-attention-h200.md, changed nothing and were
// removed; commit e9441ea has them.)
extern "C" __global__ void __launch_bounds__(128) lab_decode_d128_w4k16s2(DECODE_PARAMS) {
    attention_decode_mma<128, 4, 16, 2>(DECODE_ARGS);
}
extern "C" __global__ void __launch_bounds__(128) lab_decode_d128_w4k16s3(DECODE_PARAMS) {
    attention_decode_mma<128, 4, 16, 3>(DECODE_ARGS);
}
extern "C" __global__ void __launch_bounds__(128) lab_decode_d128_w4k16s4(DECODE_PARAMS) {
    attention_decode_mma<128, 4, 16, 4>(DECODE_ARGS);
}
extern "C" __global__ void __launch_bounds__(64) lab_decode_d128_w2k16s4(DECODE_PARAMS) {
    attention_decode_mma<128, 2, 16, 4>(DECODE_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) lab_decode_d128_w8k16s2(DECODE_PARAMS) {
    attention_decode_mma<128, 8, 16, 2>(DECODE_ARGS);
}
extern "C" __global__ void __launch_bounds__(128) lab_decode_d128_w4k32s2(DECODE_PARAMS) {
    attention_decode_mma<128, 4, 32, 2>(DECODE_ARGS);
}
