# Does a grid barrier inside one persistent kernel cost less than a kernel boundary? A chain of
# `--layers` 8B o products (4096 x 4096 bf16, different weights each, more than L2 holds) each
# followed by an add + RMSNorm, four ways (lab_persistent.cu says why):
#   kernels:            hifc's launches (the launcher's skinny GEMM, then add_rmsnorm_f32_to_bf16,
#                       its one-row twin at m = 1), each let in at the one before's wait, as in a
#                       decode step's graph;
#   persistent:         one kernel, the multiprocessors x the residency of CTAs, that runs the same
#                       product tiles (skinny_gemm) and meets at a grid barrier where the kernels
#                       have a boundary: product, barrier, norm of the m rows, barrier (the next
#                       product's first weight loads issued before it), product, ...;
#   kernels, no norms:  the products alone, each let in at the one before's wait (the "bound");
#   persistent, no norms: the products alone with a barrier between them.
# Each chain's time a layer (CUDA graph of 20 chains) beside the product's copy roofline; the two
# chains with norms must agree (their last x and sum, against each other: the norms sum squares in
# different orders).
#
# Usage (GPU machine): python3 bench/cuda/lab_persistent.py [--ms 1,8,16] [--layers 8]
import argparse
import os

import torch

from kernel_lab import KERNELS, Lab, add_norm_launch, copy_bandwidth_gbs, graph_ms, rel_err, with_variants
from lab_gemv import launcher_choice

HERE = os.path.dirname(os.path.abspath(__file__))
N = 4096
EPS = 1e-5


def kernels_dir():
    """gemv.cu with the lab's kernels appended, and norm_rope.cu for the chain of kernels."""
    return with_variants(KERNELS, "gemv", os.path.join(HERE, "lab_persistent.cu"), also=("norm_rope",))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ms", default="1,8,16")
    ap.add_argument("--layers", type=int, default=8)
    args = ap.parse_args()
    lab = Lab(kernels_dir=kernels_dir(), modules=["gemv", "norm_rope"])
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    bw = copy_bandwidth_gbs()
    roof_us = N * N * 2 / bw / 1e3
    layers = args.layers
    print(f"{torch.cuda.get_device_name(0)}, {sms} multiprocessors, d2d copy {bw:.0f} GB/s: "
          f"an o product's roofline {roof_us:.1f} us; {layers} layers a chain")
    print("| m | chain | us a layer | x roofline | against kernels |")
    print("| ---: | --- | ---: | ---: | ---: |")
    torch.manual_seed(7)
    w = (torch.randn(layers, N, N, device="cuda") * 0.02).bfloat16()
    norm_w = (1 + 0.1 * torch.randn(N, device="cuda")).bfloat16()
    bar = torch.zeros(2, dtype=torch.int32, device="cuda")
    failures = 0
    for m in [int(v) for v in args.ms.split(",")]:
        name, features, warps = launcher_choice(lab, m, N, sms)
        grid = N // features
        norm, norm_threads = add_norm_launch(m, N)
        persistent, threads = ("lab_persistent_chain_t1", 256) if m <= 8 else ("lab_persistent_chain_t2", 512)
        ctas = lab.resident_blocks(persistent, threads) * sms
        x0 = torch.randn(m, N, device="cuda").bfloat16()
        s0 = torch.randn(m, N, device="cuda")
        runs = {}
        for how in ("kernels", "persistent"):
            xs = torch.zeros(layers + 1, m, N, device="cuda", dtype=torch.bfloat16)
            sums = torch.zeros(layers + 1, m, N, device="cuda")
            xs[0] = x0
            sums[0] = s0
            runs[how] = (xs, sums, torch.zeros(m, N, device="cuda"))

        def chain(how, norms):
            xs, sums, y = runs[how]
            if how == "persistent":
                lab.launch(persistent, (ctas,), (threads,), [w, xs, sums, y, norm_w, layers, m, N, EPS, int(norms), bar])
                return
            for l in range(layers):
                lab.launch(name, (grid,), (32 * warps,), [xs[l], w[l], y, m, N, N], pdl=True)
                if norms:
                    lab.launch(norm, (m,), (norm_threads,), [sums[l], y, sums[l + 1], norm_w, xs[l + 1], N, EPS], pdl=True)

        times = {}
        for norms in (True, False):
            for how in ("kernels", "persistent"):
                times[(how, norms)] = graph_ms(lambda: chain(how, norms)) * 1000 / layers
        # After the chains without norms xs[1:] holds what the chains with them wrote, so run those again.
        for how in ("kernels", "persistent"):
            chain(how, True)
        torch.cuda.synchronize()
        errors = [rel_err(runs["persistent"][i][layers], runs["kernels"][i][layers]) for i in (0, 1)]
        ok = all(e < 2e-2 for e in errors)
        failures += not ok
        for norms in (True, False):
            base = times[("kernels", norms)]
            for how in ("kernels", "persistent"):
                t = times[(how, norms)]
                label = how + ("" if norms else ", no norms")
                if how == "persistent":
                    label += f" ({ctas} CTAs of {threads} threads)"
                else:
                    label += f" ({name}, {grid} CTAs of {32 * warps})"
                print(f"| {m} | {label} | {t:.1f} | {t / roof_us:.2f}x | {t / base:.3f} |")
        print(f"| {m} | last x and sum, persistent against kernels | rel. err. {errors[0]:.1e} / {errors[1]:.1e} "
              f"| {'ok' if ok else 'DIFFERS'} | |")
    print("failures:", failures)


if __name__ == "__main__":
    main()
