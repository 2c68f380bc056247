#!/usr/bin/env python3
"""Where each thread's samples went, from `perf script -F tid,ip,sym` (bench/perf/pack.sh).

For every thread: its samples and the symbols its samples were in (the innermost frame). Then,
for the thread that ran the decode steps (the one with most samples under FRAME, by default the
models' `launchStep`), those samples split by innermost symbol: compute kernels, the pool's wait
(`run_job`), the allocator and the Swift around the ops. Sample counts convert to time by the
sampling rate perf was given (-F).
"""
import argparse
import collections


def stacks(path):
    """Yields (thread id, [innermost symbol, ..., outermost]) per sample."""
    with open(path) as f:
        for block in f.read().split("\n\n"):
            lines = [line for line in block.strip().split("\n") if line.strip()]
            if len(lines) < 2:
                continue
            frames = []
            for line in lines[1:]:
                parts = line.strip().split(None, 1)
                frames.append(parts[1].split(" (")[0] if len(parts) > 1 else "?")
            yield lines[0].split()[0], frames


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stacks", help="output of perf script -F tid,ip,sym")
    parser.add_argument("--frame", default="launchStep", help="a frame that marks the samples of interest")
    parser.add_argument("--top", type=int, default=4, help="symbols shown a thread")
    args = parser.parse_args()

    per_thread = collections.Counter()
    symbols = collections.defaultdict(collections.Counter)
    marked = collections.defaultdict(collections.Counter)
    for thread, frames in stacks(args.stacks):
        per_thread[thread] += 1
        symbols[thread][frames[0][:48]] += 1
        if any(args.frame in frame for frame in frames):
            marked[thread][frames[0][:90]] += 1
    print(f"{len(per_thread)} threads")
    for thread, count in sorted(per_thread.items(), key=lambda item: -item[1]):
        top = ", ".join(f"{name} {n}" for name, n in symbols[thread].most_common(args.top))
        print(f"  {thread:>8} {count:7d}  {top}")
    if not marked:
        return
    thread, counter = max(marked.items(), key=lambda item: sum(item[1].values()))
    total = sum(counter.values())
    print(f"\nthread {thread}: {total} samples under {args.frame}")
    for name, n in counter.most_common(30):
        print(f"  {n:7d} {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
