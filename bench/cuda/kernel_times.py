#!/usr/bin/env python3
"""Per-kernel GPU time of hifc's decode steps, from Nsight Compute.

Runs `ncu` on `hifc bench model` (one batch size, a few decode steps), keeps the launches of the
last `--steps` decode steps, and prints each kernel's count and time per step, and their sum
(the step's kernel time, without the gaps between kernels: compare it with the step time that
bench model prints in the same run). ncu serializes kernels, so the times are each kernel alone.
Usage (GPU machine, repository root, after `bash .device/unpack.sh`):
  python3 bench/cuda/kernel_times.py --model /var/tmp/hifc/synth-8b --batch 16 [--prompt 2048] [--kv-dtype fp8]
"""
import argparse
import collections
import csv
import io
import subprocess
import sys

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--prompt", type=int, default=2048)
p.add_argument("--steps", type=int, default=2)
p.add_argument("--kv-dtype", default="bf16", help="the KV cache's dtype (bf16 or fp8)")
p.add_argument("--ncu", default="ncu")
p.add_argument("--raw", help="also write ncu's CSV here")
args = p.parse_args()

decode = args.steps + 1
cmd = [args.ncu, "--csv", "--metrics", "gpu__time_duration.sum", "--cache-control", "none", "--clock-control", "none",
       ".device/hifc", "bench", "model", "--model", args.model, "--device", "cuda", "--batch", str(args.batch),
       "--prompt-tokens", str(args.prompt), "--decode-tokens", str(decode), "--kv-dtype", args.kv_dtype]
print("command:", " ".join(cmd), flush=True)
run = subprocess.run(cmd, capture_output=True, text=True)
text = run.stdout
if args.raw:
    open(args.raw, "w").write(text)
start = text.find('"ID"')
if run.returncode != 0 or start < 0:
    print(text[-4000:], run.stderr[-4000:], file=sys.stderr)
    sys.exit(1)
print("\n".join(l for l in text[:start].splitlines() if not l.startswith("==PROF==")))
rows = [r for r in csv.DictReader(io.StringIO(text[start:])) if r["Metric Name"] == "gpu__time_duration.sum"]
to_us = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}
launches = [(r["Kernel Name"].split("(")[0], float(r["Metric Value"].replace(",", "")) * to_us[r["Metric Unit"]]) for r in rows]
# A decode step starts with the embedding lookup; the last `steps` of them are steady decode steps.
starts = [i for i, (name, _) in enumerate(launches) if name.startswith("embedding_bf16_to_f32")]
if len(starts) < args.steps + 1:
    sys.exit(f"found {len(starts)} steps in {len(launches)} launches")
steps = [launches[a:b] for a, b in zip(starts[-args.steps - 1:], starts[-args.steps:] + [len(launches)])][-args.steps:]
per = collections.OrderedDict()
for step in steps:
    for name, us in step:
        c = per.setdefault(name, [0, 0.0])
        c[0] += 1
        c[1] += us
n = len(steps)
total = sum(us for _, us in launches[starts[-args.steps]:]) / n
print(f"\nbatch {args.batch}, context {args.prompt}, KV {args.kv_dtype}: {sum(c for c, _ in per.values()) // n} launches a step, "
      f"{total:.1f} us of kernel time a step (mean of {n} steps)")
print(f"{'kernel':48s} {'launches':>8s} {'us/step':>9s} {'us each':>8s} {'share':>6s}")
for name, (count, us) in sorted(per.items(), key=lambda kv: -kv[1][1]):
    print(f"{name:48s} {count // n:8d} {us / n:9.1f} {us / count:8.2f} {100 * us / n / total:5.1f}%")
