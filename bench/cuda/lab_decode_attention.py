# Paged decode attention (Sources/CUDA/Kernels/attention.cu) on the GPU against a float64 torch
# reference on fresh random inputs, and its time against the KV-read roofline (1 GiB
# device-to-device copy, bytes read plus written): the 8B Llama layer shape at several batches
# and contexts, each kernel variant at several context splits, the whole attention timed (the
# partial kernel and, where one runs, the combine kernel).
# Usage (GPU machine, from bench/cuda):
#   python3 lab_decode_attention.py [--kernels DIR] [--baseline DIR] [--quick] [--bf16]
# --quick: the checks at three shapes and the timing of the decode step's shape only (8B layer,
# batch 16 and 1, 8192-token contexts), about a minute. --bf16: the bf16 pool only.
# --profile K1,K2: no checks or sweeps; each named kernel is launched 3 times on the fp8 decode
# step's shape (batch 16, 8192 tokens, the hifc split count), for a profiler (ncu -k) to pick up.
# --baseline names another Kernels directory holding the earlier paged_attention_wide_* kernels
# (commit 0612be2's; partial results, then paged_attention_combine), timed with their splits rule
# beside this one's in the same run.
# bench/cuda/lab_decode_variants.cu is appended to attention.cu for lab-only variants.
# Every check and timing runs over the bf16 pool and over the fp8 pool (E4M3 codes and an f32
# scale per token and KV head, README "FP8 KV cache"; the _fp8 kernels), side by side: bytes of KV
# a second against the same roofline, and the error against float64 attention over the values
# the pool stands for (codes times scales).
import argparse
import ctypes
import itertools
import os
import sys

import torch

from kernel_lab import KERNELS, Lab, copy_bandwidth_gbs, graph_ms, rel_err, settle, with_variants

HERE = os.path.dirname(os.path.abspath(__file__))
# Warps, keys per warp per stage, stages: paged_attention_decode_d* as CUDAKernels.decodeAttentionLaunch
# launches them, then the lab-only variants.
DECODE = {"paged_attention_decode_d64": (4, 16, 3), "paged_attention_decode_d128": (8, 16, 3), "paged_attention_decode_d256": (4, 16, 3)}
# name: (warps, keys, stages), from lab_decode_variants.cu.
LAB_VARIANTS = {"lab_decode_d128_w4k16s3": (4, 16, 3)}
DECODE_FP8 = {"paged_attention_decode_d64_fp8": (4, 16, 5), "paged_attention_decode_d128_fp8": (8, 16, 3),
              "paged_attention_decode_d256_fp8": (4, 16, 5)}
LAB_VARIANTS_FP8 = {}
# The splits of a (row, KV head) combined inside a thread block cluster, no combine launch: hifc's
# kernels at head dim 128 and exactly 2 splits.
CLUSTER = {"paged_attention_decode_d128_cluster2": (8, 16, 3), "paged_attention_decode_d128_fp8_cluster2": (8, 16, 3)}


def cluster_blocks(kernel):
    return int(kernel.rsplit("cluster", 1)[1]) if "_cluster" in kernel else 1


class Shape:
    def __init__(self, layers, kvh, hd, bt, qh, fp8=False):
        self.layers, self.kvh, self.hd, self.bt, self.qh, self.fp8 = layers, kvh, hd, bt, qh, fp8
        self.te = kvh * hd
        self.block_elems = layers * 2 * bt * self.te
        # fp8: a block's codes, then its scales ([layer][K|V][token][kv head] f32), rounded to 16 bytes.
        self.scale_offset = self.block_elems
        self.block_bytes = (self.block_elems + layers * 2 * bt * kvh * 4 + 15) // 16 * 16

    def kv_bytes(self, tokens):
        """Bytes of K and V (and fp8's scales) that `tokens` positions of one layer take."""
        return tokens * 2 * (self.te + 4 * self.kvh) if self.fp8 else tokens * 2 * self.te * 2


def decode_name(shape, splits=1):
    # As CUDAKernels.decodeAttentionLaunch picks it: at head dim 128 and 2 splits, the cluster form.
    cluster = "_cluster2" if shape.hd == 128 and splits == 2 else ""
    return f"paged_attention_decode_d{shape.hd}" + ("_fp8" if shape.fp8 else "") + cluster


