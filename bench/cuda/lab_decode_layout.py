# Does the KV block layout cost decode attention bandwidth? The pool keeps a token's K (and V)
# for all KV heads together ([layer][K|V][token][kv head][dim]), so the block of one KV head
# reads 256-byte pieces 2 KiB apart. This times paged_attention_decode_d128 at one split on the
# 8B shape (16 sequences x 8 KV heads = 128 blocks) beside the same bytes and block count laid
# out with one KV head (128 sequences x 1 KV head, 4 query heads each), where every piece a
# block reads is contiguous 16 KiB; then each once more for Nsight Compute with --profile.
# Usage (GPU machine, from bench/cuda): python3 lab_decode_layout.py [--profile]
import os
import sys

import torch

from kernel_lab import Lab, copy_bandwidth_gbs, graph_ms, with_variants
from lab_decode_attention import HERE, Call, Shape, inputs, KERNELS

lab = Lab(with_variants(KERNELS, "attention", os.path.join(HERE, "lab_decode_variants.cu")), modules=["attention"])
bw = copy_bandwidth_gbs()
print(f"{torch.cuda.get_device_name()}: d2d copy {bw:.0f} GB/s (read+write)")
profile = "--profile" in sys.argv
for context in (2048, 4096):
    for rows, kvh, qh in ((16, 8, 32), (128, 1, 4)):
        shape = Shape(32, kvh, 128, 64, qh)
        pool, tables, ctx, row_table, q = inputs(shape, rows, context, 5)
        ctx.fill_(context)  # every block the same work, in both layouts
        c = Call(lab, "paged_attention_decode_d128", shape, q, pool, tables, row_table, ctx, context, 5, 1, 0.088)
        kv = int(ctx.sum()) * 2 * shape.te * 2
        if profile:
            c.call()
            torch.cuda.synchronize()
        else:
            ms = graph_ms(c.call)
            print(f"context {context}: {rows:3d} rows x {kvh} KV heads: {ms * 1000:6.1f} us, {kv / ms / 1e6:5.0f} GB/s of KV, "
                  f"{ms / (kv / bw / 1e6):.2f}x roofline")
        del pool
        torch.cuda.empty_cache()
