// Lab-only (`LAB_WGMMA=1 python3 bench/cuda/lab_prefill_attention.py`): the prefill attention of
// prefill_attention.cu on Hopper's warpgroup MMAs (wgmma, sm_90a) instead of mma.sync. Same
// arguments, tile table, grouped-head row packing and masks; bf16 pool, head dim 128. Each
// warpgroup (4 warps) keeps 64 query rows; S = Q·Kᵀ takes Q and the K tile from shared memory
// (descriptors), O += P·V takes P from registers (the S accumulator's layout is the A fragment's)
// and the V tile from shared memory, transposed. The tiles are laid out as wgmma's 128-byte
// swizzle wants them: each 64-element half of a row is one 128-byte line of its own region, the
// 16-byte chunks of line r XORed with r mod 8 (1024-byte aligned regions). The copies stay cp.async
// (the block table sends each key row anywhere), so the same threads copy and compute, and one
// barrier a key tile lines the warpgroups up. The `o` variants compute the next tile's scores on
// the tensor cores while this tile's softmax runs; the others wait for each MMA group in turn.
// Measured in bench/results/prefill-attention-h200.md.

// d (64 x 64 fp32, this thread's 32) (+)= A · B for one k16 step: A 64 x 16 and B 64 (keys) x 16, both
// bf16 K-major in shared memory (descriptors); scale_d 0 overwrites d.
__device__ __forceinline__ void wgmma_m64n64k16_ss(float d[32], unsigned long long da, unsigned long long db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(scale_d));
}

// d (64 x 128 fp32, this thread's 64) (+)= A · B for one k16 step, both operands in shared memory
// (K-major descriptors): the scores of a 128-key tile.
__device__ __forceinline__ void wgmma_m64n128k16_ss(float d[64], unsigned long long da, unsigned long long db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(scale_d));
}

