# Paged decode attention (Sources/CUDA/Kernels/attention.cu) on the GPU against a float64 torch
# reference on fresh random inputs, and its time against the KV-read roofline (1 GiB
# device-to-device copy, bytes read plus written), for the 8B Llama layer shape.
# Usage (GPU machine): python3 bench/cuda/lab_decode_attention.py
import ctypes
import sys

import torch

from kernel_lab import Lab, copy_bandwidth_gbs, graph_ms, rel_err

LAYERS, KVH, HD, BT, QH = 32, 8, 128, 64, 32
TE = KVH * HD
BLOCK_ELEMS = LAYERS * 2 * BT * TE  # already a multiple of 2048 elements (4 KiB)


def splits_for(max_ctx, rows, kvh, sms):
    work = max(1, rows * kvh)
    wanted = max(1, (sms * 4 + work - 1) // work)
    return max(1, min(wanted, (max_ctx + 63) // 64))


def run_attention(lab, q, pool, tables, row_table, ctx, max_ctx, layer, splits, scale):
    rows = q.shape[0]
    parts = rows * QH * splits
    part_m = torch.empty(parts, device="cuda")
    part_l = torch.empty(parts, device="cuda")
    part_acc = torch.empty(parts * HD, device="cuda")
    out = torch.empty(rows, QH * HD, dtype=torch.bfloat16, device="cuda")
    tps = (max_ctx + splits - 1) // splits

    def call():
        lab.launch("paged_attention_partial_e4g4", (rows, KVH, splits), (128,),
                   [q, QH * HD, pool, tables, tables.shape[1], row_table, ctx, part_m, part_l, part_acc,
                    QH, KVH, HD, layer, BT, ctypes.c_long(BLOCK_ELEMS), tps, scale])
        lab.launch("paged_attention_combine", (rows, QH), (HD,), [part_m, part_l, part_acc, out, QH, HD, splits])
    return out, call


def reference(q, pool, tables, ctx, layer, scale):
    outs = []
    for r in range(q.shape[0]):
        n = int(ctx[r])
        blocks = tables[r].long()
        per = pool.view(-1, LAYERS, 2, BT, KVH, HD)[blocks][:, layer]  # [nb, 2, BT, KVH, HD]
        k = per[:, 0].reshape(-1, KVH, HD)[:n].double()
        v = per[:, 1].reshape(-1, KVH, HD)[:n].double()
        qr = q[r].view(QH, HD).double()
        kk = k.repeat_interleave(QH // KVH, dim=1)  # [n, QH, HD]
        vv = v.repeat_interleave(QH // KVH, dim=1)
        s = torch.einsum("hd,nhd->hn", qr, kk) * scale
        p = torch.softmax(s, dim=-1)
        outs.append(torch.einsum("hn,nhd->hd", p, vv).reshape(-1))
    return torch.stack(outs)


def main():
    lab = Lab(modules=["attention"])
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    bw = copy_bandwidth_gbs()
    print(f"{torch.cuda.get_device_name()}: d2d copy {bw:.0f} GB/s (read+write)")
    torch.manual_seed(1234)
    failures = 0
    for batch, context in [(1, 100), (3, 700), (1, 4096), (16, 4096), (1, 32768)]:
        nb = (context + BT - 1) // BT
        pool = (torch.rand(batch * nb, BLOCK_ELEMS, device="cuda") - 0.5).to(torch.bfloat16)
        tables = torch.randperm(batch * nb, device="cuda", dtype=torch.int32).view(batch, nb).contiguous()
        # Varied lengths per row: the longest is `context`.
        ctx = torch.tensor([context - 37 * i if context - 37 * i > 0 else context for i in range(batch)], dtype=torch.int32, device="cuda")
        row_table = torch.arange(batch, dtype=torch.int32, device="cuda")
        q = (torch.rand(batch, QH * HD, device="cuda") - 0.5)
        scale = HD ** -0.5
        splits = splits_for(context, batch, KVH, sms)
        out, call = run_attention(lab, q, pool, tables, row_table, ctx, context, 5, splits, scale)
        call()
        torch.cuda.synchronize()
        check_rows = list(range(min(batch, 4)))
        ref = reference(q[check_rows], pool, tables[check_rows], ctx[check_rows], 5, scale)
        err = rel_err(out[check_rows].float(), ref)
        ok = err < 8e-3
        failures += 0 if ok else 1
        ms = graph_ms(call)
        kv_bytes = int(ctx.sum()) * 2 * TE * 2
        roof = kv_bytes / bw / 1e6
        print(f"decode attention batch {batch:2d} context {context:5d} splits {splits:3d}: err {err:.2e} {'ok' if ok else 'FAIL'}  "
              f"{ms * 1000:8.1f} us  {kv_bytes / ms / 1e6:6.0f} GB/s of KV  {ms / roof:5.2f}x roofline")
        del pool
        torch.cuda.empty_cache()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
