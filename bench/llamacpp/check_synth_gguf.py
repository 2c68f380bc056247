#!/usr/bin/env python3
"""Checks synth_to_gguf.py end to end: greedy tokens of one synthetic model, three ways.

1. hifc on the `hifc synth-model` directory (safetensors, Hugging Face layout),
2. hifc on the GGUF that synth_to_gguf.py wrote from it (hifc's own GGUF loader),
3. llama.cpp's llama-server on that GGUF (prompt tokenized by llama.cpp from the GGUF's vocabulary).

The model has the 8B preset's vocabulary (128256), rope (Llama 3 scaling, theta 500000) and
tokenizer but a narrow body (2 layers, hidden 256), so it runs in seconds on a CPU. Equal tokens
mean the GGUF holds the same function as the checkpoint: tensor names, the q/k row order, rope_freqs,
the vocabulary and its token ids. On the GPU (--device cuda) bf16 rounding may split near-ties, so
the report gives the first position that differs instead of failing.

  PYTHONPATH=<llama.cpp>/gguf-py python3 bench/llamacpp/check_synth_gguf.py --hifc HIFC --llama-bin BIN [--device cuda]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PROMPT = "The quick brown fox jumps over the lazy dog"


def hifc_tokens(hifc: str, model: Path, device: str, n: int) -> list:
    run = subprocess.run([hifc, "generate", "--model", str(model), "--prompt", PROMPT, "--max-tokens", str(n),
                          "--token-ids", "--device", device], capture_output=True, text=True)
    found = re.search(r"generated ids: \[([^\]]*)\]", run.stderr)
    if run.returncode != 0 or not found:
        sys.exit(f"check_synth_gguf.py: hifc generate --model {model} failed (rc {run.returncode}): {run.stderr[-800:]}")
    return [int(t) for t in found.group(1).split(",") if t.strip()]


def llama_tokens(llama_bin: Path, gguf: Path, device: str, n: int, port: int) -> list:
    args = [str(llama_bin / "llama-server"), "-m", str(gguf), "--port", str(port), "-c", "1024", "-np", "1"]
    args += ["-ngl", "99"] if device.startswith("cuda") else ["-ngl", "0"]
    log = open(gguf.with_suffix(".llama-server.log"), "w")
    server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    sys.exit(f"check_synth_gguf.py: llama-server exited with {server.returncode}, see {log.name}")
                time.sleep(0.5)
        body = json.dumps({"prompt": PROMPT, "n_predict": n, "temperature": 0, "return_tokens": True,
                           "cache_prompt": False}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/completion", body, {"Content-Type": "application/json"})
        return json.load(urllib.request.urlopen(request, timeout=120))["tokens"]
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hifc", required=True)
    ap.add_argument("--llama-bin", type=Path, required=True, help="folder with llama-server")
    ap.add_argument("--work", type=Path, default=Path("/tmp/hifc-gguf-check"))
    ap.add_argument("--device", default="cpu", help="cpu or cuda (both engines)")
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--port", type=int, default=8931)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = args.work / "synth-8b-narrow"
    gguf = args.work / "synth-8b-narrow.gguf"
    subprocess.run([args.hifc, "synth-model", "--preset", "8b", "--layers", "2", "--hidden", "256", "--intermediate", "512",
                    "--heads", "4", "--kv-heads", "2", "--head-dim", "64", "--out", str(model)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, str(Path(__file__).with_name("synth_to_gguf.py")), str(model), str(gguf)], check=True)
    runs = {
        "hifc on safetensors": hifc_tokens(args.hifc, model, args.device, args.tokens),
        "hifc on the GGUF": hifc_tokens(args.hifc, gguf, args.device, args.tokens),
        "llama.cpp on the GGUF": llama_tokens(args.llama_bin, gguf, args.device, args.tokens, args.port),
    }
    reference = runs["hifc on safetensors"]
    for name, tokens in runs.items():
        first = next((i for i, (a, b) in enumerate(zip(reference, tokens)) if a != b), None)
        verdict = "same" if first is None and len(tokens) == len(reference) else f"first difference at token {first}"
        print(f"{args.device} {name}: {tokens[:8]}... ({verdict} as hifc on safetensors)")
    same = all(tokens == reference for tokens in runs.values())
    print(f"GGUF check ({args.device}, {args.tokens} greedy tokens): {'all three the same' if same else 'DIFFERENT'}")
    if not same and args.device == "cpu":
        sys.exit(1)


if __name__ == "__main__":
    main()
