# PyTorch + transformers (bf16, sdpa attention) on the same model directory and batch shapes as
# `hifc bench model --device cuda`: prefill tokens/s and the median decode step time, with the
# decode step's memory roofline (bytes it must read / a 1 GiB device copy's bandwidth).
# Usage (GPU machine): python3 bench/cuda/torch_model.py MODEL_DIR --batch 1,16 --prompt-tokens 2048 --decode-tokens 32
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM

from kernel_lab import copy_bandwidth_gbs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", default="1,16")
    ap.add_argument("--prompt-tokens", type=int, default=2048)
    ap.add_argument("--decode-tokens", type=int, default=32)
    args = ap.parse_args()
    bw = copy_bandwidth_gbs()
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16, attn_implementation="sdpa").to("cuda").eval()
    c = model.config
    print(json.dumps({"engine": "torch", "torch": torch.__version__, "device": torch.cuda.get_device_name(),
                      "load_s": round(time.time() - t0, 1), "copy_gbs": round(bw)}))
    params = sum(p.numel() for p in model.parameters())
    tied = model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    weight_bytes = (params - (0 if tied else c.vocab_size * c.hidden_size)) * 2
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    g = torch.Generator().manual_seed(1)
    for batch in [int(b) for b in args.batch.split(",")]:
        prompt = torch.randint(0, c.vocab_size, (batch, args.prompt_tokens), generator=g).cuda()
        with torch.inference_mode():
            # Warm-up at the measured shapes (kernel choice, allocator), as hifc bench model does.
            warm = model(prompt, use_cache=True)
            model(warm.logits[:, -1:].argmax(-1), past_key_values=warm.past_key_values, use_cache=True)
            del warm
            torch.cuda.synchronize()
            start = time.time()
            out = model(prompt, use_cache=True)
            last = out.logits[:, -1].argmax(-1, keepdim=True)
            torch.cuda.synchronize()
            prefill = time.time() - start
            cache = out.past_key_values
            del out
            steps = []
            start = time.time()
            for _ in range(args.decode_tokens):
                s = time.time()
                out = model(last, past_key_values=cache, use_cache=True)
                logits = out.logits[:, -1].float().cpu()  # as hifc does: logits reach the host
                steps.append(time.time() - s)
                cache = out.past_key_values
                last = logits.argmax(-1, keepdim=True).cuda()
            decode = time.time() - start
        steps.sort()
        kv = batch * (args.prompt_tokens + args.decode_tokens / 2) * 2 * c.num_hidden_layers * c.num_key_value_heads * head_dim * 2
        step_ms = steps[len(steps) // 2] * 1000
        roof_ms = (weight_bytes + kv) / bw / 1e6
        print(json.dumps({"engine": "torch", "batch": batch, "prompt_tokens": args.prompt_tokens, "decode_tokens": args.decode_tokens,
                          "prefill_tok_s": batch * args.prompt_tokens / prefill, "decode_tok_s": batch * args.decode_tokens / decode,
                          "decode_step_ms": step_ms, "decode_step_bytes": weight_bytes + kv,
                          "roofline_ms": roof_ms, "x_roofline": step_ms / roof_ms}))
        del cache
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
