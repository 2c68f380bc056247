#!/usr/bin/env python3
"""Markdown table of hifc against llama.cpp on the same model, from their JSON-lines outputs.

Reads any mix of: `hifc bench model --json` lines, `llama-bench -o jsonl` lines and
`llama-batched-bench --output-format jsonl` lines (other lines are skipped), and prints one row per
measurement both engines have:
- prompt tokens/s, batch 1: hifc's prefill_tok_s against llama-bench's ppN (the best of its ubatch
  sizes, n_depth 0);
- prompt tokens/s, B sequences: hifc's prefill at batch B against batched-bench's speed_pp (B prompts);
- decode tokens/s, batch 1 after a P-token prompt: hifc's decode_tok_s against llama-bench's tgN at
  depth P and batched-bench's speed_tg at pl 1;
- decode tokens/s, B sequences: hifc's decode at batch B against batched-bench's speed_tg at pl B
  (all B sequences' tokens per second, as hifc counts them).
When a configuration appears more than once (a warm-up run first), the last one counts.

  python3 bench/llamacpp/peer_table.py FILE...
"""
import json
import sys


def main() -> None:
    hifc, bench, batched = {}, {}, {}
    for path in sys.argv[1:]:
        for line in open(path, errors="replace"):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("engine") == "hifc":
                hifc[(row["batch"], row["prompt_tokens"])] = row
            elif "avg_ts" in row:
                key = (row["n_prompt"], row["n_gen"], row["n_depth"])
                if key not in bench or row["avg_ts"] > bench[key]["avg_ts"]:  # best ubatch size
                    bench[key] = row
            elif "speed_pp" in row:
                batched[(row["pl"], row["pp"])] = row
    rows = []

    def ratio(a, b):
        return f"{a / b:.2f}x" if a and b else "-"

    for (batch, prompt), h in sorted(hifc.items()):
        if batch == 1:
            pp = next((r for (p, n, d), r in bench.items() if p == prompt and n == 0 and d == 0), None)
            if pp:
                rows.append((f"prompt, {prompt} tokens, 1 sequence (llama-bench pp{prompt}, ub {pp['n_ubatch']})",
                             h["prefill_tok_s"], pp["avg_ts"]))
        b = batched.get((batch, prompt))
        if batch > 1 and b:
            rows.append((f"prompt, {batch} x {prompt} tokens (batched-bench)", h["prefill_tok_s"], b["speed_pp"]))
        if batch == 1:
            tg = next((r for (p, n, d), r in bench.items() if p == 0 and n > 0 and d == prompt), None)
            if tg:
                rows.append((f"decode, 1 sequence at {prompt} context (llama-bench tg{tg['n_gen']} @ d{prompt})",
                             h["decode_tok_s"], tg["avg_ts"]))
        if b:
            rows.append((f"decode, {batch} sequence{'s' if batch > 1 else ''} at {prompt} context (batched-bench, {b['tg']} tokens each)",
                         h["decode_tok_s"], b["speed_tg"]))
    print("| measurement | hifc tok/s | llama.cpp tok/s | hifc / llama.cpp |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs in rows:
        print(f"| {name} | {ours:,.0f} | {theirs:,.0f} | {ratio(ours, theirs)} |")
    if not rows:
        print("| (no measurement both engines have) | | | |")


if __name__ == "__main__":
    main()
