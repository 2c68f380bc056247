# The SASS instructions where a kernel's warps wait most, from Nsight Compute's source page:
#   ncu --import REPORT --page source --csv --print-source sass > sass.csv
#   python3 bench/cuda/ncu_sass_hotspots.py sass.csv [--top 40]
# Prints the stall-sampling columns' totals, then the top instructions by sampled warps with their
# nonzero stall columns, each with the two instructions before it (what the wait is for).
import argparse
import csv
import sys


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    with open(args.csv, newline="") as f:
        # ncu prints a few lines of its own before the header; the header names "Source".
        lines = f.read().splitlines()
    start = next((i for i, line in enumerate(lines) if '"Source"' in line), None)
    if start is None:
        sys.exit(f"{args.csv}: no source-page header (a line naming \"Source\")")
    rows = list(csv.DictReader(lines[start:]))
    header = list(rows[0].keys()) if rows else []
    samples = next((h for h in header if "Warp Stall Sampling (All" in h), None)
    if samples is None:
        sys.exit(f"{args.csv}: no 'Warp Stall Sampling (All Samples)' column; columns: {header}")
    stall_cols = [h for h in header if "stall" in h.lower() and h != samples]
    total = sum(number(r[samples]) or 0 for r in rows)
    print(f"{len(rows)} instructions, {total:.0f} samples in '{samples}'")
    for h in stall_cols:
        t = sum(number(r[h]) or 0 for r in rows)
        if t:
            print(f"  {h}: {t:.0f} ({t / total:.1%})" if total else f"  {h}: {t:.0f}")
    ranked = sorted(range(len(rows)), key=lambda i: -(number(rows[i][samples]) or 0))[: args.top]
    print(f"top {len(ranked)} instructions by samples:")
    for i in ranked:
        r = rows[i]
        s = number(r[samples]) or 0
        extra = ", ".join(f"{h}={r[h]}" for h in stall_cols if (number(r[h]) or 0) > 0)
        addr = r.get("Address") or r.get("# Address") or str(i)
        print(f"{s / total:6.1%} {addr:>8s}  {r['Source'].strip()}" + (f"   [{extra}]" if extra else ""))
        for j in (i - 2, i - 1):
            if j >= 0:
                print(f"{'':16s}  before: {rows[j]['Source'].strip()}")


if __name__ == "__main__":
    main()
