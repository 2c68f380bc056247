# Tensor-core prefill attention over the paged KV pool (Sources/CUDA/Kernels/prefill_attention.cu)
# on the GPU: correctness against a float64 torch reference for several chunk mixes (prefill from
# position 0, a chunk starting mid-sequence, decode rows, GQA 1/3/4/8, head dims 64/128, block
# sizes 16/32/48/64/128, a q stride wider than the heads, pool slots past each context poisoned with
# NaN), then timing for one sequence of T tokens in the 8B Llama layer shape beside
# torch.nn.functional.scaled_dot_product_attention (bf16, contiguous, causal, GQA), both GPU-only
# through CUDA graphs.
# Usage (GPU machine): python3 bench/cuda/lab_prefill_attention.py [kernels_dir [baseline_kernels_dir]]
#   or: python3 bench/cuda/lab_prefill_attention.py --profile KERNEL [--tokens T] [kernels_dir]: no checks or
#   sweeps; KERNEL (a Hopper variant's name) is launched 3 times on the timing shape of T tokens (8192),
#   outside any graph, for a profiler (ncu -k) to pick up.
# A baseline folder (another commit's Sources/CUDA/Kernels) is timed in the same process: the
# variants of the same names and launch shapes that it has (BASELINE_VARIANTS).
# On Hopper (compute capability 9.0, kernels compiled for sm_90a as hifc does) the warp-specialized
# wgmma kernel, prefill_attention_d128_hopper, is checked and timed too (bench/results/prefill-attention-h200.md;
# the variants that lost there are in commit fb8855a's bench/cuda/lab_prefill_wgmma.cu); so are
# the lab-only variants of bench/cuda/lab_prefill_variants.cu, appended to prefill_attention.cu.
import ctypes
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernel_lab import KERNELS, Lab, graph_ms, pool_tensor_map, rel_err, settle, with_variants  # noqa: E402

TILE_TOKENS = 64  # PA_TILE_TOKENS
# Kernel variants (warps, m16 row tiles per warp, keys per shared tile, K/V tiles in flight) per
# head dim.
VARIANTS = {64: [(4, 1, 64, 2), (8, 2, 64, 2)], 128: [(4, 1, 64, 2), (8, 2, 64, 3)]}


# The Hopper kernels: (warps, 1, keys per tile, tiles in flight, kernel name); one of their three
# warpgroups copies, two compute 64 rows each.
HOPPER_VARIANTS = [(12, 1, 128, 3, "prefill_attention_d128_hopper")]
# Timed from the baseline folder too, when one is given.
BASELINE_VARIANTS = [(8, 2, 64, 3), HOPPER_VARIANTS[0]]


def is_hopper(cfg):
    return len(cfg) == 5


def variant_name(hd, v):
    if is_hopper(v):
        return v[4]
    w, m, n, s = v
    return f"prefill_attention_d{hd}_w{w}m{m}n{n}s{s}"


def tile_table(chunks):
    """chunks: [(query_start, query_length, context_length)], sequence i uses block-table row i.
    The same table CUDAPreparedStep builds: int4 {first row, tokens, table row, keys visible to the
    first token} per 64 tokens of a chunk, heaviest first."""
    tiles = []
    for i, (start, qlen, ctx) in enumerate(chunks):
        for off in range(0, qlen, TILE_TOKENS):
            rows = min(TILE_TOKENS, qlen - off)
            tiles.append((start + off, rows, i, ctx - qlen + off + 1))
    tiles.sort(key=lambda t: -(t[3] + t[1] - 1))
    return torch.tensor(tiles, dtype=torch.int32, device="cuda").view(-1, 4)


