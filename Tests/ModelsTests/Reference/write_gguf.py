"""Writes an HF model directory (as SynthModel makes it, f32 weights) as a GGUF file the way
llama.cpp's converter would: llama.cpp tensor names, q/k rotary rows interleaved for `llama`,
Llama 3 rope scaling as rope_freqs.weight, the tokenizer as tokenizer.ggml.* metadata; for Gemma 3
also 1 added to every norm weight, the window and final softcap as metadata (the layer pattern,
local rope base and query scale must be the ones llama.cpp assumes), no space prefix.

Usage: write_gguf.py HF_DIR OUT.gguf [--types f32|f16|mixed] [--arch NAME] [--pre NAME]
                     [--undecodable-type] [--alignment N] [--no-chat-template]

--types mixed stores the 2-D weights in a rotation of GGML quant types (legacy types quantized by
gguf-py, k-quant types as random blocks with small scales) and then REWRITES HF_DIR's
model.safetensors with gguf-py's dequantization of exactly those blocks (rows back in HF order),
so that both hold the same weights. --types f16 does the same with f16 rounding.
For a SentencePiece tokenizer it also writes OUT.gguf.tokenizer.json: the tokenizer.json HF's
converter derives from the GGUF's tokens and scores (merges from scores), for `tokenizers` to
encode as a reference. --arch and --pre override the names (for refusal tests);
--undecodable-type stores ffn_up of layer 0 as IQ4_NL; --alignment sets general.alignment;
--no-chat-template leaves tokenizer.chat_template out.
Every file also holds one `test.*` key of each metadata value type.
"""
import argparse
import json
import math
import struct

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

