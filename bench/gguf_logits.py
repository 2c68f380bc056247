#!/usr/bin/env python3
"""A real GGUF model's next-token logits from hifc against two references, on the same prompts:

- the NumPy float64 forward pass of Tests/ModelsTests/Reference/reference_forward.py (written from
  HF transformers' modeling code) on the file's weights as gguf-py dequantizes them, mapped back
  to HF names and conventions (Gemma's norms without llama.cpp's +1, Llama's rotary rows
  un-interleaved);
- llama.cpp's llama-server on the file itself: its tokenization and its top-10 next-token
  probabilities.

hifc runs twice: with --dequantize (f32 weights: must equal the reference to float32 rounding)
and on the GGML blocks with its integer kernels (8-bit activations, as llama.cpp's CPU backend).
Printed per prompt: the max-abs relative error of the logits (max |a - b| / max |b|, as the
tests measure), whether the argmax agrees, and how far hifc's and llama.cpp's top-10 probabilities
are apart. With --greedy N, also the first N greedy tokens of hifc (integer kernels) and of
llama-server, and how many agree before the first difference. Only gguf-py and NumPy; llama-server listens on 127.0.0.1 and is stopped at the end.

  bench/gguf_logits.py --hifc .build/debug/hifc --llama-bin ~/.cache/hifc-bench/llama.cpp/11434.0.0-cpu/bin \\
      --gguf ~/.cache/hifc-bench/models/gemma3/gemma-3-270m-q4_k_m.gguf
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

import gguf
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ModelsTests", "Reference"))
import reference_forward  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Water boils at a temperature of",
    "Once upon a time, in a village by the sea,",
]

HF_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
            "output.weight": "lm_head.weight"}
LAYER_NAMES = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
               "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
               "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm", "ffn_gate": "mlp.gate_proj",
               "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
GEMMA_LAYER_NAMES = dict(LAYER_NAMES, ffn_norm="pre_feedforward_layernorm", post_attention_norm="post_attention_layernorm",
                         post_ffw_norm="post_feedforward_layernorm")


def field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def hf_config(reader):
    """The config.json transformers would have for the file, as far as the forward pass reads it."""
    arch = field(reader, "general.architecture")
    if arch not in ("llama", "qwen2", "qwen3", "gemma3"):
        sys.exit(f"architecture {arch} is not handled here")
    k = lambda name, default=None: field(reader, f"{arch}.{name}", default)  # noqa: E731
    heads = k("attention.head_count")
    cfg = {"model_type": "gemma3_text" if arch == "gemma3" else arch, "hidden_size": k("embedding_length"),
           "intermediate_size": k("feed_forward_length"), "num_hidden_layers": k("block_count"),
           "num_attention_heads": heads, "num_key_value_heads": k("attention.head_count_kv", heads),
           "head_dim": k("attention.key_length", k("embedding_length") // heads),
           "rms_norm_eps": k("attention.layer_norm_rms_epsilon"), "rope_theta": k("rope.freq_base", 10000.0),
           "max_position_embeddings": k("context_length"),
           "tie_word_embeddings": not any(t.name == "output.weight" for t in reader.tensors)}
    if k("rope.scaling.type") not in (None, "none"):
        cfg["rope_scaling"] = {"rope_type": k("rope.scaling.type"), "factor": k("rope.scaling.factor")}
    if arch == "gemma3":
        # What llama.cpp assumes for gemma3 (llama-model.cpp), as hifc's GGUFModelConfig does.
        cfg.update(sliding_window=k("attention.sliding_window"), sliding_window_pattern=6,
                   rope_local_base_freq=k("rope.freq_base_swa", 10000.0), hidden_activation="gelu_pytorch_tanh",
                   query_pre_attn_scalar=cfg["hidden_size"] // heads if cfg["num_hidden_layers"] == 62 else cfg["head_dim"],
                   final_logit_softcapping=k("final_logit_softcapping"))
    return arch, cfg


def hf_weights(reader, arch, cfg):
    """The tensors in float64 under HF names, undoing the converter's changes."""
    names = GEMMA_LAYER_NAMES if arch == "gemma3" else LAYER_NAMES
    weights = {}
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        w = w.reshape([int(d) for d in reversed(t.shape)] if len(t.shape) > 1 else [-1])
        if t.name in HF_NAMES:
            name = HF_NAMES[t.name]
        else:
            _, layer, stem, kind = t.name.split(".")
            name = f"model.layers.{layer}.{names[stem]}.{kind}"
        if arch == "gemma3" and t.name.endswith("norm.weight"):
            w = w - 1  # llama.cpp stores Gemma's 1 + w
        if arch == "llama" and stem_of(t.name) in ("attn_q", "attn_k"):
            heads = cfg["num_attention_heads"] if stem_of(t.name) == "attn_q" else cfg["num_key_value_heads"]
            w = w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
        weights[name] = w
    return weights


def stem_of(name):
    parts = name.split(".")
    return parts[2] if len(parts) == 4 else None


