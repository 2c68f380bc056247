// Lab-only configurations of prefill_attention.cu's Hopper kernel, appended to it by
// lab_prefill_attention.py and named in its HOPPER_VARIANTS. Those timed before
// (cp.async copies, intra-warpgroup overlap, ping-pong, early scores, the split prologue that is
// hifc's now, the online softmax in four independent partials, persistent CTAs) are in
// bench/results/prefill-attention-h200.md and -h100.md with the commits that had them; the last two
// lost on 2026-12-05 and are in commit 7b76231.

// The two computing warpgroups' score products in turns (ping-pong; hopper_consume_tile's
// PINGPONG), otherwise hifc's kernel. Tried before only together with the intra-warpgroup overlap
// and cp.async copies (ws_n128s3rp, commit fb8855a: 1.51x sdpa against 1.42x); here alone, on the
// TMA kernel with the split prologue.
extern "C" __global__ void __launch_bounds__(384, 1) prefill_attention_d128_hopper_pingpong(PA_PARAMS, const void* __restrict__ kv_map) {
    wait_for_previous_kernel();
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    prefill_attention_hopper_body<128, 3, 232, true>(PA_ARGS, kv_map);
#else
    __trap();
#endif
}
