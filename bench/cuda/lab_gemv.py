# Skinny decode products (Sources/CUDA/Kernels/gemv.cu): y[m, n] fp32 = x[m, k] bf16 · W[n, k]ᵀ bf16
# for m <= 16, checked against a float64 torch reference on fresh random inputs (outputs poisoned
# with NaN first), then timed for the 8B Llama shapes beside torch F.linear (bf16, cuBLAS) against
# the weight-read roofline (1 GiB device-to-device copy, bytes read plus written).
# Every timed call reads a different copy of the weights, with the copies together larger than
# L2, so nothing is served from cache that a real decode step would read from HBM.
#
# Usage (GPU machine): python3 bench/cuda/lab_gemv.py [--kernels DIR] [--json FILE] [--quick] [--ms 1,16]
#   --kernels: directory with common.cuh and gemv.cu (default Sources/CUDA/Kernels)
#   --quick:   only the kernel configuration the Swift launcher uses, no sweep
#   --ms:      the row counts to time (default 1,2,4,8,16)
#   --only:    check and time only the configurations whose name matches this regular expression
#              (and the launcher's kernels), so that a lab variant that hangs or traps stops only its own runs
#   --profile: launch each m = 16 configuration once on gate_up's shape, for Nsight Compute, and stop
#   --gated:   the gated (_silu) launch the Swift launcher picks against the plain one followed by
#              silu_mul_f32_to_bf16, on gate_up's shape: equal to the bit, and the time of each
#   --two-tiles-at-8: time the two-token-tile configurations (m <= 16) at m <= 8 too, so that the fixed
#              cost of one kernel is seen with 16 rows and with 8 (is the m = 16 cost the rows' or the kernel's?)
# bench/cuda/lab_gemv_variants.cu is appended to gemv.cu for lab-only configurations.
import argparse
import ctypes
import json
import math
import os
import re
import shutil
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernel_lab import KERNELS, Lab, copy_bandwidth_gbs, graph_ms, rel_err, with_variants  # noqa: E402

SHAPES = [("qkv", 6144, 4096), ("o", 4096, 4096), ("gate_up", 28672, 4096), ("down", 4096, 14336),
          ("k or v", 1024, 4096), ("14336x4096", 14336, 4096), ("lm_head", 128256, 4096)]
LAYER = ["qkv", "o", "gate_up", "down"]
MS = [1, 2, 4, 8, 16]
HERE = os.path.dirname(os.path.abspath(__file__))
NAME = re.compile(r"gemv_bf16_t(\d)r(\d)u(\d)p(\d)h(\d)(_b8)?$")


def variants(lab):
    out = []
    for name in lab.functions:
        mt = NAME.match(name)
        if mt:
            t, r, u, p, h = map(int, mt.groups()[:5])
            out.append(dict(name=name, t=t, r=r, u=u, p=p, h=h, maxw=8 if mt.group(6) else 16))
    return sorted(out, key=lambda v: v["name"])


def launcher_choice(lab, m, n, sms):
    """(kernel, feature rows per CTA, warps): what SkinnyGEMM.swift picks (keep the two in step):
    the usual launch, or a leaner one where only the leaner one fits in one wave of resident CTAs."""
    def fits(name, features, warps):
        blocks = ctypes.c_int()
        lab._check(lab.cuda.cuOccupancyMaxActiveBlocksPerMultiprocessor(ctypes.byref(blocks), lab.functions[name], 32 * warps,
                                                                        ctypes.c_size_t(0)), "cuOccupancyMaxActiveBlocksPerMultiprocessor")
        return (n + features - 1) // features <= max(1, blocks.value) * sms
    if m <= 8:
        usual, lean = ("gemv_bf16_t1r1u4p1h1", 16, 8), ("gemv_bf16_t1r1u2p1h1", 16, 8)
        return lean if not fits(*usual) and fits(*lean) else usual
    wide = ("gemv_bf16_t2r2u2p1h1", 32, 16)
    if fits(*wide):
        return wide
    busy, four = 12 * sms, (n + 63) // 64
    if four * 4 >= busy:
        return ("gemv_bf16_t2r4u1p1h1_b8", 64, 4)
    if four * 8 >= busy and fits("gemv_bf16_t2r4u1p1h1_b8", 64, 8):
        return ("gemv_bf16_t2r4u1p1h1_b8", 64, 8)
    return ("gemv_bf16_t2r2u2p1h1", 32, 8)


