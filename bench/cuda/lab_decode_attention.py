# Paged decode attention (Sources/CUDA/Kernels/attention.cu) on the GPU against a float64 torch
# reference on fresh random inputs, and its time against the KV-read roofline (1 GiB
# device-to-device copy, bytes read plus written): the 8B Llama layer shape at several batches
# and contexts, each kernel variant at several context splits.
# Usage (GPU machine): python3 bench/cuda/lab_decode_attention.py [--kernels DIR] [--extra NAME ...]
import argparse
import ctypes
import sys

import torch

from kernel_lab import KERNELS, Lab, copy_bandwidth_gbs, graph_ms, rel_err


class Shape:
    def __init__(self, layers, kvh, hd, bt, qh):
        self.layers, self.kvh, self.hd, self.bt, self.qh = layers, kvh, hd, bt, qh
        self.te = kvh * hd
        self.block_elems = layers * 2 * bt * self.te  # a multiple of 2048 elements (4 KiB) here


def wide_name(shape, tokens_per_split=None):
    # As CUDAKernels.wideAttentionKernel picks it.
    g = shape.qh // shape.kvh
    g = 1 if g == 1 else 4 if g <= 4 else 8
    u = 4 if g <= 4 and shape.hd <= 128 else 2
    return f"paged_attention_wide_d{shape.hd}g{g}u{u}"