// d (64 x 128 fp32, this thread's 64) += A · B for one k16 step: A 64 x 16 bf16 in registers (the
// mma.sync m16n8k16 A fragment of this warp's 16 rows), B 16 (keys) x 128 bf16 MN-major in shared
// memory (descriptor, transposed).
__device__ __forceinline__ void wgmma_m64n128k16_rs(float d[64], unsigned int a0, unsigned int a1, unsigned int a2, unsigned int a3,
                                                    unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(db), "r"(1));
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Shared-memory writes of the generic proxy (st.shared, cp.async) made visible to wgmma's reads.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Pins registers that an in-flight wgmma writes: the compiler must not move or read them across
// this point (it does not know the MMA is asynchronous).
template <int N>
__device__ __forceinline__ void fence_operands(float (&r)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// A shared-memory matrix descriptor with the 128-byte swizzle: start address, leading and stride
// byte offsets (each >> 4 in 14 bits).
__device__ __forceinline__ unsigned long long wg_desc(unsigned int addr, unsigned int lbo, unsigned int sbo) {
    return (unsigned long long)((addr & 0x3ffff) >> 4) | ((unsigned long long)(lbo >> 4) << 16) |
           ((unsigned long long)(sbo >> 4) << 32) | (1ull << 62);
}

// Byte offset of 16-byte chunk c (0..15) of row r of a [R][128 bf16] tile in the swizzled layout.
template <int R>
__device__ __forceinline__ unsigned int wg_swz(int r, int c) { return (c >> 3) * (R * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4); }

// One key tile of a warpgroup's 64 rows: masks the scores `s` (keys from n0; `masked` when some
// row of the tile sees only part of it), updates the online softmax (running max `mx` and sum `l`
// of this thread's two rows, O rescaled when a max rises) and writes P as bf16 A fragments `pf`.
template <int BN>
__device__ __forceinline__ void wg_softmax(float (&s)[BN / 2], float (&o)[64], float (&mx)[2], float (&l)[2], const int (&lim)[2],
                                           const int (&lo)[2], int n0, bool masked, int tq, unsigned int (&pf)[BN / 16][4]) {
    constexpr int D = 128;
    if (masked) {
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
            const int key = n0 + j * 8 + 2 * tq;
            if (key >= lim[0] || key < lo[0]) s[4 * j] = NEG_INF;
            if (key + 1 >= lim[0] || key + 1 < lo[0]) s[4 * j + 1] = NEG_INF;
            if (key >= lim[1] || key < lo[1]) s[4 * j + 2] = NEG_INF;
            if (key + 1 >= lim[1] || key + 1 < lo[1]) s[4 * j + 3] = NEG_INF;
        }
    }
    float x0 = mx[0], x1 = mx[1];
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
        x0 = fmaxf(x0, fmaxf(s[4 * j], s[4 * j + 1]));
        x1 = fmaxf(x1, fmaxf(s[4 * j + 2], s[4 * j + 3]));
    }
    x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 1));
    x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 2));
    x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 1));
    x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 2));
    const float r0 = x0 == NEG_INF ? 0.0f : x0, r1 = x1 == NEG_INF ? 0.0f : x1;
    if (__any_sync(0xffffffffu, x0 != mx[0] || x1 != mx[1])) {
        const float c0 = pa_exp2(mx[0] - r0), c1 = pa_exp2(mx[1] - r1);
        l[0] *= c0; l[1] *= c1;
#pragma unroll
        for (int j = 0; j < D / 8; ++j) { o[4 * j] *= c0; o[4 * j + 1] *= c0; o[4 * j + 2] *= c1; o[4 * j + 3] *= c1; }
        mx[0] = x0; mx[1] = x1;
    }
    float l0 = l[0], l1 = l[1];
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
        const float p0 = pa_exp2(s[4 * j] - r0), p1 = pa_exp2(s[4 * j + 1] - r0);
        const float p2 = pa_exp2(s[4 * j + 2] - r1), p3 = pa_exp2(s[4 * j + 3] - r1);
        l0 += p0 + p1; l1 += p2 + p3;
        pf[j >> 1][(j & 1) * 2] = pack_bf16x2(p0, p1);
        pf[j >> 1][(j & 1) * 2 + 1] = pack_bf16x2(p2, p3);
    }
    l[0] = l0; l[1] = l1;
}

// O += P·V with P (this thread's fragments `pf`) and the V tile at shared address `vb`, issued
// (not committed).
template <int BN>
__device__ __forceinline__ void wg_issue_pv(float (&o)[64], const unsigned int (&pf)[BN / 16][4], unsigned int vb) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
        // MN-major: the leading offset steps between the two 64-column halves of V, the stride
        // offset between groups of 8 keys (with the two swapped every check fails).
        wgmma_m64n128k16_rs(o, pf[kk][0], pf[kk][1], pf[kk][2], pf[kk][3], wg_desc(vb + kk * 16 * 128, BN * 128, 1024));
    }
}

// wg_softmax, then O += P·V issued and committed (not waited for).
template <int BN>
__device__ __forceinline__ void wg_softmax_pv(float (&s)[BN / 2], float (&o)[64], float (&mx)[2], float (&l)[2], const int (&lim)[2],
                                              const int (&lo)[2], int n0, bool masked, int tq, unsigned int vb) {
    unsigned int pf[BN / 16][4];
    wg_softmax<BN>(s, o, mx, l, lim, lo, n0, masked, tq, pf);
    wg_issue_pv<BN>(o, pf, vb);
    wgmma_commit();
    fence_operands<64>(o);
}

// S = Q·Kᵀ for a warpgroup's 64 rows (Q at shared address `q`) and the key tile at `kb`, issued
// (not committed).
template <int BN>
__device__ __forceinline__ void wg_issue_s_uncommitted(float (&s)[BN / 2], unsigned int q, unsigned int kb) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) {
        const unsigned int koff = (kk & 3) * 32;
        if constexpr (BN == 64)
            wgmma_m64n64k16_ss(s, wg_desc(q + (kk >> 2) * (64 * 128) + koff, 16, 1024), wg_desc(kb + (kk >> 2) * (BN * 128) + koff, 16, 1024),
                               kk > 0);
        else
            wgmma_m64n128k16_ss(s, wg_desc(q + (kk >> 2) * (64 * 128) + koff, 16, 1024), wg_desc(kb + (kk >> 2) * (BN * 128) + koff, 16, 1024),
                                kk > 0);
    }
}