def hifc_logits(args, prompt, dequantize):
    with tempfile.NamedTemporaryFile(suffix=".f32") as out:
        command = [args.hifc, "generate", "--model", args.gguf, "--prompt", prompt, "--max-tokens", "1", "--device", "cpu",
                   "--token-ids", "--logits", out.name] + (["--dequantize"] if dequantize else [])
        result = subprocess.run(command, check=True, capture_output=True, text=True)
        ids = json.loads(result.stderr.split("prompt ids:")[1].splitlines()[0])
        return ids, np.fromfile(out.name, dtype="<f4").astype(np.float64)


class LlamaServer:
    def __init__(self, args):
        self.port = args.port
        log = open(os.path.join(tempfile.gettempdir(), "gguf-logits-llama-server.log"), "w")
        self.process = subprocess.Popen([os.path.join(args.llama_bin, "llama-server"), "-m", args.gguf, "--port", str(self.port),
                                         "-t", str(args.threads), "-c", "2048", "-np", "1"], stdout=log, stderr=log)
        for _ in range(120):
            try:
                if self.post("/health", None, "GET").get("status") == "ok":
                    return
            except (OSError, ValueError):
                pass
            time.sleep(1)
        sys.exit("llama-server did not come up")

    def post(self, path, body, method="POST"):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        connection.request(method, path, json.dumps(body) if body is not None else None, {"Content-Type": "application/json"})
        return json.loads(connection.getresponse().read())

    def top_probabilities(self, prompt):
        reply = self.post("/completion", {"prompt": prompt, "n_predict": 1, "n_probs": 10, "temperature": 0,
                                          "cache_prompt": False, "post_sampling_probs": False})
        top = reply["completion_probabilities"][0]
        entries = top.get("top_logprobs") or top.get("probs")
        return {e["id"]: float(np.exp(e["logprob"])) if "logprob" in e else e["prob"] for e in entries}

    def greedy(self, prompt, n):
        reply = self.post("/completion", {"prompt": prompt, "n_predict": n, "temperature": 0, "top_k": 1,
                                          "cache_prompt": False, "return_tokens": True})
        return reply["tokens"]

    def stop(self):
        self.process.terminate()
        self.process.wait()


def hifc_greedy(args, prompt, n):
    command = [args.hifc, "generate", "--model", args.gguf, "--prompt", prompt, "--max-tokens", str(n), "--device", "cpu",
               "--token-ids"]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stderr.split("generated ids:")[1].splitlines()[0]), result.stdout.strip()


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def relative_error(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--hifc", required=True)
    parser.add_argument("--llama-bin", help="llama.cpp's bin directory (llama-server); left out: no llama.cpp column")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--port", type=int, default=18932)
    parser.add_argument("--greedy", type=int, default=0, help="greedy tokens to compare with llama-server")
    args = parser.parse_args()
    reader = gguf.GGUFReader(args.gguf)
    arch, cfg = hf_config(reader)
    weights = hf_weights(reader, arch, cfg)
    print(f"{os.path.basename(args.gguf)}: {arch}, {cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, "
          f"vocab {weights['model.embed_tokens.weight'].shape[0]}")
    server = LlamaServer(args) if args.llama_bin else None
    try:
        for prompt in PROMPTS:
            ids, decoded = hifc_logits(args, prompt, dequantize=True)
            ids_kept, kept = hifc_logits(args, prompt, dequantize=False)
            assert ids == ids_kept
            reference = reference_forward.forward(cfg, weights, ids)[-1]
            top = int(np.argmax(reference))
            line = (f"{prompt!r}: {len(ids)} tokens; vs reference: dequantized {relative_error(decoded, reference):.1e} "
                    f"(argmax {'=' if np.argmax(decoded) == top else '≠'}), integer kernels "
                    f"{relative_error(kept, reference):.1e} (argmax {'=' if np.argmax(kept) == top else '≠'})")
            if server:
                llama_ids = server.post("/tokenize", {"content": prompt, "add_special": True})["tokens"]
                probs = server.top_probabilities(prompt)
                ours, ref = softmax(kept), softmax(reference)
                worst = max(abs(ours[i] - p) for i, p in probs.items())
                worst_ref = max(abs(ref[i] - p) for i, p in probs.items())
                best = max(probs, key=probs.get)
                line += (f"; llama.cpp: tokens {'=' if llama_ids == ids else '≠ ' + str(llama_ids)}, argmax "
                         f"{'=' if best == top else '≠'}, top-10 probabilities within {worst:.3f} of hifc's "
                         f"(reference's within {worst_ref:.3f})")
            print(line, flush=True)
            if server and args.greedy:
                ours, text = hifc_greedy(args, prompt, args.greedy)
                theirs = server.greedy(prompt, args.greedy)
                same = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
                print(f"  greedy: {same} of {args.greedy} tokens as llama.cpp's; hifc: {text!r}", flush=True)
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    main()