def launch_config(hd, cfg, group, n_tiles):
    warps, mt, bn, stages = cfg[:4]
    hopper = is_hopper(cfg)
    bm = 128 if hopper else 16 * mt * warps
    tpc = min(TILE_TOKENS, bm // group)
    slices = (TILE_TOKENS + tpc - 1) // tpc
    # The Hopper kernel aligns its regions to 1024 bytes inside the allocation, then its mbarriers
    # (four a stage; two in kernels from before 2026-12-06).
    shared = (bm + 2 * stages * bn) * hd * 2 + (1024 + 32 * stages if hopper else 0)
    return slices * n_tiles, shared


class Pool:
    """A block-major bf16 pool [blocks][layers][2][bt][kvh][hd] with `pad` spare elements after
    each block; everything but the sequences' own K/V is NaN."""

    def __init__(self, layers, kvh, hd, bt, blocks, pad=1024):
        self.layers, self.kvh, self.hd, self.bt, self.pad = layers, kvh, hd, bt, pad
        self.block_elems = layers * 2 * bt * kvh * hd
        self.stride = self.block_elems + pad
        self.data = torch.full((blocks, self.stride), float("nan"), dtype=torch.bfloat16, device="cuda")
        self.maps = {}  # the Hopper kernels' tensor maps by box tokens (kv_map)

    def write(self, table, layer, k, v):
        """k, v: [n, kvh, hd] for positions 0..n-1 of a sequence with block table `table`."""
        n, te = k.shape[0], self.kvh * self.hd
        pos = torch.arange(n, device="cuda")
        blocks = table.long()[pos // self.bt]
        cols = torch.arange(te, device="cuda")
        for which, x in ((0, k), (1, v)):
            base = ((layer * 2 + which) * self.bt + pos % self.bt) * te
            self.data[blocks[:, None], base[:, None] + cols[None, :]] = x.reshape(n, te).to(torch.bfloat16)


def hopper_source(kernels_dir):
    return open(os.path.join(kernels_dir, "prefill_attention.cu")).read()


def box_tokens(kernels_dir, bt):
    """Tokens of a bulk copy of the Hopper kernel in `kernels_dir`: the largest power of two
    dividing both the block and 128 tokens (CUDAKernels.prefillMapBoxTokens), or 8 for kernels
    from before 2026-12-06, whose copying lanes took 8 tokens each."""
    return min(128, bt & -bt) if "hopper_box_tokens" in hopper_source(kernels_dir) else 8


def kv_map(lab, pool):
    """The pool's tensor map for the Hopper kernel's bulk copies (kernel_lab.pool_tensor_map), in
    boxes of box_tokens, made once a box size."""
    tokens = box_tokens(lab.kernels_dir, pool.bt)
    if tokens not in pool.maps:
        pool.maps[tokens] = pool_tensor_map(lab, pool.data.data_ptr(), pool.hd, pool.kvh, pool.bt, pool.layers, pool.data.shape[0],
                                            pool.stride * 2, tokens)
    return pool.maps[tokens]


def run_kernel(lab, cfg, q, q_stride, pool, tables, tiles, out, qh, kvh, hd, layer, scale):
    grid_y, shared = launch_config(hd, cfg, qh // kvh, tiles.shape[0])
    grid = (kvh, grid_y)
    extra = [0]
    if is_hopper(cfg):
        extra.append(kv_map(lab, pool))
    if is_hopper(cfg) and "hopper_unit" in hopper_source(lab.kernels_dir):
        # Persistent (kernels from 2026-12-06 on): at most one CTA a multiprocessor over the kvh x
        # grid_y work units, as CUDAKernels.prefillHopperBlocks launches it.
        grid = (max(1, min(kvh * grid_y, torch.cuda.get_device_properties(0).multi_processor_count)), 1)
        extra.append(grid_y)

    def call():
        lab.launch(variant_name(hd, cfg), grid, (32 * cfg[0],),
                   [q, q_stride, pool.data, tables, tables.shape[1], tiles, out, qh, kvh, layer, pool.bt,
                    ctypes.c_long(pool.stride), scale] + extra, shared=shared)
    return call


def reference(q, ks, vs, chunks, qh, kvh, hd, scale):
    """float64; q [rows, qh*hd] (already sliced to the heads), ks/vs[i] [ctx_i, kvh, hd]."""
    out = torch.zeros(q.shape[0], qh * hd, dtype=torch.float64, device="cuda")
    for i, (start, qlen, ctx) in enumerate(chunks):
        qq = q[start:start + qlen].double().view(qlen, qh, hd).transpose(0, 1)            # [qh, qlen, hd]
        k = ks[i][:ctx].double().repeat_interleave(qh // kvh, dim=1).transpose(0, 1)       # [qh, ctx, hd]
        v = vs[i][:ctx].double().repeat_interleave(qh // kvh, dim=1).transpose(0, 1)
        s = torch.einsum("hqd,hkd->hqk", qq, k) * scale
        limit = ctx - qlen + torch.arange(qlen, device="cuda") + 1
        mask = torch.arange(ctx, device="cuda")[None, :] >= limit[:, None]
        s = s.masked_fill(mask[None], float("-inf"))
        p = torch.softmax(s, dim=-1)
        out[start:start + qlen] = torch.einsum("hqk,hkd->qhd", p, v).reshape(qlen, qh * hd)
    return out


def check_mix(lab, name, hd, qh, kvh, bt, seqs, cfg, gen):
    """seqs: [(cached, new)] tokens per sequence; a (n, 1) entry is a decode row."""
    layers, layer = 3, 1
    blocks_per = [(c + n + bt - 1) // bt for c, n in seqs]
    total_blocks = sum(blocks_per) + 3
    pool = Pool(layers, kvh, hd, bt, total_blocks)
    perm = torch.randperm(total_blocks, generator=gen).tolist()
    width = max(blocks_per)
    tables = torch.full((len(seqs), width + 2), -1, dtype=torch.int32)
    ks, vs, chunks, start = [], [], [], 0
    for i, (cached, new) in enumerate(seqs):
        ctx = cached + new
        tables[i, :blocks_per[i]] = torch.tensor(perm[:blocks_per[i]], dtype=torch.int32)
        perm = perm[blocks_per[i]:]
        k = (torch.rand(ctx, kvh, hd, generator=gen) - 0.5).to(torch.bfloat16).cuda()
        v = (torch.rand(ctx, kvh, hd, generator=gen) - 0.5).to(torch.bfloat16).cuda()
        ks.append(k)
        vs.append(v)
        chunks.append((start, new, ctx))
        start += new
    tables = tables.cuda()
    for i in range(len(seqs)):
        pool.write(tables[i], layer, ks[i], vs[i])
    rows = start
    # q rows wider than the query heads (as in a fused qkv projection), random in [-2, 2).
    q_stride = (qh + 2 * kvh) * hd
    q = (torch.rand(rows, q_stride, generator=gen) * 4 - 2).cuda()
    tiles = tile_table(chunks)
    out = torch.full((rows, qh * hd), float("nan"), dtype=torch.bfloat16, device="cuda")
    scale = hd ** -0.5
    variant = variant_name(hd, cfg)
    run_kernel(lab, cfg, q, q_stride, pool, tables, tiles, out, qh, kvh, hd, layer, scale)()
    torch.cuda.synchronize()
    ref = reference(q[:, :qh * hd], ks, vs, chunks, qh, kvh, hd, scale)
    err = rel_err(out.float(), ref)
    ok = err < 8e-3 and not torch.isnan(out).any().item()
    print(f"check {variant:30s} {name:58s}: err {err:.2e} {'ok' if ok else 'FAIL'}")
    return ok


TIMING_SHAPE = dict(layers=32, kvh=8, hd=128, bt=64, qh=32, layer=5)


def timing_inputs(t_tokens, gen):
    """One causal sequence of t_tokens in the 8B layer shape: (pool, table, k, v, q, tiles)."""
    layers, kvh, hd, bt, qh, layer = TIMING_SHAPE.values()
    nb = (t_tokens + bt - 1) // bt
    pool = Pool(layers, kvh, hd, bt, nb, pad=0)
    table = torch.randperm(nb, generator=gen).to(torch.int32).cuda().view(1, nb)
    k = (torch.rand(t_tokens, kvh, hd, generator=gen) - 0.5).to(torch.bfloat16).cuda()
    v = (torch.rand(t_tokens, kvh, hd, generator=gen) - 0.5).to(torch.bfloat16).cuda()
    pool.write(table[0], layer, k, v)
    q = (torch.rand(t_tokens, qh * hd, generator=gen) * 4 - 2).cuda()
    return pool, table, k, v, q, tile_table([(0, t_tokens, t_tokens)])


def profile(lab, kernel, gen, t_tokens=8192):
    """Three plain launches of one Hopper kernel on the timing shape, for ncu."""
    layers, kvh, hd, bt, qh, layer = TIMING_SHAPE.values()
    cfg = next(v for v in HOPPER_VARIANTS if v[4] == kernel)
    pool, table, _, _, q, tiles = timing_inputs(t_tokens, gen)
    out = torch.empty((t_tokens, qh * hd), dtype=torch.bfloat16, device="cuda")
    call = run_kernel(lab, cfg, q, qh * hd, pool, table, tiles, out, qh, kvh, hd, layer, hd ** -0.5)
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    print(f"profiled {kernel} at T={t_tokens}")


def timing(lab, t_tokens, variants, gen, base=None):
    """base: the baseline's Lab, or None."""
    layers, kvh, hd, bt, qh, layer = TIMING_SHAPE.values()
    pool, table, k, v, q, tiles = timing_inputs(t_tokens, gen)
    scale = hd ** -0.5
    flops = 4.0 * qh * t_tokens * t_tokens * hd / 2

    qs = q.view(t_tokens, qh, hd).transpose(0, 1).unsqueeze(0).to(torch.bfloat16).contiguous()
    kt = k.transpose(0, 1).unsqueeze(0).contiguous()
    vt = v.transpose(0, 1).unsqueeze(0).contiguous()
    sd = lambda: F.scaled_dot_product_attention(qs, kt, vt, is_causal=True, enable_gqa=True, scale=scale)  # noqa: E731
    sd_out = sd().squeeze(0).transpose(0, 1).reshape(t_tokens, qh * hd)
    ref = None
    if t_tokens <= 2048:
        ref = reference(q, [k], [v], [(0, t_tokens, t_tokens)], qh, kvh, hd, scale)
    base_variants = [cfg for cfg in BASELINE_VARIANTS if cfg in variants]
    runs = [(lab, cfg, False) for cfg in variants] + ([(base, cfg, True) for cfg in base_variants] if base else [])
    outs = [torch.full((t_tokens, qh * hd), float("nan"), dtype=torch.bfloat16, device="cuda") for _ in runs]
    calls = [run_kernel(which, cfg, q, qh * hd, pool, table, tiles, out, qh, kvh, hd, layer, scale)
             for (which, cfg, _), out in zip(runs, outs)]
    # sdpa, then every kernel, twice, each one's faster kept: in the decode lab the first launch
    # timed after the inputs were written ran up to 17% slow on an H100 although settled for a
    # second (cuda-graphs-h200.md, 2026-12-06), which would flatter every ratio to sdpa.
    settle(sd)
    rounds = [[graph_ms(fn) for fn in [sd] + calls] for _ in range(2)]
    sd_ms, *times = [min(first, second) for first, second in zip(*rounds)]
    lines = [f"T={t_tokens:5d} {'sdpa (bf16, contiguous)':40s}: {sd_ms * 1000:8.1f} us {flops / sd_ms / 1e9:6.1f} TFLOP/s"
             + (f"  err vs f64 {rel_err(sd_out.float(), ref):.2e}" if ref is not None else "")]
    for (which, cfg, is_base), out, ms in zip(runs, outs, times):
        err_sd = rel_err(out.float(), sd_out.float())
        err = f"err vs f64 {rel_err(out.float(), ref):.2e}" if ref is not None else ""
        label = ("base " if is_base else "ours ") + variant_name(hd, cfg)
        lines.append(f"T={t_tokens:5d} {label:40s}: {ms * 1000:8.1f} us {flops / ms / 1e9:6.1f} TFLOP/s"
                     f"  {ms / sd_ms:5.2f}x sdpa  {err}  diff vs sdpa {err_sd:.2e}")
    del pool
    torch.cuda.empty_cache()
    return lines


def main():
    profiled, profiled_tokens = None, 8192
    if len(sys.argv) > 2 and sys.argv[1] == "--profile":
        profiled = sys.argv[2]
        del sys.argv[1:3]
        if len(sys.argv) > 2 and sys.argv[1] == "--tokens":
            profiled_tokens = int(sys.argv[2])
            del sys.argv[1:3]
    kernels = sys.argv[1] if len(sys.argv) > 1 else KERNELS
    variants = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lab_prefill_variants.cu")
    lab = Lab(kernels_dir=with_variants(kernels, "prefill_attention", variants), modules=["prefill_attention"])
    if profiled:
        profile(lab, profiled, torch.Generator().manual_seed(20261124), profiled_tokens)
        return
    if torch.cuda.get_device_capability() == (9, 0):
        VARIANTS[128] = VARIANTS[128] + HOPPER_VARIANTS
    base = Lab(kernels_dir=sys.argv[2], modules=["prefill_attention"]) if len(sys.argv) > 2 else None
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, kernels from {os.path.abspath(kernels)}"
          + (f", baseline from {os.path.abspath(sys.argv[2])}" if base else ""))
    gen = torch.Generator().manual_seed(20261124)
    mixes = [
        # (name, head dim, q heads, kv heads, block tokens, [(cached, new)])
        ("GQA 4, bt 16: 100 from 0, 77 after 300, decode@513, 64 from 0", 128, 8, 2, 16, [(0, 100), (300, 77), (512, 1), (0, 64)]),
        ("GQA 1, bt 64: 100 from 0, 77 after 300, decode@513, 64 from 0", 64, 4, 4, 64, [(0, 100), (300, 77), (512, 1), (0, 64)]),
        ("GQA 8, bt 32: decode@40, 200 after 1000, decode@7, 1 from 0", 128, 16, 2, 32, [(39, 1), (1000, 200), (6, 1), (0, 1)]),
        ("GQA 4, bt 128: 333 from 0, decode@129, 65 after 63", 64, 8, 2, 128, [(0, 333), (128, 1), (63, 65)]),
        ("GQA 3, bt 64: 150 from 0, decode@90, 31 after 17", 128, 6, 2, 64, [(0, 150), (89, 1), (17, 31)]),
        ("GQA 4, bt 64: one 1000-token prompt", 128, 32, 8, 64, [(0, 1000)]),
        ("GQA 4, bt 48: 300 from 0, decode@200, 70 after 130", 128, 8, 2, 48, [(0, 300), (199, 1), (130, 70)]),
    ]
    failures = 0
    for name, hd, qh, kvh, bt, seqs in mixes:
        for cfg in VARIANTS[hd]:
            failures += 0 if check_mix(lab, name, hd, qh, kvh, bt, seqs, cfg, gen) else 1
    print("timing: one sequence of T tokens, 32 query heads over 8 KV heads of 128, 64-token blocks, shuffled table; GPU time via CUDA graphs")
    for t in (512, 1024, 2048, 8192):
        for line in timing(lab, t, VARIANTS[128], gen, base):
            print(line)
    print("all checks ok" if failures == 0 else f"{failures} checks FAILED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