// wg_issue_s_uncommitted, committed (not waited for).
template <int BN>
__device__ __forceinline__ void wg_issue_s(float (&s)[BN / 2], unsigned int q, unsigned int kb) {
    wg_issue_s_uncommitted<BN>(s, q, kb);
    wgmma_commit();
    fence_operands<BN / 2>(s);
}

template <int WG, int BN, int STAGES, bool OVERLAP>
__device__ __forceinline__ void prefill_attention_wgmma_body(
    const float* __restrict__ q, int q_stride, const bf16_t* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride, const int4* __restrict__ tiles,
    bf16_t* __restrict__ out, int q_heads, int kv_heads, int layer, int block_tokens, long block_stride,
    float scale, int window)
{
    constexpr int D = 128, BM = 64 * WG, CH = D / 8, THREADS = 128 * WG;
    constexpr int COPY_ROWS = THREADS / CH;
    static_assert(BN % COPY_ROWS == 0 && BN % 16 == 0, "copy passes must tile the key tile");
    constexpr unsigned int Q_BYTES = 64 * D * 2, TILE_BYTES = BN * D * 2;
    extern __shared__ __align__(1024) unsigned char pa_smem[];
    // 1024-byte alignment of the regions (the swizzle pattern repeats every 8 lines).
    const unsigned int base = (smem_addr(pa_smem) + 1023) & ~1023u;
    const unsigned int sQ = base, sK = sQ + WG * Q_BYTES, sV = sK + STAGES * TILE_BYTES;
    unsigned char* gQ = pa_smem + (base - smem_addr(pa_smem));

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int kvh = blockIdx.x;
    const int group = q_heads / kv_heads;
    const int tpc = min(PA_TILE_TOKENS, BM / group);
    const int slices = (PA_TILE_TOKENS + tpc - 1) / tpc;
    const int4 tile = tiles[blockIdx.y / slices];
    const int tok0 = (blockIdx.y % slices) * tpc;
    if (tok0 >= tile.y) return;
    const int ntok = min(tpc, tile.y - tok0);
    const int used_rows = ntok * group;
    const int first_visible = tile.w + tok0;
    const int kv_end = first_visible + ntok - 1;
    const int t_first = window > 0 ? max(0, first_visible - window) / BN : 0;
    const int window_top = window > 0 ? kv_end - window : 0;
    const int n_tiles = (kv_end + BN - 1) / BN - t_first;
    const int* table = block_tables + (long)tile.z * table_stride;
    const int token_elems = kv_heads * D;
    const long v_offset = (long)block_tokens * token_elems;

    const int copy_chunk = tid % CH, copy_row = tid / CH;
    const bf16_t* k_src = pool + (long)(layer * 2) * block_tokens * token_elems + (long)kvh * D + copy_chunk * 8;
    const unsigned int bt_magic = block_index_magic(block_tokens);
    auto load_kv = [&](int t, int buf) {
        const int n0 = (t_first + t) * BN;
        const unsigned int kb = sK + buf * TILE_BYTES, vb = sV + buf * TILE_BYTES;
#pragma unroll 1
        for (int k = 0; k < BN / COPY_ROWS; ++k) {
            const int r = copy_row + k * COPY_ROWS, pos = n0 + r;
            const bool valid = pos < kv_end;
            const bf16_t* src = pool;
            if (valid) {
                const int blk = block_index(pos, bt_magic);
                src = k_src + table[blk] * block_stride + (long)(pos - blk * block_tokens) * token_elems;
            }
            const unsigned int so = wg_swz<BN>(r, copy_chunk);
            cp_async16(kb + so, src, valid);
            cp_async16(vb + so, valid ? src + v_offset : src, valid);
        }
    };

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < n_tiles) load_kv(s, s);
        cp_async_commit();
    }

    const float qs = scale * PA_LOG2E;
