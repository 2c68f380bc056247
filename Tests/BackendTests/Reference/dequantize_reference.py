"""Random GGML blocks of every type HiFC decodes, and gguf-py's decoding of them.

Usage: dequantize_reference.py OUT_DIR SEED

Writes, per type, OUT_DIR/<TYPE>.blocks (raw blocks) and OUT_DIR/<TYPE>.f32 (gguf-py's
`gguf.quants.dequantize` of them, little-endian float32). The blocks are random bytes whose f16
scale fields are replaced by finite values, so every bit pattern of the quants, scales and high
bits is exercised.
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGML_QUANT_SIZES
from gguf.quants import dequantize

# Byte offsets of the f16 scale fields (d, and m or dmin) within a block, per type.
HALF_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def main():
    out, seed = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(seed)
    for qtype in [T.F32, T.F16, T.BF16, *HALF_FIELDS]:
        block_elements, block_bytes = GGML_QUANT_SIZES[qtype]
        blocks = 64 if block_elements == 32 else 16
        if qtype == T.F32:
            raw = rng.standard_normal(blocks * 32, dtype=np.float32).view(np.uint8)
        elif qtype == T.F16:
            raw = rng.standard_normal(blocks * 32).astype(np.float16).view(np.uint8)
        elif qtype == T.BF16:
            raw = (rng.standard_normal(blocks * 32, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
        else:
            raw = rng.integers(0, 256, size=(blocks, block_bytes), dtype=np.uint8)
            for offset in HALF_FIELDS[qtype]:
                halves = rng.uniform(-0.5, 0.5, size=blocks).astype(np.float16)
                raw[:, offset:offset + 2] = halves.view(np.uint8).reshape(blocks, 2)
            raw = raw.reshape(-1)
        values = dequantize(raw, qtype).astype("<f4")
        raw.tofile(f"{out}/{qtype.name}.blocks")
        values.tofile(f"{out}/{qtype.name}.f32")


if __name__ == "__main__":
    main()