def decode_smem(hd, warps, keys, stages, fp8=False):
    # As CUDAKernels.decodeAttentionLaunch: bf16, Q's m16 tile then the K/V stages; fp8, stages of
    # K and V codes and their scales.
    if fp8:
        return stages * (2 * hd + 8) * warps * keys
    return 16 * hd * 2 + stages * 2 * warps * keys * hd * 2


def splits_for(context, rows, kvh, sms, resident=1):
    # As CUDAKernels.attentionSplits, `resident` blocks of the decode kernel to a multiprocessor:
    # blocks for half the places at least.
    work = rows * kvh
    places = sms * max(1, resident)
    wanted = max(places // (2 * work), min(places // work, context // 2048), (context + 8191) // 8192)
    return max(1, min(wanted, (context + 127) // 128))


def resident_blocks(lab, shape, kernel=None):
    # As CUDAKernels.decodeAttentionResidency: the split form's blocks on one multiprocessor (of
    # hifc's kernel for the shape, or of the lab variant `kernel`).
    kernel = kernel or decode_name(shape)
    warps, keys, stages = {**DECODE, **DECODE_FP8, **LAB_VARIANTS, **LAB_VARIANTS_FP8}[kernel]
    return lab.resident_blocks(kernel, 32 * warps, decode_smem(shape.hd, warps, keys, stages, shape.fp8))


def main_splits_for(context, rows, kvh, sms):
    # CUDAKernels.attentionSplits of the wide kernels (0612be2), for the baseline.
    wanted = max(2, sms * 2 // (rows * kvh))
    return max(1, min(wanted, (context + 127) // 128))


def baseline_name(shape):
    g = shape.qh // shape.kvh
    g = 1 if g == 1 else 4 if g <= 4 else 8
    return f"paged_attention_wide_d{shape.hd}g{g}u{4 if g <= 4 and shape.hd <= 128 else 2}"


class Call:
    """One attention: inputs bound, scratch and output allocated; the decode kernel writes the
    output itself at one split, otherwise paged_attention_combine runs after it. `old`: main's
    kernel, which always leaves the output to the combine."""

    def __init__(self, lab, kernel, shape, q, pool, tables, row_table, ctx, max_ctx, layer, splits, scale, old=False):
        rows = q.shape[0]
        parts = rows * shape.qh * splits
        self.part_m = torch.empty(parts, device="cuda")
        self.part_l = torch.empty(parts, device="cuda")
        self.part_acc = torch.empty(parts * shape.hd, device="cuda")
        self.out = torch.full((rows, shape.qh * shape.hd), float("nan"), dtype=torch.bfloat16, device="cuda")
        tps = (max_ctx + splits - 1) // splits
        stride = shape.block_bytes if shape.fp8 else shape.block_elems
        args = [q, shape.qh * shape.hd, pool, tables, tables.shape[1], row_table, ctx, self.part_m, self.part_l, self.part_acc,
                shape.qh, shape.kvh, shape.hd, layer, shape.bt, ctypes.c_long(stride), tps, scale]
        warps, keys, stages = {**DECODE, **LAB_VARIANTS, **DECODE_FP8, **LAB_VARIANTS_FP8, **CLUSTER}.get(kernel, (0, 0, 0))
        if old:
            shared, threads, combine = 0, 128, True
        else:
            args += [0]  # window: none (the kernels took no window before the sliding-window families)
            args += [self.out, 1 << 30]  # fresh_tokens: every position counts as just written (no PDL here anyway)
            if shape.fp8:
                args += [ctypes.c_long(shape.scale_offset)]
            shared, threads = decode_smem(shape.hd, warps, keys, stages, shape.fp8), 32 * warps
            combine = splits > 1 and cluster_blocks(kernel) == 1
        cargs = [self.part_m, self.part_l, self.part_acc, self.out, shape.qh, shape.hd, splits]

        def call():
            lab.launch(kernel, (rows, shape.kvh, splits), (threads,), args, shared=shared)
            if combine:
                lab.launch("paged_attention_combine", (rows, shape.qh), (shape.hd,), cargs)
        self.call = call


def launches(call):
    """Whether a call launches (a cluster kernel may not fit the GPU's clusters); says why not."""
    try:
        call.call()
        torch.cuda.synchronize()
        return True
    except RuntimeError as e:
        print(f"cannot launch: {e}")
        return False


def reference(shape, q, values, tables, ctx, layer, scale):
    # values: what the pool stands for, [blocks, layers, K|V, block tokens, KV heads, head dim].
    outs = []
    for r in range(q.shape[0]):
        n = int(ctx[r])
        per = values[tables[r].long()][:, layer]
        k = per[:, 0].reshape(-1, shape.kvh, shape.hd)[:n].double()
        v = per[:, 1].reshape(-1, shape.kvh, shape.hd)[:n].double()
        qr = q[r].view(shape.qh, shape.hd).double()
        g = shape.qh // shape.kvh
        s = torch.einsum("hd,nhd->hn", qr, k.repeat_interleave(g, dim=1)) * scale
        outs.append(torch.einsum("hn,nhd->hd", torch.softmax(s, dim=-1), v.repeat_interleave(g, dim=1)).reshape(-1))
    return torch.stack(outs)


def fp8_pool(shape, x):
    """The fp8 pool of the values x [blocks, layers, 2, bt, kvh, hd] (float), coded as the writers
    code them: scale amax / 448 per row, codes x · 448 / amax rounded to E4M3. Answers the pool
    (bytes) and the values it stands for."""
    amax = x.abs().amax(-1, keepdim=True)
    inv = torch.where(amax > 0, 448.0 / amax, torch.zeros_like(amax))
    codes = (x * inv).clamp(-448, 448).to(torch.float8_e4m3fn)
    scales = (amax / 448.0).squeeze(-1).contiguous()
    return pack_fp8(shape, codes, scales), codes.float() * scales.unsqueeze(-1)


def pack_fp8(shape, codes, scales):
    blocks = codes.shape[0]
    pool = torch.zeros(blocks, shape.block_bytes, dtype=torch.uint8, device="cuda")
    pool[:, :shape.block_elems] = codes.reshape(blocks, -1).view(torch.uint8)
    pool[:, shape.scale_offset:shape.scale_offset + scales[0].numel() * 4] = scales.reshape(blocks, -1).view(torch.uint8)
    return pool


def inputs(shape, batch, context, seed, equal=False, spread=False, random_codes=False):
    # Rows of different lengths (context - 37 i), or with `equal` all of `context`, as in a decode
    # step of `hifc bench model`. Answers the pool (bf16 elements or fp8 bytes; over bf16 NaN in
    # the slots past each row's end), what its values stand for (for the reference; None with
    # `random_codes`), the tables, lengths, row table and q. `spread`: each K/V row's values times
    # 10^u, u uniform in [-3, 1], so that the rows' scales span four decades. `random_codes` (fp8,
    # for timing): random codes and scales, not coded from values, which is quicker for pools of
    # many GB.
    torch.manual_seed(seed)
    nb = (context + shape.bt - 1) // shape.bt
    dims = (batch * nb, shape.layers, 2, shape.bt, shape.kvh, shape.hd)
    if shape.fp8 and random_codes:
        # Random codes (no NaN: 0x7f, 0xff become 0x7e, 0xfe) and scales of values up to about 0.5.
        codes = torch.randint(0, 256, dims, dtype=torch.uint8, device="cuda")
        codes[(codes & 0x7F) == 0x7F] -= 1
        scales = (torch.rand(dims[:-1], device="cuda") + 0.5) / 896.0
        pool, values = pack_fp8(shape, codes.view(torch.float8_e4m3fn), scales), None
    else:
        x = torch.rand(dims, device="cuda").sub_(0.5)
        if spread:
            x *= 10.0 ** (torch.rand(dims[:-1] + (1,), device="cuda") * 4 - 3)
        if shape.fp8:
            pool, values = fp8_pool(shape, x)
        else:
            pool = x.to(torch.bfloat16).reshape(dims[0], -1)
            values = pool.view(dims)
    tables = torch.randperm(batch * nb, device="cuda", dtype=torch.int32).view(batch, nb).contiguous()
    lens = [context if equal else max(1, context - 37 * i) for i in range(batch)]
    ctx = torch.tensor(lens, dtype=torch.int32, device="cuda")
    if not shape.fp8:
        # The slots past each row's end in its last block hold NaN, as a pool's unwritten slots
        # may: no kernel may let them reach the output (their P is 0, but 0 · NaN is NaN).
        blocks, table_rows = pool.view(dims), tables.tolist()
        for r, n in enumerate(lens):
            for p in range(n, (n + shape.bt - 1) // shape.bt * shape.bt):
                blocks[table_rows[r][p // shape.bt], :, :, p % shape.bt] = float("nan")
    row_table = torch.arange(batch, dtype=torch.int32, device="cuda")
    q = torch.rand(batch, shape.qh * shape.hd, device="cuda") - 0.5
    return pool, values, tables, ctx, row_table, q


def profile(lab, kernels):
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    shape = Shape(32, 8, 128, 64, 32, True)
    pool, _, tables, ctx, row_table, q = inputs(shape, 16, 8192, 99, True, random_codes=True)
    splits = splits_for(8192, 16, shape.kvh, sms, resident_blocks(lab, shape))
    for kernel in kernels:
        c = Call(lab, kernel, shape, q, pool, tables, row_table, ctx, 8192, 5, splits, 0.088)
        for _ in range(3):
            c.call()
        torch.cuda.synchronize()
        print(f"profiled {kernel} at {splits} splits")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernels", default=KERNELS)
    ap.add_argument("--baseline", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--bf16", action="store_true", help="the bf16 pool only (checks and timings)")
    args = ap.parse_args()
    lab = Lab(with_variants(args.kernels, "attention", os.path.join(HERE, "lab_decode_variants.cu")), modules=["attention"])
    if args.profile:
        profile(lab, args.profile.split(","))
        return
    base = Lab(args.baseline, modules=["attention"]) if args.baseline else None
    bw = copy_bandwidth_gbs()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print(f"{torch.cuda.get_device_name()}: d2d copy {bw:.0f} GB/s (read+write), {sms} SMs")
    failures = 0
    # Correctness: head dims, grouping (1-8 query heads per KV head), block sizes, odd lengths,
    # several splits (some past the shorter rows' ends), each call made twice on a poisoned output.
    shapes = [(128, 32, 8, 64, 3, 700), (128, 8, 8, 16, 2, 100), (64, 14, 2, 16, 4, 33),
              (256, 16, 2, 32, 2, 300), (64, 24, 8, 128, 1, 1), (128, 32, 8, 64, 16, 257),
              (256, 64, 8, 16, 3, 129), (64, 8, 8, 64, 5, 520), (128, 16, 8, 128, 2, 1000),
              (128, 40, 8, 32, 3, 77), (256, 8, 8, 64, 2, 450), (64, 48, 8, 32, 2, 260)]
    if args.quick:
        shapes = [shapes[0], shapes[2], shapes[3]]
    # Each over bf16, over fp8, and over fp8 with rows whose scales span four decades.
    pools = [(False, False)] if args.bf16 else [(False, False), (True, False), (True, True)]
    for (hd, qh, kvh, bt, batch, context), (fp8, spread) in itertools.product(shapes, pools):
        shape = Shape(3, kvh, hd, bt, qh, fp8)
        pool, values, tables, ctx, row_table, q = inputs(shape, batch, context, 7 + hd + batch, spread=spread)
        ref = reference(shape, q, values, tables, ctx, 1, hd ** -0.5)
        variants = LAB_VARIANTS_FP8 if fp8 else LAB_VARIANTS
        kernels = [k for k in variants if hd == 128 and qh // kvh <= 8]
        for splits in (1, 2, 3, 8, 16, 24):
            for kernel in [decode_name(shape, splits)] + (kernels if splits in (1, 3, 8, 24) else []):
                c = Call(lab, kernel, shape, q, pool, tables, row_table, ctx, context, 1, splits, hd ** -0.5)
                if not launches(c):
                    continue
                errs = []
                for _ in range(2):
                    c.out.fill_(float("nan"))
                    c.call()
                    torch.cuda.synchronize()
                    errs.append(rel_err(c.out.float(), ref))
                ok = max(errs) < 8e-3
                failures += 0 if ok else 1
                print(f"check {kernel:40s}{' spread' if spread else '       '} hd {hd:3d} heads {qh:2d}/{kvh} bt {bt:3d} batch {batch:2d} "
                      f"ctx {context:4d} splits {splits:2d}: err {max(errs):.2e} {'ok' if ok else 'FAIL'}")
    print(f"correctness: {failures} failures")
    # Timing: the 8B layer shape.
    table = []
    # Each over bf16, then over fp8; (16, 8192=) and (1, 8192=) are the decode step of fp8-kv.md.
    for batch, context, equal, fp8 in [(b, c, e, f) for b, c, e in [(1, 2048, False), (16, 2048, False), (16, 4096, False), (16, 8192, True),
                                                                   (1, 8192, True), (1, 32768, False), (64, 1024, False)]
                                       if not args.quick or c == 8192 for f in ((False,) if args.bf16 else (False, True))]:
        shape = Shape(32, 8, 128, 64, 32, fp8)
        pool, _, tables, ctx, row_table, q = inputs(shape, batch, context, 99, equal, random_codes=True)
        kv_bytes = shape.kv_bytes(int(ctx.sum()))
        roof = kv_bytes / bw / 1e6

        def row(label, ms, splits, extra=""):
            line = (f"{'fp8 ' if fp8 else 'bf16'} {label:52s} batch {batch:2d} context {context:5d}{'=' if equal else ' '}: {ms * 1000:7.1f} us at {splits:3d} splits{extra}, "
                    f"{kv_bytes / ms / 1e6:5.0f} GB/s of KV, {ms / roof:5.2f}x roofline")
            print(line)
            table.append(line)

        splits = splits_for(context, batch, shape.kvh, sms, resident_blocks(lab, shape))
        picked = Call(lab, decode_name(shape, splits), shape, q, pool, tables, row_table, ctx, context, 5, splits, 0.088)
        settle(picked.call)
        rows = []  # (label, call, splits)
        if base and not fp8:
            main_splits = main_splits_for(context, batch, shape.kvh, sms)
            c = Call(base, baseline_name(shape), shape, q, pool, tables, row_table, ctx, context, 5, main_splits, 0.088, old=True)
            rows.append(("main picks: " + baseline_name(shape), c, main_splits))
        rows.append(("hifc picks: " + decode_name(shape, splits), picked, splits))
        if decode_name(shape, splits) != decode_name(shape):  # the cluster form against the plain kernel and the combine
            c = Call(lab, decode_name(shape), shape, q, pool, tables, row_table, ctx, context, 5, splits, 0.088)
            rows.append((decode_name(shape) + " + combine", c, splits))
        for kernel in (LAB_VARIANTS_FP8 if fp8 else LAB_VARIANTS):
            c = Call(lab, kernel, shape, q, pool, tables, row_table, ctx, context, 5, splits, 0.088)
            rows.append(("hifc's splits: " + kernel, c, splits))
        # Two rounds, each row's faster kept: the first row timed after a shape's pool was written
        # ran up to 17% slow on an H100 although settled for a second (2026-12-06: 50.2 against 43.8
        # us for the same launch timed in the sweep), which flattered every row timed after it.
        rounds = [[graph_ms(c.call) for _, c, _ in rows] for _ in range(2)]
        for (label, _, n), first, second in zip(rows, *rounds):
            row(label, min(first, second), n)
        candidates = [(baseline_name(shape), base, True)] if base and not fp8 else []
        for kernel, owner, old in candidates + [(k, lab, False) for k in [decode_name(shape)] + list(LAB_VARIANTS_FP8 if fp8 else LAB_VARIANTS)]:
            times = []
            for tps in (32, 64, 128, 256, 512, 1024, 2048, 4096):
                if tps > context and tps != 32:
                    continue
                splits = (context + tps - 1) // tps
                if splits > 512:
                    continue
                c = Call(owner, kernel, shape, q, pool, tables, row_table, ctx, context, 5, splits, 0.088, old=old)
                times.append((graph_ms(c.call), splits, tps))
            ms, splits, tps = min(times)
            sweep = " ".join(f"{s}:{t * 1000:.1f}" for t, s, _ in sorted(times, key=lambda x: x[1]))
            print(f"   sweep {kernel}: {sweep}")
            row(f"{kernel} best", ms, splits, f" ({tps} tokens)")
        del pool, c, picked
        torch.cuda.empty_cache()
    print("\n".join(["", "summary:"] + table))
    print(f"correctness: {failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