#pragma unroll
    for (int it = 0; it < BM * CH / THREADS; ++it) {
        const int i = tid + it * THREADS;
        const int m = i / CH, c = i % CH;
        uint4 w = make_uint4(0, 0, 0, 0);
        if (m < used_rows) {
            const float* src = q + (long)(tile.x + tok0 + m / group) * q_stride + (long)(kvh * group + m % group) * D + c * 8;
            const float4 a = *reinterpret_cast<const float4*>(src), b = *reinterpret_cast<const float4*>(src + 4);
            w = make_uint4(pack_bf16x2(a.x * qs, a.y * qs), pack_bf16x2(a.z * qs, a.w * qs),
                           pack_bf16x2(b.x * qs, b.y * qs), pack_bf16x2(b.z * qs, b.w * qs));
        }
        *reinterpret_cast<uint4*>(gQ + (m >> 6) * Q_BYTES + wg_swz<64>(m & 63, c)) = w;
    }
    fence_proxy_async();

    // This thread's rows: fragment rows lane/4 and lane/4 + 8 of its warp's 16 in its warpgroup's 64.
    const int g = lane >> 2, tq = lane & 3;
    int lim[2], lo[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int row = warp * 16 + g + 8 * h;
        lim[h] = row < used_rows ? first_visible + row / group : first_visible;
        lo[h] = window > 0 ? lim[h] - window : 0;
    }

    float o[64];
#pragma unroll
    for (int j = 0; j < 64; ++j) o[j] = 0.0f;
    float mx[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};
    const unsigned int my_q = sQ + wg * Q_BYTES;

    // S = Q·Kᵀ of the key tile in buffer `b`, issued and committed (not waited for).
    auto issue_s = [&](float (&s)[BN / 2], int b) { wg_issue_s<BN>(s, my_q, sK + b * TILE_BYTES); };

    // Masks and softmaxes tile t's scores `s`, rescales O, and issues O += P·V of buffer `b`.
    auto consume = [&](float (&s)[BN / 2], int t, int b) {
        const int n0 = (t_first + t) * BN;
        wg_softmax_pv<BN>(s, o, mx, l, lim, lo, n0, n0 + BN > first_visible || n0 < window_top, tq, sV + b * TILE_BYTES);
    };

    if constexpr (!OVERLAP) {
        int buf = 0;
        for (int t = 0; t < n_tiles; ++t) {
            cp_async_wait<STAGES - 2>();
            fence_proxy_async();
            __syncthreads();
            // The scores first, so that the next copies are issued while the tensor cores work.
            float s[BN / 2];
            issue_s(s, buf);
            {
                const int t_load = t + STAGES - 1, b_load = buf == 0 ? STAGES - 1 : buf - 1;
                if (t_load < n_tiles) load_kv(t_load, b_load);
                cp_async_commit();
            }
            wgmma_wait0();
            fence_operands<BN / 2>(s);
            consume(s, t, buf);
            wgmma_wait0();
            fence_operands<64>(o);
            buf = buf + 1 == STAGES ? 0 : buf + 1;
        }
    } else {
        // Tile t + 1's scores are computed on the tensor cores while tile t's softmax runs: tile
        // t + 1 must have landed at iteration t (STAGES >= 3), and the scores alternate between
        // two register sets (the loop is unrolled by two so that neither is indexed at run time).
        static_assert(STAGES >= 3, "the next tile's scores need it in shared memory");
        float sa[BN / 2], sb[BN / 2];
        cp_async_wait<STAGES - 2>();
        fence_proxy_async();
        __syncthreads();
        issue_s(sa, 0);
        wgmma_wait0();
        fence_operands<BN / 2>(sa);
        auto step = [&](float (&cur)[BN / 2], float (&next)[BN / 2], int t) {
            const int b = t % STAGES;
            cp_async_wait<STAGES - 3>();
            fence_proxy_async();
            __syncthreads();
            if (t + 1 < n_tiles) issue_s(next, (t + 1) % STAGES);
            {
                const int t_load = t + STAGES - 1;
                if (t_load < n_tiles) load_kv(t_load, t_load % STAGES);
                cp_async_commit();
            }
            consume(cur, t, b);
            wgmma_wait0();
            fence_operands<64>(o);
            fence_operands<BN / 2>(next);
        };
        for (int t = 0; t < n_tiles; t += 2) {
            step(sa, sb, t);
            if (t + 1 < n_tiles) step(sb, sa, t + 1);
        }
    }

    const long out_stride = (long)q_heads * D;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float sum = l[h];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const float inv = 1.0f / sum;
        const int row = warp * 16 + g + 8 * h;
        if (row < used_rows) {
            bf16_t* dst = out + (long)(tile.x + tok0 + row / group) * out_stride + (long)(kvh * group + row % group) * D + 2 * tq;
#pragma unroll
            for (int j = 0; j < D / 8; ++j)
                *reinterpret_cast<unsigned int*>(dst + j * 8) = pack_bf16x2(o[4 * j + 2 * h] * inv, o[4 * j + 2 * h + 1] * inv);
        }
    }
}