def run(lab, v, x, w, y, warps):
    m, k = x.shape
    n = w.shape[0]
    rows = 16 * v["r"]
    lab.launch(v["name"], ((n + rows - 1) // rows,), (32 * warps,), [x, w, y, m, n, k])


def check(lab, vs):
    failures = 0
    worst = {}
    cases = [(1, 1000, 576), (3, 1000, 576), (16, 1000, 576), (1, 1000, 4096), (3, 1000, 4096), (16, 1000, 4096),
             (5, 333, 200), (8, 1024, 4104), (11, 4096, 14336), (16, 6144, 4096)]
    for (m, n, k) in cases:
        x = (torch.randn(m, k, device="cuda")).to(torch.bfloat16)
        w = (torch.randn(n, k, device="cuda") * 0.05).to(torch.bfloat16)
        ref = x.double() @ w.double().T
        for v in vs:
            if m > 8 * v["t"]:
                continue
            for warps in (1, 4, 8, 16):
                if warps > v["maxw"]:
                    continue
                y = torch.full((m, n), float("nan"), device="cuda")
                run(lab, v, x, w, y, warps)
                torch.cuda.synchronize()
                err = rel_err(y, ref)
                # One warp keeps a single accumulator chain over all of k: on the H100 the tensor
                # cores' fp32 accumulation drifts to 1.6e-5 over 14336 products. The launcher
                # uses 8-16 warps, i.e. 8-16 partial sums, and stays near 1e-6.
                tol = 3e-5 if warps == 1 else 1e-5
                key = (m, n, k)
                if warps > 1:
                    worst[key] = max(worst.get(key, 0.0), err)
                if not err < tol:
                    failures += 1
                    print(f"FAIL {v['name']} warps {warps} m={m} n={n} k={k}: err {err:.3e}")
    for (m, n, k), e in worst.items():
        print(f"check m={m:2d} n={n:5d} k={k:5d}: worst rel err over variants and 4-16 warps {e:.2e} {'ok' if e < 1e-5 else 'FAIL'}")
    return failures


def lab_dir(kernels):
    """gemv.cu with the lab-only variants, and elementwise.cu as it is."""
    d = with_variants(kernels, "gemv", os.path.join(HERE, "lab_gemv_variants.cu"))
    shutil.copy(os.path.join(kernels, "elementwise.cu"), d)
    return d


def profile(lab, vs):
    """One launch of every m = 16 configuration on gate_up's shape, and of the m = 8 launch (for ncu)."""
    for (sname, n, k) in SHAPES:
        if sname != "gate_up":
            continue
        x = (torch.rand(16, k, device="cuda") - 0.5).to(torch.bfloat16)
        w = (torch.rand(n, k, device="cuda") - 0.5).to(torch.bfloat16)
        y = torch.empty(16, n, device="cuda")
        for v in vs:
            if v["t"] == 2:
                for warps in (4, 8, 16):
                    if warps <= v["maxw"]:
                        run(lab, v, x, w, y, warps)
        x8 = x[:8].contiguous()
        run(lab, next(v for v in vs if v["name"] == "gemv_bf16_t1r1u4p1h1"), x8, w, y, 8)
        torch.cuda.synchronize()


def gated(lab, ms_list, sms):
    """The launcher's gated kernel vs its plain kernel + silu_mul on gate_up (n = 28672, k = 4096)."""
    n, k = 28672, 4096
    inter = n // 2
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    copies = max(1, math.ceil(3 * l2 / (n * k * 2)))
    ws = [(torch.rand(n, k, device="cuda") - 0.5).to(torch.bfloat16) for _ in range(copies)]
    failures = 0
    for m in ms_list:
        name, features, warps = launcher_choice(lab, m, n, sms)
        x = (torch.rand(m, k, device="cuda") - 0.5).to(torch.bfloat16)
        y = torch.empty(m, n, device="cuda")
        a = torch.empty(m, inter, dtype=torch.bfloat16, device="cuda")
        b = torch.empty(m, inter, dtype=torch.bfloat16, device="cuda")
        it = [0]

        def nxt():
            it[0] += 1
            return ws[it[0] % copies]

        def plain(w=None):
            w = nxt() if w is None else w
            lab.launch(name, ((n + features - 1) // features,), (32 * warps,), [x, w, y, m, n, k])
            lab.launch("silu_mul_f32_to_bf16", (max(1, min((m * inter // 4 + 255) // 256, 65535)),), (256,), [y, y[:, inter:], n, a, inter, m])

        def fused(w=None):
            w = nxt() if w is None else w
            lab.launch(name + "_silu", ((inter + features // 2 - 1) // (features // 2),), (32 * warps,), [x, w, b, m, n, k])
        a.fill_(float("nan")); b.fill_(float("nan"))
        plain(ws[0]); fused(ws[0])
        torch.cuda.synchronize()
        differ = int((a.view(torch.int16) != b.view(torch.int16)).sum())
        failures += 1 if differ else 0
        tp, tf = graph_ms(plain), graph_ms(fused)
        print(f"gated gate_up m={m:2d} ({name} w{warps}): product + silu_mul {tp * 1000:6.1f} us, gated {tf * 1000:6.1f} us "
              f"({(tp - tf) * 1000:+.1f} us); {differ} elements differ")
    return failures


def fixed_cost_table(results, ms_list):
    """Each configuration's time split into a fixed cost and a streaming rate, from the two shapes
    that launch the same CTAs and differ only in k (o: 4096x4096, down: 4096x14336): rate = the
    extra bytes over the extra time, fixed = o's time less its bytes at that rate. The fixed cost
    is what a launch adds whatever its size (ramp, drain, the reduction and epilogue, the
    boundary of the graph's launches); the rate is how fast its weights stream once under way."""
    print("\nfixed cost and streaming rate per configuration (from o 4096x4096 and down 4096x14336):")
    small, large = ("o", 4096, 4096), ("down", 4096, 14336)
    extra = (large[1] * large[2] - small[1] * small[2]) * 2
    for m in ms_list:
        times = {}
        for r in results:
            if r["m"] == m and r["shape"] in (small[0], large[0]):
                times.setdefault(r["what"], {})[r["shape"]] = r["ms"]
        rows = []
        for what, t in times.items():
            if len(t) == 2 and t[large[0]] > t[small[0]]:
                rate = extra / ((t[large[0]] - t[small[0]]) * 1e-3)
                rows.append((t[small[0]] - small[1] * small[2] * 2 / rate * 1e3, rate, what))
        for fixed, rate, what in sorted(rows):
            print(f"  m={m:2d} {what:32s} fixed {fixed * 1000:5.1f} us, streaming {rate / 1e9:5.0f} GB/s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernels", default=KERNELS)
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--gated", action="store_true")
    ap.add_argument("--ms", default=",".join(map(str, MS)))
    ap.add_argument("--only", default=None)
    ap.add_argument("--two-tiles-at-8", action="store_true")
    args = ap.parse_args()
    ms_list = [int(m) for m in args.ms.split(",")]
    lab = Lab(kernels_dir=lab_dir(args.kernels), modules=["gemv", "elementwise"])
    vs = variants(lab)
    if args.profile:
        profile(lab, vs)
        return
    if args.gated:
        sys.exit(1 if gated(lab, ms_list, torch.cuda.get_device_properties(0).multi_processor_count) else 0)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    bw = copy_bandwidth_gbs()
    print(f"{torch.cuda.get_device_name()} ({sms} SMs, L2 {l2 >> 20} MiB): d2d copy {bw:.0f} GB/s (read+write); torch {torch.__version__}")
    torch.manual_seed(1234)
    launched = {launcher_choice(lab, m, n, sms)[0] for (_, n, _) in SHAPES for m in ms_list}
    failures = check(lab, [v for v in vs if not args.only or v["name"] in launched or re.search(args.only, v["name"])])

    byname = {v["name"]: v for v in vs}
    results = []  # dicts: shape, m, what, ms
    for (sname, n, k) in SHAPES:
        wbytes = n * k * 2
        copies = max(1, min(20, math.ceil(3 * l2 / wbytes)))
        ws = [(torch.rand(n, k, device="cuda") - 0.5).to(torch.bfloat16) for _ in range(copies)]
        for m in ms_list:
            x = (torch.rand(m, k, device="cuda") - 0.5).to(torch.bfloat16)
            y = torch.empty(m, n, device="cuda")
            it = [0]

            def nxt():
                it[0] += 1
                return ws[it[0] % copies]
            tms = graph_ms(lambda: F.linear(x, nxt()))
            torch_row = dict(shape=sname, n=n, k=k, m=m, what="torch", ms=tms)
            results.append(torch_row)
            configs = []
            if args.quick:
                name, _, warps = launcher_choice(lab, m, n, sms)
                configs.append((byname[name], warps))
            else:
                choice = launcher_choice(lab, m, n, sms)
                for v in vs:
                    if m > 8 * v["t"] or (m <= 8 and v["t"] == 2 and not args.two_tiles_at_8):
                        continue
                    for warps in ((8, 16) if v["t"] == 1 else (4, 8, 16)):
                        chosen = (v["name"], warps) == (choice[0], choice[2])
                        if warps <= v["maxw"] and (chosen or not args.only or re.search(args.only, v["name"])):
                            configs.append((v, warps))
            for (v, warps) in configs:
                ms = graph_ms(lambda: run(lab, v, x, nxt(), y, warps))
                results.append(dict(shape=sname, n=n, k=k, m=m, what=f"{v['name']} w{warps}", ms=ms))
            # torch again after ours, its faster kept: the first launch timed after the weights
            # were written could run up to 17% slow (cuda-graphs-h200.md, 2026-12-06), which would
            # flatter ours against it.
            tms = torch_row["ms"] = min(tms, graph_ms(lambda: F.linear(x, nxt())))
            best = min((r for r in results if r["shape"] == sname and r["m"] == m and r["what"] != "torch"), key=lambda r: r["ms"])
            print(f"  {sname} m={m}: torch {tms:.4f} ms, best {best['ms']:.4f} ms ({best['what']}), roofline {wbytes / bw / 1e6:.4f} ms", flush=True)
        del ws
        torch.cuda.empty_cache()
        if args.json:  # after every shape, so a run cut short still leaves its data
            json.dump(dict(bw=bw, results=results), open(args.json, "w"), indent=0)

    def roof(n, k):
        return n * k * 2 / bw / 1e6

    # Each configuration summed over the four products of one layer, per m: picks one fixed config.
    if not args.quick:
        print("\nsum over one 8B layer (qkv+o+gate_up+down), ms, per configuration (best 6 per m):")
        for m in ms_list:
            tot = {}
            for r in results:
                if r["m"] == m and r["shape"] in LAYER and r["what"] != "torch":
                    tot.setdefault(r["what"], []).append(r["ms"])
            full = sorted((sum(v), w) for w, v in tot.items() if len(v) == 4)
            print(f"  m={m:2d}: " + ", ".join(f"{w} {t:.4f}" for t, w in full[:6]))

    if not args.quick:
        fixed_cost_table(results, ms_list)

    print(f"\nfinal table (roofline = weight bytes / {bw:.0f} GB/s; ours = launcher's choice, best = best swept config)")
    hdr = f"{'shape':>11} {'n x k':>12} {'m':>2} | {'torch ms':>8} {'GB/s':>5} {'x roof':>6} | {'ours ms':>8} {'GB/s':>5} {'x roof':>6} {'vs torch':>8}"
    if not args.quick:
        hdr += f" | {'best ms':>8} {'x roof':>6} best config"
    print(hdr)
    layer = {}
    for (sname, n, k) in SHAPES:
        for m in ms_list:
            rs = [r for r in results if r["shape"] == sname and r["m"] == m]
            t = next(r["ms"] for r in rs if r["what"] == "torch")
            name, _, warps = launcher_choice(lab, m, n, sms)
            o = next(r["ms"] for r in rs if r["what"] == f"{name} w{warps}")
            b = min((r for r in rs if r["what"] != "torch"), key=lambda r: r["ms"])
            rf = roof(n, k)
            gb = n * k * 2 / 1e6
            line = (f"{sname:>11} {n:>6}x{k:<5} {m:>2} | {t:8.4f} {gb / t:5.0f} {t / rf:6.2f} | {o:8.4f} {gb / o:5.0f} {o / rf:6.2f} {t / o:7.2f}x")
            if not args.quick:
                line += f" | {b['ms']:8.4f} {b['ms'] / rf:6.2f} {b['what']}"
            print(line)
            if sname in LAYER:
                acc = layer.setdefault(m, [0.0, 0.0, 0.0])
                acc[0] += t; acc[1] += o; acc[2] += rf
    for m in ms_list:
        t, o, rf = layer[m]
        print(f"one 8B layer (qkv+o+gate_up+down) m={m:2d}: torch {t:.4f} ms = {t / rf:.2f}x roofline, ours {o:.4f} ms = {o / rf:.2f}x roofline ({rf:.4f} ms)")
    print("correctness failures:", failures)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
