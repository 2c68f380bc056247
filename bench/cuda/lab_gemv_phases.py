# Where a skinny product's fixed cost goes: each CTA's phases, read from gemv.cu's lab probe
# (HIFC_GEMV_PLACEMENT_PROBE: %globaltimer at the CTA's start, past its wait, past its first chunk's
# arithmetic, once every warp's sums are staged, and at its exit), for the launch hifc picks at each m
# on the two shapes whose CTAs are the same and whose k differs (o: 4096x4096, down: 4096x14336).
# lab_gemv.py's fixed-cost table (o against down) finds each launch's time to be a fixed cost plus
# its weights at a streaming rate near the copy's, the fixed cost about 2.8 us at m = 1 and 4.7-5.2
# us at m = 16 on the H200 (gemv-h200.md, 2026-12-07); this splits that cost into:
#   gap:    the call's time (a CUDA graph of 20 calls, as lab_gemv.py times them) less its span, i.e.
#           the graph's boundary between one product's last exit and the next one's first start;
#   spread: the last CTA's start after the first's;
#   first:  a CTA's start to its warp 0's first chunk's arithmetic done (its first weights and x
#           in; median and worst over the CTAs);
#   loop:   first chunk done to every warp's sums staged (median, worst);
#   tail:   sums staged to the CTA's exit (the reduction and the stores; median, worst);
#   span:   the first start to the last exit;
#   idle:   how long a multiprocessor sits idle at the end, its last CTA's exit to the last exit of
#           all (mean and worst over the multiprocessors): the tail a grid of more CTAs than places
#           leaves (gate|up's 1792 CTAs at one row: 6.8 rounds of the 264 places).
# q|k|v and gate|up are timed too, for their tails (they launch other CTA counts than o and down).
# Usage (GPU machine, from bench/cuda): python3 lab_gemv_phases.py [--ms 1,8,16] [--configs NAME:WARPS,...]
#   --configs: these launches too, at every m they take (t2 kernels at m <= 16, t1 at m <= 8); kernels
#              that load ahead (p1) only, the ones the probe's first-chunk time is taken in.
import argparse
import ctypes
import math
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernel_lab import KERNELS, Lab, graph_ms  # noqa: E402
from lab_gemv import NAME, launcher_choice  # noqa: E402
from lab_placement import probed_kernels  # noqa: E402

SHAPES = [("o", 4096, 4096), ("down", 4096, 14336), ("qkv", 6144, 4096), ("gate_up", 28672, 4096)]
PHASES = ("start", "waited", "first", "staged", "end")


def phases(lab, grid):
    """Each CTA's probe times (ns) of the last launch, as a dict of lists by phase."""
    times = {p: lab.global_array(f"gemv_probe_{p}", ctypes.c_uint64, grid) for p in PHASES}
    times["sm"] = lab.global_array("gemv_probe_sm", ctypes.c_uint32, grid)
    return times


def us(ns):
    return ns / 1000.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernels", default=KERNELS)
    ap.add_argument("--ms", default="1,8,16")
    ap.add_argument("--configs", default="")
    args = ap.parse_args()
    lab = Lab(kernels_dir=probed_kernels(args.kernels), modules=["gemv", "norm_rope"])
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    extra = []
    for word in filter(None, args.configs.split(",")):
        name, _, warps = word.partition(":")
        parsed = NAME.match(name)
        if not parsed or not warps.isdigit() or parsed.group(4) != "1":
            raise SystemExit(f"--configs: {word!r} is not NAME:WARPS of a gemv_bf16_t<T>r<R>u<U>p1h<H> kernel")
        extra.append((name, 16 * int(parsed.group(2)), int(warps), int(parsed.group(1))))
    print(f"{torch.cuda.get_device_name(0)}, {sms} multiprocessors; times in us")
    print("| m | shape | launch | CTAs | call | gap | spread | first (median / worst) | loop (median / worst) | tail (median / worst) | span | idle (mean / worst) |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    torch.manual_seed(5)
    for sname, n, k in SHAPES:
        copies = max(2, math.ceil(3 * l2 / (n * k * 2)))
        ws = [(torch.rand(n, k, device="cuda") - 0.5).to(torch.bfloat16) for _ in range(copies)]
        for m in [int(v) for v in args.ms.split(",")]:
            x = (torch.rand(m, k, device="cuda") - 0.5).to(torch.bfloat16)
            y = torch.empty(m, n, device="cuda")
            name, features, warps = launcher_choice(lab, m, n, sms)
            launches = [(name, features, warps)] + [(e[0], e[1], e[2]) for e in extra if m <= 8 * e[3] and e[:3] != (name, features, warps)]
            for name, features, warps in launches:
                grid = (n + features - 1) // features
                calls = [0]

                def call():
                    calls[0] += 1
                    lab.launch(name, (grid,), (32 * warps,), [x, ws[calls[0] % copies], y, m, n, k])
                ms = graph_ms(call)
                p = phases(lab, grid)
                start0 = min(p["start"])
                span = max(p["end"]) - start0
                first = [f - s for f, s in zip(p["first"], p["start"])]
                loop = [st - f for st, f in zip(p["staged"], p["first"])]
                tail = [e - st for e, st in zip(p["end"], p["staged"])]
                last = {}
                for sm, e in zip(p["sm"], p["end"]):
                    last[sm] = max(last.get(sm, 0), e)
                idle = [max(p["end"]) - e for e in last.values()] + [span] * (sms - len(last))
                print(f"| {m} | {sname} | {name} x {warps} | {grid} | {ms * 1000:.1f} | {ms * 1000 - us(span):.1f} "
                      f"| {us(max(p['start']) - start0):.1f} | {us(statistics.median(first)):.1f} / {us(max(first)):.1f} "
                      f"| {us(statistics.median(loop)):.1f} / {us(max(loop)):.1f} | {us(statistics.median(tail)):.2f} / {us(max(tail)):.2f} "
                      f"| {us(span):.1f} | {us(statistics.mean(idle)):.1f} / {us(max(idle)):.1f} |", flush=True)
        ws.clear()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