LEGACY = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
KQUANTS = [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
HALF_FIELDS = {T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}
# Scale of each k-quant's f16 fields so weights stay near 1/sqrt(fan_in) (quants up to ~63x64).
KQUANT_SCALE = {T.Q2_K: 0.02, T.Q3_K: 0.004, T.Q4_K: 0.002, T.Q5_K: 0.001, T.Q6_K: 0.0002}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name} is {info['dtype']}; write the model in f32"
        a, b = info["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"]).copy()
    return tensors


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        blob = np.ascontiguousarray(t, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def interleave(w, heads):
    """llama.cpp's converter order: each head's two rotary halves interleaved row by row."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def deinterleave(w, heads):
    return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def random_kquant(rng, qtype, rows, cols):
    elements, size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rows * cols // elements
    raw = rng.integers(0, 256, size=(blocks, size), dtype=np.uint8)
    for offset in HALF_FIELDS[qtype]:
        halves = (rng.uniform(0.5, 1.0, size=blocks) * KQUANT_SCALE[qtype]).astype(np.float16)
        raw[:, offset:offset + 2] = halves.view(np.uint8).reshape(blocks, 2)
    return raw.reshape(rows, -1)


def tokenizer_metadata(directory, writer, architecture, pre_override, out, with_chat_template):
    tok = json.load(open(f"{directory}/tokenizer.json"))
    config = json.load(open(f"{directory}/tokenizer_config.json"))
    model = tok["model"]
    vocab = dict(model["vocab"])
    added = {t["content"]: t for t in tok.get("added_tokens", [])}
    for t in added.values():
        vocab[t["content"]] = t["id"]
    tokens = [None] * (max(vocab.values()) + 1)
    for text, i in vocab.items():
        tokens[i] = text
    tokens = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
    types = []
    for t in tokens:
        if t in added and added[t]["special"]:
            types.append(gguf.TokenType.UNKNOWN if t == model.get("unk_token") else gguf.TokenType.CONTROL)
        elif t.startswith("<0x") and len(t) == 6:
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    spm = model.get("byte_fallback", False)
    if spm:
        # SentencePiece keeps scores, not merges: a piece made by an earlier merge scores higher.
        rank = {}
        for r, m in enumerate(merges):
            rank.setdefault(m.replace(" ", ""), r)
        scores = [0.0 if ty != gguf.TokenType.NORMAL else -float(rank.get(t, len(merges) + i))
                  for i, (t, ty) in enumerate(zip(tokens, types))]
        writer.add_tokenizer_model("llama")
        writer.add_token_scores(scores)
        # Gemma's SentencePiece model prepends no "▁" (its converter says so explicitly).
        writer.add_add_space_prefix(architecture != "gemma3")
        writer.add_unk_token_id(vocab[model["unk_token"]])
        write_converted_spm(out + ".tokenizer.json", tok, tokens, types, scores)
    else:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre_override or ("llama-bpe" if architecture == "llama" else "qwen2"))
        writer.add_token_merges(merges)
    if config.get("bos_token"):
        writer.add_bos_token_id(vocab[config["bos_token"]])
    writer.add_add_bos_token(bool(config.get("add_bos_token", False)))
    writer.add_eos_token_id(vocab[config["eos_token"]])
    if with_chat_template:
        writer.add_chat_template(config["chat_template"])


def write_converted_spm(path, tok, tokens, types, scores):
    """The tokenizer.json HF's converter makes from SentencePiece pieces and scores."""
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for i, t in enumerate(tokens):
        if types[i] != gguf.TokenType.NORMAL:
            continue
        local = [(t[:k], t[k:]) for k in range(1, len(t)) if t[:k] in vocab and t[k:] in vocab]
        local.sort(key=lambda p: (vocab[p[0]], vocab[p[1]]))
        merges += [(scores[i], i, l, r) for l, r in local]
    merges.sort(key=lambda m: -m[0])  # stable: ties keep token order
    converted = dict(tok)
    converted["model"] = dict(tok["model"], vocab=vocab, merges=[[l, r] for _, _, l, r in merges])
    json.dump(converted, open(path, "w"))


def gemma3_metadata(writer, config, head_dim):
    """The window and softcap; what llama.cpp fixes for gemma3 is checked, not written."""
    layers = config["num_hidden_layers"]
    types = config.get("layer_types") or ["full_attention"] * layers
    assert types == ["full_attention" if i % 6 == 5 else "sliding_attention" for i in range(layers)], \
        "llama.cpp assumes five sliding layers, then a global one"
    assert config.get("query_pre_attn_scalar", head_dim) == head_dim, "llama.cpp scales attention by 1/sqrt(head_dim)"
    rope = config.get("rope_parameters") or {}
    local = rope.get("sliding_attention", {}).get("rope_theta", config.get("rope_local_base_freq", 10000.0))
    assert local == 10000.0, "llama.cpp's local rope base is 10000"
    writer.add_sliding_window(config["sliding_window"])
    if config.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(config["final_logit_softcapping"])
    scaling = rope.get("full_attention") or config.get("rope_scaling") or {}
    if scaling.get("rope_type") == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(scaling["factor"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("out")
    parser.add_argument("--types", default="f32")
    parser.add_argument("--arch")
    parser.add_argument("--pre")
    parser.add_argument("--undecodable-type", action="store_true")
    parser.add_argument("--alignment", type=int)
    parser.add_argument("--no-chat-template", action="store_true")
    args = parser.parse_args()
    directory = args.directory
    config = json.load(open(f"{directory}/config.json"))
    tensors = read_safetensors(f"{directory}/model.safetensors")
    architecture = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2",
                    "Qwen3ForCausalLM": "qwen3", "Gemma3ForCausalLM": "gemma3"}[config["architectures"][0]]
    permutes = architecture == "llama"
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads

    writer = gguf.GGUFWriter(args.out, args.arch or architecture)
    writer.add_name("synthetic")
    if args.alignment:
        writer.add_custom_alignment(args.alignment)
    # One key of each GGUF value type, for the reader's tests.
    writer.add_uint8("test.uint8", 200)
    writer.add_int8("test.int8", -100)
    writer.add_uint16("test.uint16", 60000)
    writer.add_int16("test.int16", -30000)
    writer.add_uint32("test.uint32", 4000000000)
    writer.add_int32("test.int32", -2000000000)
    writer.add_uint64("test.uint64", 2**40)
    writer.add_int64("test.int64", -(2**40))
    writer.add_float32("test.float32", 0.25)
    writer.add_float64("test.float64", -1.5)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "héllo")
    writer.add_array("test.array", [1, 2, 3])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    rope = config.get("rope_parameters") or {}
    if architecture == "gemma3":
        gemma3_metadata(writer, config, head_dim)
        rope = rope.get("full_attention", rope)
    writer.add_rope_freq_base(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    tokenizer_metadata(directory, writer, architecture, args.pre, args.out, not args.no_chat_template)

    scaling = config.get("rope_scaling")
    if scaling and scaling.get("rope_type") == "llama3":
        base = config.get("rope_theta", 10000.0)
        freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
        original = scaling["original_max_position_embeddings"]
        low, high, factor = scaling["low_freq_factor"], scaling["high_freq_factor"], scaling["factor"]
        factors = []
        for f in freqs:
            wavelength = 2 * math.pi / f
            if wavelength < original / high:
                factors.append(1.0)
            elif wavelength > original / low:
                factors.append(factor)
            else:
                smooth = (original / wavelength - low) / (high - low)
                factors.append(1 / ((1 - smooth) / factor + smooth))
        writer.add_rope_scaling_orig_ctx_len(original)
        writer.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))

    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    suffixes = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
                "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
                "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    if architecture == "gemma3":
        suffixes.update({"post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
                         "post_feedforward_layernorm": "post_ffw_norm"})
    rng = np.random.default_rng(5)
    rotation = [T.Q8_0, T.Q4_K, T.Q4_0, T.Q6_K, T.Q4_1, T.Q2_K, T.Q5_0, T.Q3_K, T.Q5_1, T.Q5_K, T.F16, T.BF16]
    matrices = 0
    rewritten = {}
    for hf_name, w in tensors.items():
        if hf_name in names:
            name = names[hf_name]
        else:
            layer, rest = hf_name[len("model.layers."):].split(".", 1)
            stem, kind = rest.rsplit(".", 1)
            name = f"blk.{layer}.{suffixes[stem]}.{kind}"
        rows = None
        if permutes and (".q_proj." in hf_name or ".k_proj." in hf_name):
            rows = heads if ".q_proj." in hf_name else kv_heads
            w = interleave(w, rows)
        if architecture == "gemma3" and hf_name.endswith("norm.weight"):
            w = w + np.float32(1)  # Gemma's RMSNorm scales by 1 + w; llama.cpp stores 1 + w
        stored, raw_type = w.astype(np.float32), None
        if w.ndim == 2 and args.types == "f16":
            stored = w.astype(np.float16)
        elif w.ndim == 2 and args.types == "mixed":
            qtype = rotation[matrices % len(rotation)]
            matrices += 1
            if qtype in KQUANTS:
                stored, raw_type = random_kquant(rng, qtype, *w.shape), qtype
            elif qtype in LEGACY:
                stored, raw_type = quantize(w.astype(np.float32), qtype), qtype
            elif qtype == T.F16:
                stored = w.astype(np.float16)
            else:
                stored, raw_type = quantize(w.astype(np.float32), T.BF16), T.BF16
        if args.undecodable_type and name == "blk.0.ffn_up.weight":
            stored, raw_type = random_kquant_like(rng, T.IQ4_NL, *w.shape), T.IQ4_NL
        writer.add_tensor(name, stored, raw_dtype=raw_type)
        if raw_type is not None and raw_type != T.IQ4_NL:
            back = dequantize(stored, raw_type).reshape(w.shape)
        else:
            back = stored.astype(np.float32)
        if rows is not None:
            back = deinterleave(back, rows)
        if architecture == "gemma3" and hf_name.endswith("norm.weight"):
            back = back - np.float32(1)
        rewritten[hf_name] = back
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if args.types != "f32" and not args.undecodable_type:
        write_safetensors(f"{directory}/model.safetensors", rewritten)


def random_kquant_like(rng, qtype, rows, cols):
    elements, size = gguf.GGML_QUANT_SIZES[qtype]
    return rng.integers(0, 256, size=(rows, cols // elements * size), dtype=np.uint8)


if __name__ == "__main__":
    main()
