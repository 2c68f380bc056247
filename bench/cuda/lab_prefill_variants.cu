// Lab-only configurations of prefill_attention.cu's Hopper kernel, appended to it by
// lab_prefill_attention.py and named in its HOPPER_VARIANTS; none at present. Those timed before
// (cp.async copies, intra-warpgroup overlap, ping-pong, early scores, the split prologue that is
// hifc's now, the online softmax in four independent partials, persistent CTAs, ping-pong alone on
// the TMA kernel) are in bench/results/prefill-attention-h200.md and -h100.md with the commits that
// had them; the partials and the persistent CTAs are in commit 7b76231, ping-pong alone in af44609.
