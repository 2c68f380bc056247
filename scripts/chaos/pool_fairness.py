#!/usr/bin/env python3
"""Pools the fairness runs that `chaos.py --fairness-samples-file FILE` recorded: per setup (the
server flags and the number of hostile clients), the normal client's p50 and p99 over every
sample alone and under the flood, and each run's own p99 ratio beside them.

  scripts/chaos/pool_fairness.py FILE

One run's p99 of a few hundred samples moves with the machine's moment (on a shared 2-core VM the
unloaded p99 alone moved between 4 and 62 ms from run to run); pooling runs that alternate
setups estimates each setup's p99 from thousands of samples taken over the same stretch of time.
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chaos import percentile  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    setups = {}
    with open(sys.argv[1]) as f:
        for line in f:
            run = json.loads(line)
            key = (" ".join(run["flags"]) or "defaults", run["hostile_clients"])
            setups.setdefault(key, []).append(run)
    for (flags, hostile), runs in setups.items():
        alone = [x for r in runs for x in r["alone_s"]]
        loaded = [x for r in runs for x in r["loaded_s"]]
        ratios = [percentile(r["loaded_s"], 99) / percentile(r["alone_s"], 99) for r in runs]
        print(f"{flags}, {hostile} hostile client(s): {len(runs)} runs, {len(alone)} + {len(loaded)} samples; "
              f"p50 {statistics.median(alone) * 1e3:.1f} -> {statistics.median(loaded) * 1e3:.1f} ms, "
              f"p99 {percentile(alone, 99) * 1e3:.1f} -> {percentile(loaded, 99) * 1e3:.1f} ms: "
              f"pooled p99 ratio {percentile(loaded, 99) / percentile(alone, 99):.2f}; "
              f"runs within 2x {sum(r <= 2 for r in ratios)} of {len(ratios)} ({', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