// Grid (kv_heads, tiles * slices), 128 * WG threads, dynamic shared memory
// (WG * 64 + 2 * STAGES * BN) * 256 + 1024 bytes. Names: G warpgroups, N keys a tile, S tiles in
// flight, o: the next tile's scores overlapped with this tile's softmax.
// Written out: the host finds kernels by scanning for `extern "C" __global__` lines.
extern "C" __global__ void __launch_bounds__(256, 1) prefill_attention_d128_wgmma_g2n64s2(PA_PARAMS) {
    wait_for_previous_kernel();
    prefill_attention_wgmma_body<2, 64, 2, false>(PA_ARGS);
}
extern "C" __global__ void __launch_bounds__(256, 1) prefill_attention_d128_wgmma_g2n128s3o(PA_PARAMS) {
    wait_for_previous_kernel();
    prefill_attention_wgmma_body<2, 128, 3, true>(PA_ARGS);
}

// Named barriers (the ping-pong of the computing warpgroups): `threads` arrive in all.
__device__ __forceinline__ void named_bar_sync(int id, int threads) { asm volatile("bar.sync %0, %1;\n" :: "r"(id), "r"(threads) : "memory"); }
__device__ __forceinline__ void named_bar_arrive(int id, int threads) { asm volatile("bar.arrive %0, %1;\n" :: "r"(id), "r"(threads) : "memory"); }

