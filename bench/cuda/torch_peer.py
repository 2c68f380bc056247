# Peer timings on the GPU machine with PyTorch, for comparison with `hifc check gpu --bench`:
# prefill attention through scaled_dot_product_attention (8B Llama shape: 32 query heads over 8
# KV heads of 128), and the decode matrix products of one 8B layer at batch 1 and 16.
# Usage: python3 bench/cuda/torch_peer.py
import torch
import torch.nn.functional as F

from kernel_lab import median_ms


def best_ms(fn):
    """The faster of two medians: a first timing after the inputs are written can run up to 17%
    slow (cuda-graphs-h200.md, 2026-12-06), which would flatter hifc's figures against these."""
    return min(median_ms(fn), median_ms(fn))


torch.manual_seed(0)
dev = "cuda"
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
for T in (512, 2048, 8192):
    q = torch.randn(1, 32, T, 128, device=dev, dtype=torch.bfloat16)
    k = torch.randn(1, 8, T, 128, device=dev, dtype=torch.bfloat16)
    v = torch.randn(1, 8, T, 128, device=dev, dtype=torch.bfloat16)
    ms = best_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
    flops = 4 * 32 * T * T * 128 / 2
    print(f"torch sdpa prefill T={T}: {ms:.4f} ms, {flops / ms / 1e9:.0f} TFLOP/s")
shapes = [("qkv", 6144, 4096), ("o", 4096, 4096), ("gate_up", 28672, 4096), ("down", 4096, 14336)]
for batch in (1, 16):
    total = 0.0
    for name, n, k in shapes:
        w = torch.randn(n, k, device=dev, dtype=torch.bfloat16)
        x = torch.randn(batch, k, device=dev, dtype=torch.bfloat16)
        ms = best_ms(lambda: F.linear(x, w))
        total += ms
        print(f"torch decode linear batch {batch} {name} {n}x{k}: {ms:.4f} ms, {n * k * 2 / ms / 1e6:.0f} GB/s")
    print(f"torch decode linears of one 8B layer, batch {batch}: {total:.3f} ms")
