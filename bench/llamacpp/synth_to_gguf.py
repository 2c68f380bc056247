#!/usr/bin/env python3
"""Writes a GGUF file for llama.cpp from a model directory of `hifc synth-model` (Llama architecture).

Why not llama.cpp's convert_hf_to_gguf.py: it identifies a BPE tokenizer by hashing how the tokenizer
(loaded through transformers) splits a fixed test text and refuses unknown hashes, and synth-model's
tokenizer is a small synthetic byte-level BPE (a few hundred tokens, the Llama 3 split pattern) that
it does not know. It also needs torch and transformers; this script needs numpy and gguf-py only
(llama.cpp's own GGUF writer, from its source tree: put `<llama.cpp>/gguf-py` on PYTHONPATH).

What it writes is what convert_hf_to_gguf.py writes for a Llama checkpoint (facts from llama.cpp's
llama architecture, not its code):
- the tensors under llama.cpp's names (token_embd, blk.N.attn_q, ..., output_norm, output), matrices
  in the checkpoint's dtype (bf16 stays bf16, bit for bit), 1-D norm weights as f32;
- attn_q and attn_k with each head's rows reordered from Hugging Face's rotate-half layout (first
  half of the head's dimensions, then the second) to llama.cpp's interleaved pairs (0, d/2, 1,
  d/2+1, ...), since llama.cpp's llama rope (LLAMA_ROPE_TYPE_NORM) rotates adjacent pairs;
- for `rope_type: llama3` scaling, the rope_freqs tensor of per-dimension frequency divisors;
- the vocabulary: the tokenizer's tokens and merges as a gpt2-style BPE with the llama-bpe split
  (the pattern synth-model's tokenizer uses), padded with `[PAD<id>]` tokens (type unused) to the
  model's vocab_size, as the converter pads a vocabulary smaller than the embedding.

  PYTHONPATH=<llama.cpp>/gguf-py python3 bench/llamacpp/synth_to_gguf.py MODEL_DIR OUT.gguf
"""
import argparse
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("synth_to_gguf.py: gguf-py not found: put <llama.cpp source>/gguf-py on PYTHONPATH")

# safetensors dtype -> (numpy dtype of the stored bits, GGML type when kept as is)
DTYPES = {
    "BF16": (np.uint16, gguf.GGMLQuantizationType.BF16),
    "F16": (np.float16, gguf.GGMLQuantizationType.F16),
    "F32": (np.float32, gguf.GGMLQuantizationType.F32),
}


def safetensors_tensors(model_dir: Path) -> dict:
    """Name -> (numpy memmap of the stored bits, safetensors dtype), over one file or an index's shards."""
    index = model_dir / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    tensors = {}
    for name in files:
        path = model_dir / name
        with open(path, "rb") as f:
            header_len = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(header_len))
        base = 8 + header_len
        for key, info in header.items():
            if key == "__metadata__":
                continue
            if info["dtype"] not in DTYPES:
                sys.exit(f"synth_to_gguf.py: {path}: tensor {key} has dtype {info['dtype']}, expected BF16, F16 or F32")
            start, end = info["data_offsets"]
            bits = np.memmap(path, dtype=DTYPES[info["dtype"]][0], mode="r", offset=base + start, shape=tuple(info["shape"]))
            assert bits.nbytes == end - start, key
            tensors[key] = (bits, info["dtype"])
    return tensors


