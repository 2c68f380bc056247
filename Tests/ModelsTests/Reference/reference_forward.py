#!/usr/bin/env python3
"""Independent reference forward pass of the Llama family (Llama, Mistral, Qwen2, Qwen3) and of
Gemma 3's text model in NumPy, written from the HF transformers definitions, used by ModelsTests
to check the Swift models. Reads config.json as transformers 4 writes it (rope_theta,
rope_scaling) and as transformers 5 does (rope_parameters, per layer type for Gemma 3).

Usage: reference_forward.py MODEL_DIR REQUEST.json
REQUEST: {"prompt": [ids], "steps": N}
Prints JSON: {"logits": last-position logits of the prompt, "greedy": N greedily chosen ids}.
All arithmetic is float64 so the reference's own rounding does not matter."""
import json
import math
import struct
import sys

import numpy as np


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start:base + end]
        if info["dtype"] == "F32":
            array = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif info["dtype"] == "F16":
            array = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif info["dtype"] == "BF16":
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise ValueError(f"dtype {info['dtype']}")
        tensors[name] = array.reshape(info["shape"])
    return tensors


def rope_sets(cfg):
    """{layer type: (theta, scaling dict or None)} for full_attention and sliding_attention."""
    gemma = cfg["model_type"] == "gemma3_text"
    params = cfg.get("rope_parameters")
    if params and any(isinstance(v, dict) for v in params.values()):
        full = params.get("full_attention") or {}
        sliding = params.get("sliding_attention") or {}
        return {"full_attention": (full.get("rope_theta", 1e6 if gemma else 1e4), full),
                "sliding_attention": (sliding.get("rope_theta", 1e4), sliding)}
    if params:
        theta, scaling = params.get("rope_theta", 1e6 if gemma else 1e4), params
    else:
        theta, scaling = cfg.get("rope_theta", 1e6 if gemma else 1e4), cfg.get("rope_scaling")
    local = cfg.get("rope_local_base_freq", 1e4) if gemma else theta
    return {"full_attention": (theta, scaling), "sliding_attention": (local, None if gemma else scaling)}


def inverse_frequencies(theta, scaling, head_dim, max_positions):
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind != "default":
        kind = scaling.get("rope_type", scaling.get("type"))
        if kind == "llama3":
            factor = scaling["factor"]
            low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
            old = scaling.get("original_max_position_embeddings", max_positions)
            low_wavelen, high_wavelen = old / low, old / high
            wavelen = 2 * math.pi / inv
            scaled = np.where(wavelen > low_wavelen, inv / factor, inv)
            smooth = (old / wavelen - low) / (high - low)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
            inv = np.where(medium, smoothed, scaled)
        elif kind == "linear":
            inv = inv / scaling["factor"]
        else:
            raise ValueError(f"rope type {kind}")
    return inv


def layer_types(cfg):
    """Each layer's attention, as the transformers config classes derive it."""
    n = cfg["num_hidden_layers"]
    kind = cfg["model_type"]
    if kind == "mistral":
        return ["sliding_attention" if cfg.get("sliding_window") else "full_attention"] * n
    if kind in ("qwen2", "qwen3") and not cfg.get("use_sliding_window"):
        return ["full_attention"] * n
    if cfg.get("layer_types"):
        return cfg["layer_types"]
    if kind in ("qwen2", "qwen3"):
        return ["sliding_attention" if i >= cfg.get("max_window_layers", 28) else "full_attention" for i in range(n)]
    if kind == "gemma3_text":
        pattern = cfg.get("sliding_window_pattern", 6)
        return ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
    return ["full_attention"] * n


