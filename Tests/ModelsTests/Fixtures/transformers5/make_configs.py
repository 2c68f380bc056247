#!/usr/bin/env python3
"""Writes the config.json files of this folder as transformers 5.17's save_pretrained does
(`pip install transformers==5.17.*`; no torch needed): tiny Llama, Mistral, Qwen2, Qwen3 and
Gemma 3 text configs whose shapes fit the tiny synthetic models of SynthModel, with rope
scaling, sliding windows and Gemma's per-layer-type rope parameters.

Usage: make_configs.py OUT_DIR   (then copy OUT_DIR/NAME/config.json to NAME.json here)"""
import os
import sys

from transformers import Gemma3TextConfig, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

out = sys.argv[1]
common = dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=384, max_position_embeddings=2048)
cfgs = {
 "llama": LlamaConfig(**common, rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
 "mistral": MistralConfig(**common, rope_theta=1000000.0, sliding_window=7, bos_token_id=1, eos_token_id=2),
 "qwen2": Qwen2Config(**common, rope_theta=1000000.0, use_sliding_window=True, sliding_window=5, max_window_layers=1, tie_word_embeddings=True),
 "qwen3": Qwen3Config(**{**common, "num_hidden_layers": 3}, head_dim=32, rope_theta=1000000.0, use_sliding_window=True, sliding_window=6, max_window_layers=1),
 "gemma3": Gemma3TextConfig(**{**common, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 1}, head_dim=32, query_pre_attn_scalar=24, sliding_window=5, sliding_window_pattern=2, rope_theta=1000000.0, rope_local_base_freq=10000.0, rope_scaling={"rope_type": "linear", "factor": 8.0}, final_logit_softcapping=30.0),
}
for name, c in cfgs.items():
    c.architectures = [{"llama":"LlamaForCausalLM","mistral":"MistralForCausalLM","qwen2":"Qwen2ForCausalLM","qwen3":"Qwen3ForCausalLM","gemma3":"Gemma3ForCausalLM"}[name]]
    c.dtype = "float32"
    d = os.path.join(out, name); os.makedirs(d, exist_ok=True)
    c.save_pretrained(d)
