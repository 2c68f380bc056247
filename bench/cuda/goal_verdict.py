#!/usr/bin/env python3
"""The decode goal's verdict from gpu-visit.sh's goal step (issue 25).

The goal: an 8B-shaped decode step, 2K of context, 128 graph steps, within 1.10x its memory
roofline at batches 1 and 16 on the H200. The roofline is the bytes a step must read
(`decode_step_bytes` in bench model's JSON) at the device copy's rate; the copy is timed before and
after the rounds and their mean is taken, as bench/results/cuda-graphs-h200.md does.

Reads the step's log (goal-model.txt: "== goal round R form F" marker lines, bench model's JSON
lines, "device copy N GB/s" lines) and prints each run's step time and ratio, then for each form
and batch its worst ratio over the rounds and whether that meets the goal, then which forms beat
`--against` (the default setting, "1") at a batch in every round, and by how much.
Usage (anywhere, after the visit): python3 bench/cuda/goal_verdict.py goal-model.txt [--goal 1.10] [--against 1]
"""
import argparse
import collections
import json
import re
import statistics
import sys

p = argparse.ArgumentParser()
p.add_argument("log")
p.add_argument("--goal", type=float, default=1.10)
p.add_argument("--against", default="1", help="the HIFC_CUDA_RESIDUAL_FORM value the others are compared with")
args = p.parse_args()

copies, runs = [], []  # runs: (round, form, batch, step ms, step bytes)
round_, form = None, None
with open(args.log) as f:
    for line in f:
        marker = re.match(r"== goal round (\d+) form (\S+)", line)
        copy = re.match(r"device copy (\d+(?:\.\d+)?) GB/s", line)
        if marker:
            round_, form = int(marker.group(1)), marker.group(2)
        elif copy:
            copies.append(float(copy.group(1)))
        elif line.startswith("{") and '"decode_step_ms"' in line:
            if form is None:
                sys.exit(f"{args.log}: a bench model line before any '== goal round' marker")
            j = json.loads(line)
            runs.append((round_, form, j["batch"], j["decode_step_ms"], j["decode_step_bytes"]))
if not copies:
    sys.exit(f"{args.log}: no 'device copy N GB/s' line: the roofline needs the copy's rate")
if not runs:
    sys.exit(f"{args.log}: no bench model JSON lines")

rate = statistics.mean(copies) * 1e9  # bytes a second
print(f"device copy {', '.join(f'{c:.0f}' for c in copies)} GB/s: mean {rate / 1e9:.0f} GB/s")
ratios = collections.defaultdict(dict)  # (form, batch) -> {round: ratio}
for r, fm, batch, ms, nbytes in runs:
    roof = nbytes / rate * 1e3
    ratios[(fm, batch)][r] = ms / roof
    print(f"round {r} form {fm:>9} batch {batch:>2}: {ms:.3f} ms, roofline {roof:.3f} ms ({nbytes / 1e9:.3f} GB): {ms / roof:.3f}x")

print(f"\ngoal <= {args.goal:.2f}x, the worst round of each:")
for (fm, batch), by_round in sorted(ratios.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    worst = max(by_round.values())
    print(f"  form {fm:>9} batch {batch:>2}: {worst:.3f}x {'met' if worst <= args.goal else 'not met'} ({len(by_round)} rounds)")

print(f"\nagainst form {args.against}, round by round:")
for (fm, batch), by_round in sorted(ratios.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    base = ratios.get((args.against, batch))
    if fm == args.against or not base:
        continue
    shared = sorted(set(by_round) & set(base))
    gains = [1 - by_round[r] / base[r] for r in shared]
    if not gains:
        continue
    verdict = "faster in every round" if all(g > 0 for g in gains) else "not faster in every round"
    print(f"  form {fm:>9} batch {batch:>2}: {', '.join(f'{100 * g:+.2f}%' for g in gains)} shorter: {verdict}")