def rms_norm(x, w, eps, gemma=False):
    # Gemma stores its norm weights as offsets from 1.
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * ((1.0 + w) if gemma else w)


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def rotate(x, positions, inv):
    # x: [T, heads, D]; HF's rotate_half convention.
    angles = positions[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(angles)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(angles)] * 2, axis=-1)[:, None, :]
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def forward(cfg, w, ids):
    gemma = cfg["model_type"] == "gemma3_text"
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads", heads)
    head_dim = cfg.get("head_dim") or hidden // heads
    eps = cfg["rms_norm_eps"]
    types = layer_types(cfg)
    window = cfg.get("sliding_window")
    ropes = {kind: inverse_frequencies(theta, scaling, head_dim, cfg.get("max_position_embeddings"))
             for kind, (theta, scaling) in rope_sets(cfg).items()}
    scale = cfg.get("query_pre_attn_scalar", head_dim) ** -0.5 if gemma else head_dim ** -0.5
    act = cfg.get("hidden_activation" if gemma else "hidden_act", "gelu_pytorch_tanh" if gemma else "silu")
    t = len(ids)
    positions = np.arange(t, dtype=np.float64)
    x = w["model.embed_tokens.weight"][ids]
    if gemma:
        x = x * math.sqrt(hidden)
    q_idx, k_idx = np.arange(t)[:, None], np.arange(t)[None, :]
    causal = np.where(k_idx <= q_idx, 0.0, -np.inf)
    sliding = np.where((k_idx <= q_idx) & (k_idx > q_idx - (window or 0)), 0.0, -np.inf)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        inv = ropes[types[i]]
        mask = sliding if types[i] == "sliding_attention" else causal
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps, gemma)

        def proj(name):
            y = h @ w[p + f"self_attn.{name}_proj.weight"].T
            bias = w.get(p + f"self_attn.{name}_proj.bias")
            return y if bias is None else y + bias

        q = proj("q").reshape(t, heads, head_dim)
        k = proj("k").reshape(t, kv_heads, head_dim)
        if p + "self_attn.q_norm.weight" in w:
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps, gemma)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps, gemma)
        q = rotate(q, positions, inv)
        k = rotate(k, positions, inv)
        v = proj("v").reshape(t, kv_heads, head_dim)
        group = heads // kv_heads
        k = np.repeat(k, group, axis=1)
        v = np.repeat(v, group, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) * scale + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        attention = np.einsum("hqk,khd->qhd", scores, v).reshape(t, heads * head_dim)
        attention = attention @ w[p + "self_attn.o_proj.weight"].T
        if gemma:
            x = x + rms_norm(attention, w[p + "post_attention_layernorm.weight"], eps, gemma)
            h = rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], eps, gemma)
        else:
            x = x + attention
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        gated = gelu_tanh(gate) if act == "gelu_pytorch_tanh" else gate / (1 + np.exp(-gate))
        mlp = (gated * up) @ w[p + "mlp.down_proj.weight"].T
        x = x + (rms_norm(mlp, w[p + "post_feedforward_layernorm.weight"], eps, gemma) if gemma else mlp)
    x = rms_norm(x, w["model.norm.weight"], eps, gemma)
    head = w.get("lm_head.weight")
    if head is None or cfg.get("tie_word_embeddings", gemma):
        head = w["model.embed_tokens.weight"]
    logits = x @ head.T
    cap = cfg.get("final_logit_softcapping") if gemma else None
    return cap * np.tanh(logits / cap) if cap else logits


def main():
    directory, request_path = sys.argv[1], sys.argv[2]
    with open(directory + "/config.json") as f:
        cfg = json.load(f)
    weights = load_safetensors(directory + "/model.safetensors")
    with open(request_path) as f:
        request = json.load(f)
    ids = list(request["prompt"])
    logits = forward(cfg, weights, ids)[-1]
    greedy = []
    for _ in range(request.get("steps", 0)):
        nxt = int(np.argmax(forward(cfg, weights, ids)[-1]))
        greedy.append(nxt)
        ids.append(nxt)
    json.dump({"logits": logits.tolist(), "greedy": greedy}, sys.stdout)


if __name__ == "__main__":
    main()
