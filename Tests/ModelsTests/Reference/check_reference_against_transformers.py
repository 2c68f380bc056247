#!/usr/bin/env python3
"""Checks reference_forward.py itself against HF transformers (needs torch and transformers 5):
random tiny Llama (llama3 rope), Mistral and Qwen2 (sliding windows), Qwen3 (q/k norm, window) and
Gemma 3 (local/global rope, windows, softcap) models made by transformers, saved with
save_pretrained, answered by both; prints the relative logit error and whether the greedy tokens
agree. Usage: check_reference_against_transformers.py reference_forward.py"""
import json, subprocess, sys, os, tempfile
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, Gemma3TextConfig
torch.manual_seed(0)
common = dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=384, max_position_embeddings=2048)
cfgs = {
 "llama": LlamaConfig(**common, rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
 "mistral": MistralConfig(**common, rope_theta=1000000.0, sliding_window=7),
 "qwen2": Qwen2Config(**common, rope_theta=1000000.0, use_sliding_window=True, sliding_window=5, max_window_layers=1),
 "qwen3": Qwen3Config(**{**common, "num_hidden_layers": 3}, head_dim=32, rope_theta=1000000.0, use_sliding_window=True, sliding_window=6, max_window_layers=1),
 "gemma3": Gemma3TextConfig(**{**common, "num_hidden_layers": 4, "num_key_value_heads": 1}, head_dim=32, query_pre_attn_scalar=24, sliding_window=5, sliding_window_pattern=2, rope_theta=1000000.0, rope_local_base_freq=10000.0, rope_scaling={"rope_type": "linear", "factor": 8.0}, final_logit_softcapping=30.0),
}
ref = sys.argv[1]
prompt = [5, 17, 42, 99, 3, 250, 8, 64, 128, 7, 33, 21, 11, 200, 19, 77, 4, 90, 31, 60]
for name, c in cfgs.items():
    c.architectures = None
    model = AutoModelForCausalLM.from_config(c, dtype=torch.float32, attn_implementation="eager")
    # Norm weights away from their init so (1 + w) vs w matters.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n: p.add_(torch.randn_like(p) * 0.1)
    d = tempfile.mkdtemp()
    model.save_pretrained(d)
    with open(d + "/req.json", "w") as f: json.dump({"prompt": prompt, "steps": 8}, f)
    out = json.loads(subprocess.check_output([sys.executable, ref, d, d + "/req.json"]))
    with torch.no_grad():
        ids = list(prompt)
        logits = model(torch.tensor([ids])).logits[0, -1].double()
        first = logits
        greedy = []
        for _ in range(8):
            nxt = int(torch.argmax(logits)); greedy.append(nxt); ids.append(nxt)
            logits = model(torch.tensor([ids])).logits[0, -1].double()
    err = (torch.tensor(out["logits"]) - first).abs().max().item() / first.abs().max().item()
    print(name, "rel err", err, "greedy equal", greedy == out["greedy"], os.listdir(d))
