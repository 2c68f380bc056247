# The launches of `--layers` 8B decode layers as hifc's step makes them (each let in at the one
# before's wait, CUDA graph), with and without the add + RMSNorm kernels between the products: the
# lab that reproduces what whole steps showed (cuda-graphs-h200.md, "Dropping the decode norms"), a
# batch-16 step 15% slower without its norm kernels, where pairs of products (lab_placement.py) and
# chains of one product (lab_persistent.py) ran as fast or faster without them. With --attention it
# does: the o product let straight into gate|up after the attention (cuda-graphs-h200.md, "With the
# attention in the chain").
#
# A layer: add + RMSNorm, q|k|v (the plain product unless --rope),
# [the decode attention], o, add + RMSNorm, gate|up with SiLU, down; each product in the launch
# hifc's launcher picks, every layer its own weights (8 layers: 3.5 GB, far more than L2). Chains:
# with both norms, neither, only the one before q|k|v, only the one before gate|up; and the sum of
# each kernel timed alone. Times a layer, beside the four products' copy roofline.
#
# --attention: the decode attention between q|k|v and o, as the step launches it (2048-token
#   contexts, hifc's split rule and kernel, its split combine after it where it has one); without
#   it o reads a fixed input.
# --rope: q|k|v in the rotary form, as the step launches it: q rotated into the attention's input,
#   k and v into each row's current slot of the attention's pool (needs --attention). In whole steps
#   the norm left out before q|k|v is the one that costs (cuda-graphs-h200.md, 2026-12-07).
# --late qkv,o: those products in their _late twins (lab_chain_variants.cu), which let the kernel
#   after them in only at their exit.
# --gate-kernel: where a chain leaves a norm out, a one-block kernel that only waits and lets the
#   next in (a boundary without the norm's work).
# --copies-after-wait: the attention queues no K/V copies before its wait (fresh_tokens past any
#   context, as a prefill chunk has it).
# --uniform: every product in one launch form (t1r1u4 x 8 warps up to 8 rows, t2r2u2 x 16 warps at
#   16), so that no product's CTAs share a multiprocessor in a different number than the one before's.
# --carveout PERCENT: every product's, norm's and the combine's preferred shared memory carveout (the
#   attention asks for the most shared memory a multiprocessor has, so multiprocessors switch their
#   L1/shared split between it and the products unless these prefer the same).
# --carveout-attention: the attention's preferred carveout is --carveout's too.
# --attention-kernel NAME: a lab variant of the head-dim-128 decode kernel (lab_decode_variants.cu,
#   LAB_VARIANTS) in place of hifc's, split by hifc's rule at its own residency, the combine after it
#   where it splits. lab_decode_d128_w4k16s3 (100 KiB) with --carveout 57 --carveout-attention: every
#   kernel of the layer on the same 132 KiB shared / 124 KiB L1 split, which no kernel then changes.
# --only KEYS: those chains only (both, none, qkv, gate), and no kernel timed alone (for a trace
#   under kernel_trace.c: each chain is one CUDA graph).
#
# Usage (GPU machine): python3 bench/cuda/lab_layer_chain.py [--ms 1,8,16] [--layers 8] [--attention]
#   [--rope] [--uniform] [--late qkv,o] [--gate-kernel] [--copies-after-wait] [--carveout N] [--carveout-attention]
#   [--attention-kernel NAME] [--only both,qkv]
import argparse
import ctypes
import itertools
import os
import sys

import torch

from kernel_lab import KERNELS, Lab, add_norm_launch, copy_bandwidth_gbs, graph_ms, with_variants
from lab_decode_attention import DECODE, LAB_VARIANTS, Shape, cluster_blocks, decode_name, decode_smem, inputs, resident_blocks, splits_for
from lab_gemv import launcher_choice

HERE = os.path.dirname(os.path.abspath(__file__))
HIDDEN, QKV, INTER = 4096, 6144, 14336
CONTEXT = 2048
EPS = 1e-5
CHAINS = {"both norms": (True, True), "no norms": (False, False), "only the norm before q|k|v": (True, False),
          "only the norm before gate|up": (False, True)}
CHAIN_KEYS = {"both": "both norms", "none": "no norms", "qkv": "only the norm before q|k|v", "gate": "only the norm before gate|up"}


