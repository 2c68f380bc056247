#!/usr/bin/env python3
"""Checks the NumPy reference forward pass (reference_forward.py) against HF transformers on a
model directory, and prints what transformers makes of its tokenizer and chat template. Not part
of the test suite (it needs torch and transformers); run by hand when either reference changes:

  hifc synth-model --arch qwen2 --preset tiny --dtype f32 --out /tmp/q
  python3 Tests/ModelsTests/Reference/check_against_transformers.py /tmp/q

Recorded 2026-11-24 with torch 2.13.0+cpu, transformers 5.24.0 on tiny f32 synth models: max
relative logit difference 4.7e-7 (llama, with llama3 rope scaling), 4.4e-7 (mistral),
4.7e-7 (qwen2, biases and tied embeddings)."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

directory = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(directory)
print("encode('Hello world'):", tokenizer("Hello world").input_ids)
print("chat:", repr(tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                                  add_generation_prompt=True)))
model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
ids = [5, 17, 42, 99, 3, 250, 8, 64, 128, 7, 33, 21, 11, 200, 19, 77, 4, 90, 31, 60]
with torch.inference_mode():
    theirs = model(torch.tensor([ids])).logits[0, -1].double().numpy()
with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as request:
    json.dump({"prompt": ids, "steps": 0}, request)
script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_forward.py")
out = subprocess.run([sys.executable, script, directory, request.name], check=True, capture_output=True, text=True)
ours = np.array(json.loads(out.stdout)["logits"])
print("max relative logit difference, NumPy reference vs transformers:",
      np.abs(theirs - ours).max() / np.abs(ours).max())
