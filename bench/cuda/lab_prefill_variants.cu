// Lab-only configurations of prefill_attention.cu's Hopper kernel, appended to it by
// lab_prefill_attention.py and named in its HOPPER_VARIANTS. The variants timed before (cp.async
// copies, intra-warpgroup overlap, ping-pong, a prologue that had the copying warp look up three
// tiles' blocks before its share of Q, early scores, and the split prologue that is hifc's now) are
// in bench/results/prefill-attention-h200.md.

// The online softmax's row maxima and sums in four independent partials (pa_online_softmax's ILP).
extern "C" __global__ void __launch_bounds__(384, 1) prefill_attention_d128_hopper_ilp(PA_PARAMS, const void* __restrict__ kv_map) {
    wait_for_previous_kernel();
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    prefill_attention_hopper_body<128, 3, 232, true>(PA_ARGS, kv_map);
#else
    __trap();
#endif
}
