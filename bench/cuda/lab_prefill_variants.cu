// Lab-only configurations of prefill_attention.cu's Hopper kernel, appended to it by
// lab_prefill_attention.py and named in its HOPPER_VARIANTS; none at present. Those timed before
// (cp.async copies, intra-warpgroup overlap, ping-pong, early scores, the split prologue, the online
// softmax in four independent partials, persistent CTAs over 8-token copies, ping-pong alone on
// the TMA kernel, and the FlashAttention-3 schedule with boxes of 8 and of whole blocks,
// persistent CTAs in a snake order over it and the epilogue's 16-byte stores, all three hifc's
// now) are in bench/results/prefill-attention-h200.md and -h100.md with the commits that had them.

