#!/usr/bin/env python3
"""HiFC's CPU backend against PyTorch + transformers on the same model directory and machine.

Both sides do the same work: `batch` random prompts of `--prompt-tokens` tokens prefilled in one
forward pass, then `--decode-tokens` greedy decode steps of the whole batch with a KV cache, in
float32 on all cores. Prints a markdown table (and writes it to --out when given).

  bench/cpu_vs_torch.py --model DIR [--hifc .build/release/hifc] [--batch 1,8]
                        [--prompt-tokens 128] [--decode-tokens 32] [--torch-threads N]
                        [--out bench/results/x.md]

Without --model, a ~100M-parameter Llama is written first with `hifc synth-model --preset small`.
Needs torch and transformers (pip install torch transformers); HiFC needs nothing."""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time


def hifc_figures(args):
    command = [args.hifc, "bench", "model", "--model", args.model, "--batch", args.batch,
               "--prompt-tokens", str(args.prompt_tokens), "--decode-tokens", str(args.decode_tokens), "--json"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["batch"]: r for r in rows}, " ".join(command)


def torch_figures(args):
    import torch
    from transformers import AutoModelForCausalLM

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    generator = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    results = {}
    for batch in [int(b) for b in args.batch.split(",")]:
        prompts = torch.randint(0, vocab, (batch, args.prompt_tokens), generator=generator)
        with torch.inference_mode():
            model(prompts[:, :1])  # warm-up
            start = time.perf_counter()
            out = model(prompts, use_cache=True)
            prefill = time.perf_counter() - start
            cache = out.past_key_values
            token = out.logits[:, -1, :].argmax(-1, keepdim=True)
            start = time.perf_counter()
            for _ in range(args.decode_tokens):
                out = model(token, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                token = out.logits[:, -1, :].argmax(-1, keepdim=True)
            decode = time.perf_counter() - start
        results[batch] = {
            "prefill_tok_s": batch * args.prompt_tokens / prefill,
            "decode_tok_s": batch * args.decode_tokens / decode,
        }
    return results, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.uname().system} {platform.uname().release} {platform.machine()}, {os.cpu_count()} cores, {cpu}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--hifc", default=".build/release/hifc")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--torch-threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if not args.model:
        args.model = "/tmp/hifc-bench-small-llama"
        if not os.path.exists(args.model + "/config.json"):
            subprocess.run([args.hifc, "synth-model", "--arch", "llama", "--preset", "small", "--dtype", "f32",
                            "--out", args.model], check=True)
    ours, command = hifc_figures(args)
    try:
        theirs, torch_version = torch_figures(args)
    except ImportError as error:
        theirs, torch_version = {}, f"not run: {error}"
    lines = [
        f"# HiFC CPU backend vs PyTorch + transformers",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {machine()}",
        f"- model: {args.model}",
        f"- hifc: `{command}` ({next(iter(ours.values()))['backend'] if ours else '?'})",
        f"- peer: {torch_version}, float32",
        f"- work: batch prompts of {args.prompt_tokens} tokens prefilled in one pass, then {args.decode_tokens} greedy decode steps",
        "",
        "| batch | hifc prefill tok/s | torch prefill tok/s | hifc decode tok/s | torch decode tok/s |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for batch in sorted(ours):
        t = theirs.get(batch, {})
        lines.append(f"| {batch} | {ours[batch]['prefill_tok_s']:.1f} | {t.get('prefill_tok_s', float('nan')):.1f} "
                     f"| {ours[batch]['decode_tok_s']:.1f} | {t.get('decode_tok_s', float('nan')):.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    sys.exit(main())
