#!/usr/bin/env python3
"""Where a graph-replayed decode step's time goes, from kernel_trace.c's trace.

Each replay of a CUDA graph is one decode step. Within a step the kernels overlap (programmatic
dependent launch starts a kernel before the one it depends on ends), so their durations add up to
more than the step. This splits the step's span exactly into per-kernel shares: a kernel's
*exposed* time is how long it runs past every kernel before it in the step (its end minus the
latest earlier end, or minus its own start if nothing was running), and a *gap* is time when no
kernel of the step runs at all (the next one had not started). Exposed times and gaps sum to the
span; a kernel whose work hides under the one before shows a small exposed time whatever it lasts
alone.

    python3 kernel_timeline.py TRACE [--skip N] [--layer-from K --layer-nodes L]

Prints, for each graph (one per batch size in `hifc bench model`): its replays, their mean span
and start-to-start period, then one row per kernel (name, grid x block, and the kernel launched
before it, which tells apart one kernel's launches in different places) with launches a step,
mean duration, exposed time and gap a step, and their share of the span. --layer-from K
--layer-nodes L also prints nodes K..K+L-1 of the median step one by one (one transformer layer).
"""

import argparse
import collections
import statistics
import sys


def read_trace(path):
    kernels = []
    with open(path) as f:
        for line in f:
            graph, node, start, end, grid, block, regs, name = line.rstrip("\n").split(" ", 7)
            kernels.append((int(graph), int(node), int(start), int(end), int(grid), int(block), int(regs), name))
    return kernels


def steps_of(records):
    """Splits one graph's kernels, sorted by start, into replays of its node set."""
    nodes = len({r[1] for r in records})
    records = sorted(records, key=lambda r: r[2])
    whole = len(records) // nodes
    steps = [records[i * nodes:(i + 1) * nodes] for i in range(whole)]
    return [s for s in steps if len({r[1] for r in s}) == nodes], nodes


def shares(step):
    """Per kernel of one step, in start order: (record, exposed ns, gap before it ns)."""
    out, latest_end = [], None
    for r in step:
        start, end = r[2], r[3]
        if latest_end is None:
            out.append((r, end - start, 0))
            latest_end = end
            continue
        gap = max(0, start - latest_end)
        exposed = max(0, end - max(latest_end, start))
        out.append((r, exposed, gap))
        latest_end = max(latest_end, end)
    return out


def label(r):
    return f"{r[7][:44]} {r[4]}x{r[5]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trace")
    parser.add_argument("--skip", type=int, default=2, help="replays left out at the start of each graph (warm-up)")
    parser.add_argument("--layer-from", type=int, default=None)
    parser.add_argument("--layer-nodes", type=int, default=0)
    args = parser.parse_args()

    by_graph = collections.defaultdict(list)
    for r in read_trace(args.trace):
        if r[0] != 0:
            by_graph[r[0]].append(r)
    if not by_graph:
        sys.exit("kernel_timeline: the trace has no graph-replayed kernels (were CUDA graphs on?)")

    for graph, records in sorted(by_graph.items()):
        steps, nodes = steps_of(records)
        steps = steps[args.skip:]
        if not steps:
            print(f"graph {graph}: {nodes} nodes, too few replays")
            continue
        spans = [max(r[3] for r in s) - s[0][2] for s in steps]
        periods = [b[0][2] - a[0][2] for a, b in zip(steps, steps[1:])]
        span = statistics.mean(spans)
        print(f"\ngraph {graph}: {nodes} kernels a step, {len(steps)} replays, span {span / 1e3:.1f} us"
              + (f", period {statistics.mean(periods) / 1e3:.1f} us" if periods else ""))
        rows = collections.OrderedDict()
        for s in steps:
            previous = "(first)"
            for r, exposed, gap in shares(s):
                # The kernel before tells apart launches of one kernel in different places (o and down).
                row = rows.setdefault(f"{label(r)} < {previous[:18]}", [0, 0, 0, 0])
                previous = r[7]
                row[0] += 1
                row[1] += r[3] - r[2]
                row[2] += exposed
                row[3] += gap
        n = len(steps)
        print(f"{'kernel, grid x block < the kernel before':<77} {'a step':>6} {'each':>8} {'exposed':>9} {'gaps':>8} {'share':>6}")
        total_exposed = total_gap = 0.0
        for name, (count, duration, exposed, gap) in sorted(rows.items(), key=lambda kv: -(kv[1][2] + kv[1][3])):
            total_exposed += exposed / n
            total_gap += gap / n
            print(f"{name:<77} {count / n:>6.0f} {duration / count / 1e3:>7.2f}u {exposed / n / 1e3:>8.1f}u "
                  f"{gap / n / 1e3:>7.1f}u {(exposed + gap) / n / span:>6.1%}")
        print(f"{'sum':<77} {'':>6} {'':>8} {total_exposed / 1e3:>8.1f}u {total_gap / 1e3:>7.1f}u")
        if args.layer_from is not None:
            median = sorted(steps, key=lambda s: max(r[3] for r in s) - s[0][2])[n // 2]
            t0 = median[0][2]
            print(f"\nnodes {args.layer_from}-{args.layer_from + args.layer_nodes - 1} of the median step (us from its start):")
            print(f"{'#':>4} {'kernel, grid x block':<56} {'start':>8} {'end':>8} {'each':>7} {'exposed':>8} {'gap':>6}")
            for i, (r, exposed, gap) in enumerate(shares(median)):
                if args.layer_from <= i < args.layer_from + args.layer_nodes:
                    print(f"{i:>4} {label(r):<56} {(r[2] - t0) / 1e3:>8.2f} {(r[3] - t0) / 1e3:>8.2f} "
                          f"{(r[3] - r[2]) / 1e3:>7.2f} {exposed / 1e3:>8.2f} {gap / 1e3:>6.2f}")


if __name__ == "__main__":
    main()