def attention_launch(lab, m, sms, layers, out, copies_after_wait, variant=None):
    """(launch(layer, pdl), rotary_args(layer)): the decode attention of m rows of CONTEXT positions
    over a bf16 pool of `layers` layers, writing `out` (bf16 [m, 32 * 128]), as
    CUDAKernels.pagedAttention launches it (split count by its rule, the split combine after it
    where the kernel leaves one), or with the lab kernel `variant` in its place; and the arguments
    after (x, w, y, m, n, k) with which the rotary q|k|v product writes that attention's q and each
    row's current K/V (CUDAKernels.skinnyRotaryLinear's)."""
    shape = Shape(layers, 8, 128, 64, 32)
    pool, _, tables, ctx, row_table, q = inputs(shape, m, CONTEXT, 11, equal=True)
    splits = splits_for(CONTEXT, m, shape.kvh, sms, resident_blocks(lab, shape, variant))
    kernel = variant or decode_name(shape, splits)
    warps, keys, stages = {**DECODE, **LAB_VARIANTS}.get(kernel, DECODE[decode_name(shape)])
    parts = m * shape.qh * splits
    part_m, part_l = torch.empty(parts, device="cuda"), torch.empty(parts, device="cuda")
    part_acc = torch.empty(parts * shape.hd, device="cuda")
    tps = (CONTEXT + splits - 1) // splits
    combine = splits > 1 and cluster_blocks(kernel) == 1

    def launch(layer, pdl):
        # fresh_tokens 1: as in a decode step, the older positions' copies may go before the wait;
        # past any context (--copies-after-wait), none may.
        fresh = 1 << 30 if copies_after_wait else 1
        lab.launch(kernel, (m, shape.kvh, splits), (32 * warps,),
                   [q, shape.qh * shape.hd, pool, tables, tables.shape[1], row_table, ctx, part_m, part_l, part_acc, shape.qh,
                    shape.kvh, shape.hd, layer, shape.bt, ctypes.c_long(shape.block_elems), tps, 0.088, 0, out, fresh],
                   shared=decode_smem(shape.hd, warps, keys, stages), pdl=pdl)
        if combine:
            lab.launch("paged_attention_combine", (m, shape.qh), (shape.hd,),
                       [part_m, part_l, part_acc, out, shape.qh, shape.hd, splits], pdl=pdl)
    print(f"| {m} | attention: {kernel}, {splits} splits{', then the combine' if combine else ''}"
          f"{', copies after its wait' if copies_after_wait else ''} | | | |")
    # Each row's token is its context's last position, in that row's last block.
    positions = ctx - 1
    slots = (tables.gather(1, (positions // shape.bt).long().unsqueeze(1)).squeeze(1) * shape.bt + positions % shape.bt).int()
    inv_freq = 1.0 / (500000.0 ** (torch.arange(0, shape.hd, 2, device="cuda").float() / shape.hd))

    def rotary_args(layer):
        return [positions, inv_freq, slots, q, pool, shape.qh, shape.kvh, shape.hd, layer, shape.bt, ctypes.c_long(shape.block_elems)]
    return launch, rotary_args


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ms", default="1,8,16")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--uniform", action="store_true")
    ap.add_argument("--attention", action="store_true")
    ap.add_argument("--rope", action="store_true")
    ap.add_argument("--late", default="")
    ap.add_argument("--gate-kernel", action="store_true")
    ap.add_argument("--only")
    ap.add_argument("--carveout", type=int)
    ap.add_argument("--carveout-attention", action="store_true")
    ap.add_argument("--attention-kernel", choices=sorted(LAB_VARIANTS))
    ap.add_argument("--copies-after-wait", action="store_true")
    args = ap.parse_args()
    if args.rope and not args.attention:
        ap.error("--rope writes K/V into the attention's pool: it needs --attention")
    if args.rope and "qkv" in args.late.split(","):
        ap.error("--late qkv has no rotary twin: take --rope or --late qkv, not both")
    if args.carveout_attention and (args.carveout is None or not args.attention):
        ap.error("--carveout-attention needs --carveout and --attention")
    if args.attention_kernel and not args.attention:
        ap.error("--attention-kernel needs --attention")
    kernels = with_variants(KERNELS, "gemv", os.path.join(HERE, "lab_chain_variants.cu"), also=("norm_rope", "attention"))
    if args.attention_kernel:
        kernels = with_variants(kernels, "attention", os.path.join(HERE, "lab_decode_variants.cu"), also=("gemv", "norm_rope"))
    lab = Lab(kernels_dir=kernels, modules=["gemv", "norm_rope"] + (["attention"] if args.attention else []))
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    if args.carveout is not None:
        for name, fn in lab.functions.items():
            attention = name.startswith(("paged_attention_decode", "lab_decode"))
            if name.startswith(("gemv_", "add_rmsnorm", "paged_attention_combine")) or (attention and args.carveout_attention):
                # CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT = 9
                lab._check(lab.cuda.cuFuncSetAttribute(fn, 9, args.carveout), f"carveout of {name}")
        print(f"preferred carveout {args.carveout}% for the products, norms{', the attention' if args.carveout_attention else ''} and the combine")
    bw = copy_bandwidth_gbs()
    layers = args.layers
    # (n, k) of the products asked to let their successor in at their exit (--late).
    late_products = {{"qkv": (QKV, HIDDEN), "o": (HIDDEN, HIDDEN)}[p] for p in args.late.split(",") if p}
    weight_bytes = 2 * HIDDEN * (QKV + HIDDEN + 2 * INTER + INTER)
    roof_us = weight_bytes / bw / 1e3
    print("lab_layer_chain.py " + " ".join(sys.argv[1:]))
    print(f"{torch.cuda.get_device_name(0)}, {sms} multiprocessors, d2d copy {bw:.0f} GB/s: a layer's four products' "
          f"roofline {roof_us:.1f} us; {layers} layers a chain")
    torch.manual_seed(3)

    def weights(n, k):
        return (torch.randn(layers, n, k, device="cuda") * 0.02).bfloat16()

    wqkv, wo, wgu, wdown = weights(QKV, HIDDEN), weights(HIDDEN, HIDDEN), weights(2 * INTER, HIDDEN), weights(HIDDEN, INTER)
    norm_w = (1 + 0.1 * torch.randn(HIDDEN, device="cuda")).bfloat16()
    print("| m | chain | us a layer | x roofline | against the first |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for m in [int(v) for v in args.ms.split(",")]:
        uniform = ("gemv_bf16_t1r1u4p1h1", 16, 8) if m <= 8 else ("gemv_bf16_t2r2u2p1h1", 32, 16)
        picks = {n: uniform if args.uniform else launcher_choice(lab, m, n, sms) for n in (QKV, HIDDEN, 2 * INTER)}
        norm, norm_threads = add_norm_launch(m, HIDDEN)
        total = torch.randn(m, HIDDEN, device="cuda")
        normed = torch.randn(m, HIDDEN, device="cuda").bfloat16()
        attention = torch.randn(m, HIDDEN, device="cuda").bfloat16()
        gated = torch.randn(m, INTER, device="cuda").bfloat16()
        y_qkv = torch.empty(m, QKV, device="cuda")
        y = torch.empty(m, HIDDEN, device="cuda")

        def product(n, k, x, w, out, silu=False, rotary=None, pdl=True):
            """rotary: the rotary form's arguments (its y is unused: out None)."""
            name, features, warps = picks[n]
            late = (n, k) in late_products
            suffix = "_silu" if silu else "_rope" if rotary else "_late" if late else ""
            y_arg = ctypes.c_uint64(0) if out is None else out
            lab.launch(name + suffix, ((n + features - 1) // features,), (32 * warps,), [x, w, y_arg, m, n, k] + (rotary or []), pdl=pdl)

        def add_norm(pdl=True):
            lab.launch(norm, (m,), (norm_threads,), [total, y, total, norm_w, normed, HIDDEN, EPS], pdl=pdl)

        attend, rotary_args = attention_launch(lab, m, sms, layers, attention, args.copies_after_wait, args.attention_kernel) if args.attention else (None, None)

        def qkv(l, pdl):
            if args.rope:
                product(QKV, HIDDEN, normed, wqkv[l], None, rotary=rotary_args(l), pdl=pdl)
            else:
                product(QKV, HIDDEN, normed, wqkv[l], y_qkv, pdl=pdl)

        def layer_launches(l, before_qkv, before_gate_up, pdl=True):
            """One layer's launches in the step's order (the norms where asked)."""
            gate = [lambda: lab.launch("lab_gate_kernel", (1,), (32,), [], pdl=pdl)] if args.gate_kernel else []
            return ([lambda: add_norm(pdl)] if before_qkv else gate) + [
                lambda: qkv(l, pdl)] + (
                [lambda: attend(l, pdl)] if attend else []) + [
                lambda: product(HIDDEN, HIDDEN, attention, wo[l], y, pdl=pdl)] + (
                [lambda: add_norm(pdl)] if before_gate_up else gate) + [
                lambda: product(2 * INTER, HIDDEN, normed, wgu[l], gated, silu=True, pdl=pdl),
                lambda: product(HIDDEN, INTER, gated, wdown[l], y, pdl=pdl)]

        def chain(norms):
            for l in range(layers):
                for launch in layer_launches(l, *norms):
                    launch()

        labels = [CHAIN_KEYS[key] for key in args.only.split(",")] if args.only else list(CHAINS)
        times = {label: graph_ms(lambda: chain(CHAINS[label])) * 1000 / layers for label in labels}

        def alone(i):
            """Launch i of a layer (both norms) timed by itself, each call on the next layer's weights, no early start."""
            calls = itertools.count()
            return graph_ms(lambda: layer_launches(next(calls) % layers, True, True, pdl=False)[i]()) * 1000

        base = times[labels[0]]
        for label, t in times.items():
            print(f"| {m} | {label} | {t:.1f} | {t / roof_us:.3f}x | {t / base:.3f} |")
        if args.only:
            continue
        alone_sum = sum(alone(i) for i in range(6 + (attend is not None)))
        print(f"| {m} | each kernel alone, summed (four products, two norms{', the attention' if attend else ''}) | {alone_sum:.1f} | {alone_sum / roof_us:.3f}x | {alone_sum / base:.3f} |")
        print(f"| {m} | launches: " + ", ".join(f"{n} rows {name} x {warps} warps" for n, (name, _, warps) in picks.items()) + " | | | |")


if __name__ == "__main__":
    main()