// mbarriers in shared memory (the warp-specialized variant's pipeline).
__device__ __forceinline__ void mbar_init(unsigned int bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned int bar) {
    asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" :: "r"(bar) : "memory");
}
// Arrives on `bar` when this thread's cp.async copies so far have landed (counted in the init).
__device__ __forceinline__ void mbar_arrive_on_copies(unsigned int bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" :: "r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(unsigned int bar, int parity) {
    asm volatile(
        "{\n.reg .pred done;\nWAIT:\nmbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n@!done bra WAIT;\n}\n"
        :: "r"(bar), "r"(parity) : "memory");
}

// Warp-specialized (FlashAttention-3's split without TMA): warpgroup 0 only copies K/V tiles
// (cp.async, each thread's copies arriving on the stage's "full" barrier when they land), warpgroups
// 1 and 2 only compute, 64 query rows each, and hand a stage back through its "empty" barrier: no
// block-wide barrier per key tile, and the copies never wait behind the MMAs.
template <int BN, int STAGES, bool OVERLAP, int CONSUMER_REGS, bool PINGPONG = false>
__device__ __forceinline__ void prefill_attention_wgmma_ws_body(
    const float* __restrict__ q, int q_stride, const bf16_t* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride, const int4* __restrict__ tiles,
    bf16_t* __restrict__ out, int q_heads, int kv_heads, int layer, int block_tokens, long block_stride,
    float scale, int window)
{
    constexpr int D = 128, BM = 128, CH = D / 8, THREADS = 384, PRODUCERS = 128, CONSUMERS = 256;
    constexpr int COPY_ROWS = PRODUCERS / CH;
    static_assert(BN % COPY_ROWS == 0 && BN % 16 == 0, "copy passes must tile the key tile");
    constexpr unsigned int Q_BYTES = 64 * D * 2, TILE_BYTES = BN * D * 2;
    extern __shared__ __align__(1024) unsigned char pa_smem[];
    const unsigned int base = (smem_addr(pa_smem) + 1023) & ~1023u;
    const unsigned int sQ = base, sK = sQ + 2 * Q_BYTES, sV = sK + STAGES * TILE_BYTES;
    const unsigned int full = sV + STAGES * TILE_BYTES, empty = full + STAGES * 8;
    unsigned char* gQ = pa_smem + (base - smem_addr(pa_smem));

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int kvh = blockIdx.x;
    const int group = q_heads / kv_heads;
    const int tpc = min(PA_TILE_TOKENS, BM / group);
    const int slices = (PA_TILE_TOKENS + tpc - 1) / tpc;
    const int4 tile = tiles[blockIdx.y / slices];
    const int tok0 = (blockIdx.y % slices) * tpc;
    if (tok0 >= tile.y) return;
    const int ntok = min(tpc, tile.y - tok0);
    const int used_rows = ntok * group;
    const int first_visible = tile.w + tok0;
    const int kv_end = first_visible + ntok - 1;
    const int t_first = window > 0 ? max(0, first_visible - window) / BN : 0;
    const int window_top = window > 0 ? kv_end - window : 0;
    const int n_tiles = (kv_end + BN - 1) / BN - t_first;

    if (tid == 0) {
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(full + s * 8, PRODUCERS);
            mbar_init(empty + s * 8, CONSUMERS);
        }
    }
    const float qs = scale * PA_LOG2E;
    for (int i = tid; i < BM * CH; i += THREADS) {
        const int m = i / CH, c = i % CH;
        uint4 w = make_uint4(0, 0, 0, 0);
        if (m < used_rows) {
            const float* src = q + (long)(tile.x + tok0 + m / group) * q_stride + (long)(kvh * group + m % group) * D + c * 8;
            const float4 a = *reinterpret_cast<const float4*>(src), b = *reinterpret_cast<const float4*>(src + 4);
            w = make_uint4(pack_bf16x2(a.x * qs, a.y * qs), pack_bf16x2(a.z * qs, a.w * qs),
                           pack_bf16x2(b.x * qs, b.y * qs), pack_bf16x2(b.z * qs, b.w * qs));
        }
        *reinterpret_cast<uint4*>(gQ + (m >> 6) * Q_BYTES + wg_swz<64>(m & 63, c)) = w;
    }
    fence_proxy_async();
    __syncthreads();

    if (wg == 0) {
        // The copying warpgroup gives its registers to the computing ones (setmaxnreg: 40 for
        // 128 threads + CONSUMER_REGS for 256 within the multiprocessor's 64K).
        if constexpr (CONSUMER_REGS > 0) asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
        const int* table = block_tables + (long)tile.z * table_stride;
        const int token_elems = kv_heads * D;
        const long v_offset = (long)block_tokens * token_elems;
        const int copy_chunk = tid % CH, copy_row = tid / CH;
        const bf16_t* k_src = pool + (long)(layer * 2) * block_tokens * token_elems + (long)kvh * D + copy_chunk * 8;
        const unsigned int bt_magic = block_index_magic(block_tokens);
        for (int t = 0; t < n_tiles; ++t) {
            const int s = t % STAGES;
            if (t >= STAGES) mbar_wait(empty + s * 8, ((t / STAGES) - 1) & 1);
            const int n0 = (t_first + t) * BN;
            const unsigned int kb = sK + s * TILE_BYTES, vb = sV + s * TILE_BYTES;
#pragma unroll 1
            for (int k = 0; k < BN / COPY_ROWS; ++k) {
                const int r = copy_row + k * COPY_ROWS, pos = n0 + r;
                const bool valid = pos < kv_end;
                const bf16_t* src = pool;
                if (valid) {
                    const int blk = block_index(pos, bt_magic);
                    src = k_src + table[blk] * block_stride + (long)(pos - blk * block_tokens) * token_elems;
                }
                const unsigned int so = wg_swz<BN>(r, copy_chunk);
                cp_async16(kb + so, src, valid);
                cp_async16(vb + so, valid ? src + v_offset : src, valid);
            }
            mbar_arrive_on_copies(full + s * 8);
        }
        cp_async_wait<0>();
        return;
    }

    // Consumers: warpgroup 1 takes rows 0-63, warpgroup 2 rows 64-127.
    if constexpr (CONSUMER_REGS > 0) asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" :: "n"(CONSUMER_REGS) : "memory");
    const int cwarp = warp - 4, g = lane >> 2, tq = lane & 3;
    int lim[2], lo[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int row = cwarp * 16 + g + 8 * h;
        lim[h] = row < used_rows ? first_visible + row / group : first_visible;
        lo[h] = window > 0 ? lim[h] - window : 0;
    }
    float o[64];
#pragma unroll
    for (int j = 0; j < 64; ++j) o[j] = 0.0f;
    float mx[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};
    const unsigned int my_q = sQ + (wg - 1) * Q_BYTES;
    if constexpr (PINGPONG) {
        // The two computing warpgroups take turns at the tensor cores (named barriers 1 and 2):
        // in its turn a warpgroup issues tile t's scores and tile t - 1's P·V, then hands the turn
        // over and runs tile t's softmax while the other's MMAs run.
        const int me = wg - 1;
        if (me == 1) named_bar_arrive(1, 256);
        unsigned int pf[BN / 16][4];
        for (int t = 0; t < n_tiles; ++t) {
            const int s = t % STAGES, sp = (t + STAGES - 1) % STAGES;
            mbar_wait(full + s * 8, (t / STAGES) & 1);
            fence_proxy_async();
            float sc[BN / 2];
            named_bar_sync(1 + me, 256);
            wg_issue_s_uncommitted<BN>(sc, my_q, sK + s * TILE_BYTES);
            if (t > 0) wg_issue_pv<BN>(o, pf, sV + sp * TILE_BYTES);
            wgmma_commit();
            named_bar_arrive(2 - me, 256);
            wgmma_wait0();
            fence_operands<BN / 2>(sc);
            fence_operands<64>(o);
            if (t > 0) mbar_arrive(empty + sp * 8);
            const int n0 = (t_first + t) * BN;
            wg_softmax<BN>(sc, o, mx, l, lim, lo, n0, n0 + BN > first_visible || n0 < window_top, tq, pf);
        }
        // The last tile's P·V, and the turn warpgroup 1 still waits for (warpgroup 1's own
        // hand-over would be one more than warpgroup 0 takes: warpgroup 1 went second).
        named_bar_sync(1 + me, 256);
        wg_issue_pv<BN>(o, pf, sV + ((n_tiles - 1) % STAGES) * TILE_BYTES);
        wgmma_commit();
        if (me == 0) named_bar_arrive(2, 256);
        wgmma_wait0();
        fence_operands<64>(o);
    } else if constexpr (!OVERLAP) {
        for (int t = 0; t < n_tiles; ++t) {
            const int s = t % STAGES;
            mbar_wait(full + s * 8, (t / STAGES) & 1);
            fence_proxy_async();
            float sc[BN / 2];
            wg_issue_s<BN>(sc, my_q, sK + s * TILE_BYTES);
            wgmma_wait0();
            fence_operands<BN / 2>(sc);
            const int n0 = (t_first + t) * BN;
            wg_softmax_pv<BN>(sc, o, mx, l, lim, lo, n0, n0 + BN > first_visible || n0 < window_top, tq, sV + s * TILE_BYTES);
            wgmma_wait0();
            fence_operands<64>(o);
            mbar_arrive(empty + s * 8);
        }
    } else {
        // Tile t + 1's scores on the tensor cores while tile t's softmax runs (two register sets,
        // the loop unrolled by two so that neither is indexed at run time).
        float sa[BN / 2], sb[BN / 2];
        mbar_wait(full, 0);
        fence_proxy_async();
        wg_issue_s<BN>(sa, my_q, sK);
        wgmma_wait0();
        fence_operands<BN / 2>(sa);
        auto step = [&](float (&cur)[BN / 2], float (&next)[BN / 2], int t) {
            const int s = t % STAGES;
            if (t + 1 < n_tiles) {
                const int s1 = (t + 1) % STAGES;
                mbar_wait(full + s1 * 8, ((t + 1) / STAGES) & 1);
                fence_proxy_async();
                wg_issue_s<BN>(next, my_q, sK + s1 * TILE_BYTES);
            }
            const int n0 = (t_first + t) * BN;
            wg_softmax_pv<BN>(cur, o, mx, l, lim, lo, n0, n0 + BN > first_visible || n0 < window_top, tq, sV + s * TILE_BYTES);
            wgmma_wait0();
            fence_operands<64>(o);
            fence_operands<BN / 2>(next);
            mbar_arrive(empty + s * 8);
        };
        for (int t = 0; t < n_tiles; t += 2) {
            step(sa, sb, t);
            if (t + 1 < n_tiles) step(sb, sa, t + 1);
        }
    }

    const long out_stride = (long)q_heads * D;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float sum = l[h];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const float inv = 1.0f / sum;
        const int row = cwarp * 16 + g + 8 * h;
        if (row < used_rows) {
            bf16_t* dst = out + (long)(tile.x + tok0 + row / group) * out_stride + (long)(kvh * group + row % group) * D + 2 * tq;
#pragma unroll
            for (int j = 0; j < D / 8; ++j)
                *reinterpret_cast<unsigned int*>(dst + j * 8) = pack_bf16x2(o[4 * j + 2 * h] * inv, o[4 * j + 2 * h + 1] * inv);
        }
    }
}

