# Compares the prefill logits HiFC computed for a synthetic model (`hifc check gpu --keep-models`
# leaves them beside the model) with PyTorch/transformers on the same weights: the model in float32
# (the reference) and in bfloat16 (what a bf16 GPU deployment computes).
# Usage: python3 bench/cuda/torch_logits.py MODEL_DIR [MODEL_DIR ...]
import json
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


for d in sys.argv[1:]:
    prompt = json.load(open(f"{d}/reference-prompt.json"))
    cpu = np.fromfile(f"{d}/reference-logits-cpu.f32", dtype=np.float32).astype(np.float64)
    cuda = np.fromfile(f"{d}/reference-logits-cuda.f32", dtype=np.float32).astype(np.float64)
    ids = torch.tensor([prompt], device="cuda")
    out = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=dtype).to("cuda").eval()
        with torch.no_grad():
            out[name] = model(ids).logits[0, -1].double().cpu().numpy()
        del model
    ref = out["float32"]
    print(f"{d}: {len(prompt)} prompt tokens, vocab {ref.shape[0]}")
    print(f"  hifc cuda vs torch float32: {rel(cuda, ref):.3e}   argmax {int(cuda.argmax())} vs {int(ref.argmax())}")
    print(f"  hifc cpu  vs torch float32: {rel(cpu, ref):.3e}   argmax {int(cpu.argmax())} vs {int(ref.argmax())}")
    print(f"  torch bf16 vs torch float32: {rel(out['bfloat16'], ref):.3e}")
