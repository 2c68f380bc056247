#!/usr/bin/env python3
"""Compares the log probabilities two OpenAI-compatible servers give for the same greedy chat
completions (hifc and llama.cpp's llama-server on the same GGUF): for each prompt, the tokens up
to the first position where the greedy choices differ, and at each position the chosen token's
log probability and the top-K alternatives' (matched by token text and bytes).

  python3 bench/llamacpp/compare_logprobs.py URL_A MODEL_A URL_B MODEL_B [--top 5] [--tokens 32]
  (URL like http://127.0.0.1:8000; standard library only)
"""
import argparse
import json
import statistics
import urllib.request

PROMPTS = [
    "Name the capital of France.",
    "Write one sentence about the sea.",
    "What is 12 times 7?",
    "List three colours.",
    "Translate 'good morning' into German.",
    "Who wrote Hamlet?",
    "Explain what a CPU does in one sentence.",
    "Give me a synonym for 'happy'.",
]


def chat(url, model, prompt, top, tokens):
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
            "temperature": 0, "logprobs": True, "top_logprobs": top}
    request = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        choice = json.load(response)["choices"][0]
    return [(tuple(e["bytes"]), e["logprob"], {tuple(t["bytes"]): t["logprob"] for t in e["top_logprobs"]})
            for e in choice["logprobs"]["content"]]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url_a"), parser.add_argument("model_a"), parser.add_argument("url_b"), parser.add_argument("model_b")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    chosen_diffs, alternative_diffs, overlaps, agreed, compared = [], [], [], 0, 0
    for prompt in PROMPTS:
        a = chat(args.url_a, args.model_a, prompt, args.top, args.tokens)
        b = chat(args.url_b, args.model_b, prompt, args.top, args.tokens)
        same, note = 0, ""
        for (bytes_a, lp_a, top_a), (bytes_b, lp_b, top_b) in zip(a, b):
            compared += 1
            overlaps.append(len(top_a.keys() & top_b.keys()) / max(1, min(len(top_a), len(top_b))))
            alternative_diffs += [abs(top_a[k] - top_b[k]) for k in top_a.keys() & top_b.keys()]
            if bytes_a != bytes_b:
                # How close a call the split was: each side's two choices, by each side's figures.
                split = [(bytes(t).decode("utf-8", "replace"), round(top.get(t, float("nan")), 3))
                         for top in (top_a, top_b) for t in (bytes_a, bytes_b)]
                note = f"\n  split at token {same}: A {split[0]} vs {split[1]}; B {split[2]} vs {split[3]}"
                break
            same += 1
            chosen_diffs.append(abs(lp_a - lp_b))
        agreed += same
        text = bytes(b for token in a[:same] for b in token[0]).decode("utf-8", "replace")
        print(f"{prompt!r}: {same} of {min(len(a), len(b))} greedy tokens agree: {text!r}{note}")
    print(f"positions compared {compared}, greedy tokens agreeing {agreed}")
    print(f"chosen token |delta logprob|: mean {statistics.mean(chosen_diffs):.4f}, max {max(chosen_diffs):.4f}")
    print(f"top-{args.top} alternatives in both: {statistics.mean(overlaps) * 100:.1f}% of the shorter list; "
          f"their |delta logprob| mean {statistics.mean(alternative_diffs):.4f}, max {max(alternative_diffs):.4f}")


if __name__ == "__main__":
    main()
