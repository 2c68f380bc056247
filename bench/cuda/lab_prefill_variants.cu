// Lab-only configurations of prefill_attention.cu's Hopper kernel, appended to it by
// lab_prefill_attention.py and named in its HOPPER_VARIANTS; none at present. The variants timed
// before (cp.async copies, intra-warpgroup overlap, ping-pong, a prologue that had the copying warp
// look up three tiles' blocks before its share of Q, early scores, and the split prologue that is
// hifc's now) are in bench/results/prefill-attention-h200.md.
