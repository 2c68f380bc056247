#!/usr/bin/env python3
"""The same request as reference_forward.py answered by HF transformers itself (PyTorch, float32,
eager attention) on a model directory, for TransformersComparisonTests.

Usage: transformers_forward.py MODEL_DIR REQUEST.json
REQUEST: {"prompt": [ids], "steps": N}
Prints JSON: {"logits": last-position logits of the prompt, "greedy": N greedily chosen ids,
"transformers": version}; exits 3 when torch or transformers cannot be imported."""
import json
import sys

try:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
except ImportError as error:
    print(f"transformers or torch is not installed: {error}", file=sys.stderr)
    sys.exit(3)


def main():
    directory, request_path = sys.argv[1], sys.argv[2]
    with open(request_path) as f:
        request = json.load(f)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    ids = list(request["prompt"])
    greedy = []
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1].double()
        first = logits.tolist()
        for _ in range(request.get("steps", 0)):
            nxt = int(torch.argmax(logits))
            greedy.append(nxt)
            ids.append(nxt)
            logits = model(torch.tensor([ids])).logits[0, -1].double()
    json.dump({"logits": first, "greedy": greedy, "transformers": transformers.__version__}, sys.stdout)


if __name__ == "__main__":
    main()
