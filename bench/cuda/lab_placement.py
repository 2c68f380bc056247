# Where the CTAs of a decode product land when the kernel before it lets it in early, against when
# it starts after that kernel has finished. The hypothesis it tests (cuda-graphs-h200.md, "Dropping
# the decode norms", 2026-12-06): a product let in while the product before it drains is placed on
# the multiprocessors as they free up, each filled to its residency (2-4 CTAs), so that a one-wave
# grid leaves the last multiprocessors to free up idle; memory-bound products (batch 1) hardly
# notice, while at batches 8 and 16 (bound by issue and latency) the product runs as much slower as
# multiprocessors stay idle, which would explain the 15-25% slower steps of every change that let a
# product in early at those batches.
#
# Usage (GPU machine): python3 bench/cuda/lab_placement.py [--kernels DIR] [--ms 1,8,16]
# For each m and each pair of an 8B layer (o then gate|up with SiLU; down then q|k|v), in the launches
# hifc picks (lab_gemv.launcher_choice), three chains:
#   after: the second product launched plainly: it starts once the first has finished;
#   pdl:   both launched as hifc launches them, the second let in at the first's wait;
#   norm:  a one-block-a-row add + RMSNorm between them, all three as hifc launches them (its decode step).
# Prints, for the second product of the last chain of a CUDA graph of 20 (every launch queued ahead,
# as in hifc's graphs): how many multiprocessors its CTAs ran on, the most CTAs on one, the spread of
# their start times, its span (first start to last end) and the longest any one multiprocessor was
# busy with it; and the chain's GPU time (that graph's replays).
import argparse
import collections
import ctypes
import os
import shutil
import tempfile

import torch

from kernel_lab import KERNELS, Lab, add_norm_launch, graph_ms
from lab_gemv import launcher_choice

PAIRS = [("o", 4096, 4096, "gate|up", 28672, True), ("down", 4096, 14336, "q|k|v", 6144, False)]
HIDDEN = 4096


def probed_kernels(kernels):
    """A copy of the kernels with gemv.cu's placement probe compiled in (HIFC_GEMV_PLACEMENT_PROBE)."""
    d = tempfile.mkdtemp()
    for f in ("common.cuh", "norm_rope.cu"):
        shutil.copy(os.path.join(kernels, f), d)
    with open(os.path.join(d, "gemv.cu"), "w") as out:
        out.write("#define HIFC_GEMV_PLACEMENT_PROBE 1\n" + open(os.path.join(kernels, "gemv.cu")).read())
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernels", default=KERNELS)
    ap.add_argument("--ms", default="1,8,16")
    args = ap.parse_args()
    lab = Lab(kernels_dir=probed_kernels(args.kernels), modules=["gemv", "norm_rope"])
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print(f"{torch.cuda.get_device_name(0)}, {sms} multiprocessors")
    print("| m | pair | chain | second's CTAs | multiprocessors used | most CTAs on one | start spread | span | busiest | chain time |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for m in [int(v) for v in args.ms.split(",")]:
        for first, n1, k1, second, n2, gated in PAIRS:
            name1, features1, warps1 = launcher_choice(lab, m, n1, sms)
            name2, features2, warps2 = launcher_choice(lab, m, n2, sms)
            grid1 = (n1 + features1 - 1) // features1
            grid2 = (n2 + features2 - 1) // features2
            x1 = torch.randn(m, k1, device="cuda").bfloat16()
            w1 = (torch.randn(n1, k1, device="cuda") * 0.05).bfloat16()
            y1 = torch.empty(m, n1, device="cuda")
            residual = torch.randn(m, HIDDEN, device="cuda")
            total = torch.empty(m, HIDDEN, device="cuda")
            norm_w = torch.ones(HIDDEN, device="cuda").bfloat16()
            x2 = torch.randn(m, HIDDEN, device="cuda").bfloat16()
            w2 = (torch.randn(n2, HIDDEN, device="cuda") * 0.05).bfloat16()
            y2 = torch.empty(m, n2 // 2 if gated else n2, device="cuda", dtype=torch.bfloat16 if gated else torch.float32)
            norm, norm_threads = add_norm_launch(m, HIDDEN)

            def chain(mode):
                lab.launch(name1, (grid1,), (32 * warps1,), [x1, w1, y1, m, n1, k1], pdl=True)
                if mode == "norm":
                    lab.launch(norm, (m,), (norm_threads,), [residual, y1, total, norm_w, x2, HIDDEN, 1e-5], pdl=True)
                lab.launch(name2 + ("_silu" if gated else ""), (grid2,), (32 * warps2,), [x2, w2, y2, m, n2, HIDDEN],
                           pdl=mode != "after")

            for mode in ("after", "pdl", "norm"):
                # The probe is read after the graph's replays: launched one by one from Python, the
                # second product can be queued after the first has ended (in the first run, read after
                # such launches, every CTA of a batch-16 second product entered within 0.1 us).
                ms = graph_ms(lambda: chain(mode))
                sm = lab.global_array("gemv_probe_sm", ctypes.c_uint32, grid2)
                start = lab.global_array("gemv_probe_start", ctypes.c_uint64, grid2)
                end = lab.global_array("gemv_probe_end", ctypes.c_uint64, grid2)
                per_sm = collections.Counter(sm)
                busy = collections.defaultdict(lambda: [2**64, 0])
                for s_, b_, e_ in zip(sm, start, end):
                    busy[s_] = [min(busy[s_][0], b_), max(busy[s_][1], e_)]
                busiest = max(e_ - b_ for b_, e_ in busy.values())
                print(f"| {m} | {first} ({grid1} CTAs of {name1}) then {second} ({name2}) | {mode} | {grid2} | {len(per_sm)} of {sms} "
                      f"| {max(per_sm.values())} | {(max(start) - min(start)) / 1000:.1f} us | {(max(end) - min(start)) / 1000:.1f} us "
                      f"| {busiest / 1000:.1f} us | {ms * 1000:.1f} us |")


if __name__ == "__main__":
    main()