// 384 threads (a copying warpgroup and two computing ones), dynamic shared memory
// (128 + 2 * STAGES * BN) * 256 + 1024 + 16 * STAGES bytes. Names: N keys a tile, S stages, o: the
// next tile's scores overlapped with this tile's softmax, r: registers moved to the computing
// warpgroups (setmaxnreg, 232 each), p: the computing warpgroups' MMAs in turns (ping-pong).
extern "C" __global__ void __launch_bounds__(384, 1) prefill_attention_d128_wgmma_ws_n64s4(PA_PARAMS) {
    wait_for_previous_kernel();
    prefill_attention_wgmma_ws_body<64, 4, false, 0>(PA_ARGS);
}
extern "C" __global__ void __launch_bounds__(384, 1) prefill_attention_d128_wgmma_ws_n128s3r(PA_PARAMS) {
    wait_for_previous_kernel();
    prefill_attention_wgmma_ws_body<128, 3, false, 232>(PA_ARGS);
}
extern "C" __global__ void __launch_bounds__(384, 1) prefill_attention_d128_wgmma_ws_n64s4or(PA_PARAMS) {
    wait_for_previous_kernel();
    prefill_attention_wgmma_ws_body<64, 4, true, 232>(PA_ARGS);
}
extern "C" __global__ void __launch_bounds__(384, 1) prefill_attention_d128_wgmma_ws_n128s3rp(PA_PARAMS) {
    wait_for_previous_kernel();
    prefill_attention_wgmma_ws_body<128, 3, false, 232, true>(PA_ARGS);
}