def splits_for(context, rows, kvh, sms):
    # As CUDAKernels.attentionSplits.
    wanted = max(2, sms * 2 // (rows * kvh))
    return max(1, min(wanted, (context + 127) // 128))


def old_name(shape):
    g = shape.qh // shape.kvh
    return "paged_attention_partial_" + ("e4g4" if shape.hd <= 128 and g <= 4 else "e4g8" if shape.hd <= 128 else "e8g8")


def make_call(lab, kernel, shape, q, pool, tables, row_table, ctx, max_ctx, layer, splits, scale):
    rows = q.shape[0]
    parts = rows * shape.qh * splits
    part_m = torch.empty(parts, device="cuda")
    part_l = torch.empty(parts, device="cuda")
    part_acc = torch.empty(parts * shape.hd, device="cuda")
    out = torch.full((rows, shape.qh * shape.hd), float("nan"), dtype=torch.bfloat16, device="cuda")
    tps = (max_ctx + splits - 1) // splits

    def call():
        lab.launch(kernel, (rows, shape.kvh, splits), (128,),
                   [q, shape.qh * shape.hd, pool, tables, tables.shape[1], row_table, ctx, part_m, part_l, part_acc,
                    shape.qh, shape.kvh, shape.hd, layer, shape.bt, ctypes.c_long(shape.block_elems), tps, scale])
        lab.launch("paged_attention_combine", (rows, shape.qh), (shape.hd,), [part_m, part_l, part_acc, out, shape.qh, shape.hd, splits])
    return out, call


def reference(shape, q, pool, tables, ctx, layer, scale):
    outs = []
    for r in range(q.shape[0]):
        n = int(ctx[r])
        per = pool.view(-1, shape.layers, 2, shape.bt, shape.kvh, shape.hd)[tables[r].long()][:, layer]
        k = per[:, 0].reshape(-1, shape.kvh, shape.hd)[:n].double()
        v = per[:, 1].reshape(-1, shape.kvh, shape.hd)[:n].double()
        qr = q[r].view(shape.qh, shape.hd).double()
        g = shape.qh // shape.kvh
        s = torch.einsum("hd,nhd->hn", qr, k.repeat_interleave(g, dim=1)) * scale
        outs.append(torch.einsum("hn,nhd->hd", torch.softmax(s, dim=-1), v.repeat_interleave(g, dim=1)).reshape(-1))
    return torch.stack(outs)


def inputs(shape, batch, context, seed):
    torch.manual_seed(seed)
    nb = (context + shape.bt - 1) // shape.bt
    pool = (torch.rand(batch * nb, shape.block_elems, device="cuda") - 0.5).to(torch.bfloat16)
    tables = torch.randperm(batch * nb, device="cuda", dtype=torch.int32).view(batch, nb).contiguous()
    lens = [max(1, context - 37 * i) for i in range(batch)]
    ctx = torch.tensor(lens, dtype=torch.int32, device="cuda")
    row_table = torch.arange(batch, dtype=torch.int32, device="cuda")
    q = torch.rand(batch, shape.qh * shape.hd, device="cuda") - 0.5
    return pool, tables, ctx, row_table, q


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernels", default=KERNELS)
    ap.add_argument("--extra", nargs="*", default=[], help="more partial kernels (same parameters) to time for the 8B shape")
    args = ap.parse_args()
    lab = Lab(args.kernels, modules=["attention"])
    bw = copy_bandwidth_gbs()
    print(f"{torch.cuda.get_device_name()}: d2d copy {bw:.0f} GB/s (read+write)")
    failures = 0
    # Correctness: head dims, grouping, block sizes, odd lengths, several splits.
    for (hd, qh, kvh, bt, batch, context) in [(128, 32, 8, 64, 3, 700), (128, 8, 8, 16, 2, 100), (64, 14, 2, 16, 4, 33),
                                              (256, 16, 2, 32, 2, 300), (64, 24, 8, 128, 1, 1), (128, 32, 8, 64, 16, 257)]:
        shape = Shape(3, kvh, hd, bt, qh)
        pool, tables, ctx, row_table, q = inputs(shape, batch, context, 7 + hd + batch)
        ref = reference(shape, q, pool, tables, ctx, 1, hd ** -0.5)
        for splits in (1, 3, 8):
            for kernel in [wide_name(shape, (context + splits - 1) // splits)] + args.extra * (hd == 128 and qh // kvh == 4):
                out, call = make_call(lab, kernel, shape, q, pool, tables, row_table, ctx, context, 1, splits, hd ** -0.5)
                call()
                torch.cuda.synchronize()
                err = rel_err(out.float(), ref)
                ok = err < 8e-3
                failures += 0 if ok else 1
                print(f"check {kernel:32s} hd {hd:3d} heads {qh:2d}/{kvh} bt {bt:3d} batch {batch:2d} ctx {context:4d} splits {splits}: err {err:.2e} {'ok' if ok else 'FAIL'}")
    # Timing: the 8B layer shape.
    shape = Shape(32, 8, 128, 64, 32)
    table = []
    for batch, context in [(1, 2048), (1, 4096), (16, 2048), (16, 4096), (1, 32768), (64, 1024)]:
        pool, tables, ctx, row_table, q = inputs(shape, batch, context, 99)
        kv_bytes = int(ctx.sum()) * 2 * shape.te * 2
        roof = kv_bytes / bw / 1e6
        sms = torch.cuda.get_device_properties(0).multi_processor_count
        splits = splits_for(context, batch, shape.kvh, sms)
        tps = (context + splits - 1) // splits
        kernel = wide_name(shape, tps)
        out, call = make_call(lab, kernel, shape, q, pool, tables, row_table, ctx, context, 5, splits, 0.088)
        ms = graph_ms(call)
        line = (f"{'as hifc picks: ' + kernel:46s} batch {batch:2d} context {context:5d}: {ms * 1000:7.1f} us at {splits:3d} splits, "
                f"{kv_bytes / ms / 1e6:5.0f} GB/s of KV, {ms / roof:5.2f}x roofline")
        print(line)
        table.append(line)
        for kernel in [old_name(shape), "paged_attention_wide_d128g4u4"] + args.extra:
            best = None
            for tps in (64, 128, 256, 512, 1024, 2048, 4096):
                if tps > context and tps != 64:
                    continue
                splits = (context + tps - 1) // tps
                if batch * shape.kvh * splits > 65535 * 8:
                    continue
                out, call = make_call(lab, kernel, shape, q, pool, tables, row_table, ctx, context, 5, splits, 0.088)
                ms = graph_ms(call)
                if best is None or ms < best[0]:
                    best = (ms, splits, tps)
            ms, splits, tps = best
            line = (f"{kernel:46s} batch {batch:2d} context {context:5d}: best {ms * 1000:7.1f} us at {splits:3d} splits ({tps:4d} tokens), "
                    f"{kv_bytes / ms / 1e6:5.0f} GB/s of KV, {ms / roof:5.2f}x roofline")
            print(line)
            table.append(line)
        del pool
        torch.cuda.empty_cache()
    print("\n".join(["", "summary:"] + table))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