def to_f32(bits: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return (bits.astype(np.uint32) << 16).view(np.float32)
    return bits.astype(np.float32)


def interleave_rope_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """Each head's rows [x0..x(d/2-1), y0..y(d/2-1)] (rotate-half) become [x0, y0, x1, y1, ...]."""
    rows = w.shape[0]
    half = rows // heads // 2
    return np.ascontiguousarray(w.reshape(heads, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def llama3_rope_divisors(config: dict, head_dim: int) -> np.ndarray:
    """Llama 3.1's frequency scaling as per-dimension divisors of the base frequencies (rope_freqs)."""
    scaling = config["rope_scaling"]
    base = config.get("rope_theta", 10000.0)
    factor = scaling.get("factor", 8.0)
    low = scaling.get("low_freq_factor", 1.0)
    high = scaling.get("high_freq_factor", 4.0)
    original = scaling.get("original_max_position_embeddings", 8192)
    low_wavelen = original / low
    high_wavelen = original / high
    divisors = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / base ** (i / head_dim)
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            divisors.append(1.0)
        elif wavelen > low_wavelen:
            divisors.append(factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            divisors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(divisors, dtype=np.float32)


def add_vocabulary(writer: "gguf.GGUFWriter", model_dir: Path, vocab_size: int, config: dict) -> int:
    """The tokenizer's BPE tokens and merges, padded to vocab_size. Returns the tokenizer's own count."""
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    if tok["model"]["type"] != "BPE":
        sys.exit(f"synth_to_gguf.py: {model_dir}/tokenizer.json: model type {tok['model']['type']}, expected BPE")
    by_id = {i: t for t, i in tok["model"]["vocab"].items()}
    special = set()
    for added in tok.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        if added.get("special"):
            special.add(added["id"])
    if max(by_id) >= vocab_size:
        sys.exit(f"synth_to_gguf.py: tokenizer id {max(by_id)} is past the model's vocab_size {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    bos = config.get("bos_token_id")
    eos = config.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    if bos is not None:
        writer.add_bos_token_id(bos)
        writer.add_add_bos_token(True)
    if eos is not None:
        writer.add_eos_token_id(eos)
    config_path = model_dir / "tokenizer_config.json"
    if config_path.exists():
        template = json.loads(config_path.read_text()).get("chat_template")
        if template:
            writer.add_chat_template(template)
    return len(by_id)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", type=Path, help="a `hifc synth-model` directory (config.json, safetensors, tokenizer.json)")
    ap.add_argument("out", type=Path, help="the GGUF file to write")
    args = ap.parse_args()
    config = json.loads((args.model_dir / "config.json").read_text())
    arch = config.get("architectures", ["?"])[0]
    if arch not in ("LlamaForCausalLM", "MistralForCausalLM") or config.get("sliding_window"):
        sys.exit(f"synth_to_gguf.py: {args.model_dir}: architecture {arch}: only Llama (without a sliding window) is written")
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // heads
    layers = config["num_hidden_layers"]
    vocab_size = config["vocab_size"]
    tensors = safetensors_tensors(args.model_dir)

    writer = gguf.GGUFWriter(args.out, "llama")
    writer.add_name(args.model_dir.name)
    writer.add_context_length(config.get("max_position_embeddings", 8192))
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(config.get("rope_theta", 10000.0))
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-5))
    writer.add_vocab_size(vocab_size)
    stored = {dtype for _, dtype in tensors.values()}
    file_type = {"BF16": gguf.LlamaFileType.MOSTLY_BF16, "F16": gguf.LlamaFileType.MOSTLY_F16}.get(
        stored.pop() if len(stored) == 1 else "", gguf.LlamaFileType.ALL_F32)
    writer.add_file_type(file_type)
    known = add_vocabulary(writer, args.model_dir, vocab_size, config)

    def put(name: str, key: str, rope_heads: int = 0) -> None:
        bits, dtype = tensors.pop(key)
        if bits.ndim == 1:  # norms: f32, as llama.cpp's converter keeps them
            writer.add_tensor(name, to_f32(bits, dtype))
            return
        if rope_heads:
            bits = interleave_rope_rows(bits, rope_heads)
        raw_type = DTYPES[dtype][1]
        writer.add_tensor(name, bits, raw_shape=bits.shape, raw_dtype=raw_type)

    put("token_embd.weight", "model.embed_tokens.weight")
    scaling = config.get("rope_scaling") or {}
    if scaling.get("rope_type", scaling.get("type")) == "llama3":
        writer.add_tensor("rope_freqs.weight", llama3_rope_divisors(config, head_dim))
    for i in range(layers):
        p = f"model.layers.{i}."
        put(f"blk.{i}.attn_norm.weight", p + "input_layernorm.weight")
        put(f"blk.{i}.attn_q.weight", p + "self_attn.q_proj.weight", rope_heads=heads)
        put(f"blk.{i}.attn_k.weight", p + "self_attn.k_proj.weight", rope_heads=kv_heads)
        put(f"blk.{i}.attn_v.weight", p + "self_attn.v_proj.weight")
        put(f"blk.{i}.attn_output.weight", p + "self_attn.o_proj.weight")
        put(f"blk.{i}.ffn_norm.weight", p + "post_attention_layernorm.weight")
        put(f"blk.{i}.ffn_gate.weight", p + "mlp.gate_proj.weight")
        put(f"blk.{i}.ffn_up.weight", p + "mlp.up_proj.weight")
        put(f"blk.{i}.ffn_down.weight", p + "mlp.down_proj.weight")
    put("output_norm.weight", "model.norm.weight")
    if "lm_head.weight" in tensors:
        put("output.weight", "lm_head.weight")
    if tensors:
        sys.exit(f"synth_to_gguf.py: tensors not written (unexpected in a Llama checkpoint): {sorted(tensors)[:5]}")

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {args.out}: llama, {layers} layers, hidden {hidden}, {heads}/{kv_heads} heads of {head_dim}, "
          f"vocab {vocab_size} ({known} from the tokenizer, the rest [PAD] tokens), {args.out.stat().st_size / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
