// Lab-only configurations of attention.cu's tensor-core decode kernels, appended to it by
// lab_decode_attention.py and named in its LAB_VARIANTS (bf16) and LAB_VARIANTS_FP8: head dim 128
// with other warps per block, keys per warp per stage or stages than paged_attention_decode_d128
// (w8 k16 s3) and paged_attention_decode_d128_fp8 (w8 k16 s5). The bf16 configurations timed
// before (w4 k16 s2/s3/s4/s6, w2 k16 s4, w6 k16 s4, w8 k16 s2, w12 k16 s2, w4 k32 s2/s3, per-warp
// copy pipelines, a compile-time block size, L2 prefetch-size hints) are in
// bench/results/decode-attention-h100.md and -h200.md, with the commits that had them.
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8_w8k16s3(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 16, 3>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8_w8k16s4(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 16, 4>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8_w8k16s6(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 16, 6>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d128_fp8_w4k16s4(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 4, 16, 4>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d128_fp8_w4k16s6(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 4, 16, 6>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8_w8k32s3(DECODE_PARAMS_FP8) {
    attention_decode_fp8<128, 8, 32, 3>(DECODE_ARGS, scale_offset);
}

// The fp8 kernel with its products transposed (lab form, issue 22): keys are the m16 rows of
// both MMAs instead of query heads. S^T = K Q^T takes 16 keys of codes as the A operand (two
// 8-byte loads a lane, as the production kernel's B operand) and Q as B (n8: the group's heads,
// padded to 8 instead of 16); O^T = V^T P^T takes V's codes as A (16 dims by 16 keys) and P^T as
// B, which one movmatrix per 8 keys makes out of S^T's accumulator. Half the MMAs of
// attention_decode_fp8 for the same codes, and each lane's scores are two keys by two heads.
__device__ __forceinline__ unsigned int lab_transpose_8x8_b16(unsigned int x) {
    unsigned int y;
    asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(y) : "r"(x));
    return y;
}

template <int D, int W, int KW, int S>
__device__ __forceinline__ void lab_attention_decode_fp8t(
    const float* __restrict__ q, int q_stride, const fp8_t* __restrict__ pool,
    const int* __restrict__ block_tables, int table_stride,
    const int* __restrict__ row_table, const int* __restrict__ ctx_len,
    float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc,
    int q_heads, int kv_heads, int head_dim, int layer, int block_tokens, long block_stride,
    int tokens_per_split, float scale, int window, bf16_t* __restrict__ out, int fresh_tokens, long scale_offset)
{
    constexpr int BN = W * KW, THREADS = 32 * W, KT = KW / 16;
    constexpr int C16 = D / 16;
    constexpr int SWZ = (C16 < 8 ? C16 : 8) - 1;
    constexpr int RAW = 2 * BN * D + 8 * BN;
    static_assert(D % 32 == 0 && KW % 16 == 0 && (BN * C16) % THREADS == 0, "stage shape");
    static_assert(S * RAW >= W * 8 * D * 4, "the warps' merge reuses the stages");
    extern __shared__ __align__(128) unsigned char decode_smem[];
    __shared__ float sm_m[W * 8], sm_l[W * 8];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int r = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    const int group = q_heads / kv_heads;
    const int token_elems = kv_heads * D;
    const int* table = block_tables + (long)row_table[r] * table_stride;
    const int len = ctx_len[r];
    const int span = split_span(len, window, tokens_per_split, gridDim.z);
    const int start = (window > 0 ? max(0, len - window) : 0) + split * span;
    const int end = min(len, start + span);
    const int n_tiles = end > start ? (end - start + BN - 1) / BN : 0;
    const fp8_t* k_layer = pool + (long)(layer * 2) * block_tokens * token_elems + (long)kvh * D;
    const long v_offset = (long)block_tokens * token_elems;
    const unsigned int smem = smem_addr(decode_smem);
    const unsigned int bt_magic = block_index_magic(block_tokens);
    auto at = [](int row, int byte) { return row * D + ((((byte >> 4) ^ (row & SWZ))) << 4) + (byte & 15); };

    auto load_kv = [&](int t) {
        const int n0 = start + t * BN;
        const unsigned int kb = smem + (t % S) * RAW, vb = kb + BN * D, ksb = vb + BN * D, vsb = ksb + BN * 4;
#pragma unroll
        for (int it = 0; it < BN * C16 / THREADS; ++it) {
            const int i = tid + it * THREADS;
            const int row = i / C16, c = i % C16, pos = n0 + row;
            const bool valid = pos < end;
            const fp8_t* src = pool;
            if (valid) {
                const int bi = block_index(pos, bt_magic);
                src = k_layer + (long)table[bi] * block_stride + (long)(pos - bi * block_tokens) * token_elems + c * 16;
            }
            cp_async16(kb + at(row, c * 16), src, valid);
            cp_async16(vb + at(row, c * 16), valid ? src + v_offset : src, valid);
        }
        for (int row = tid; row < BN; row += THREADS) {
            const int pos = n0 + row;
            const bool valid = pos < end;
            const fp8_t* ks = pool;
            const fp8_t* vs = pool;
            if (valid) {
                const int bi = block_index(pos, bt_magic), off = pos - bi * block_tokens;
                const fp8_t* block = pool + (long)table[bi] * block_stride;
                ks = block + kv_scale_offset(scale_offset, layer, 0, off, block_tokens, kv_heads, kvh);
                vs = block + kv_scale_offset(scale_offset, layer, 1, off, block_tokens, kv_heads, kvh);
            }
            cp_async4(ksb + row * 4, ks, valid);
            cp_async4(vsb + row * 4, vs, valid);
        }
    };
    auto load_first_stages = [&]() {
#pragma unroll
        for (int t = 0; t < S - 1; ++t) {
            if (t < n_tiles) load_kv(t);
            cp_async_commit();
        }
    };
    const bool early = (long)min(end, start + (S - 1) * BN) + fresh_tokens <= (long)len;
    if (early) load_first_stages();
    wait_for_previous_kernel();
    if (!early) load_first_stages();

    const int g = lane >> 2, tq = lane & 3;
    // Q as the B operand: column g is query head g, dims 32·kc + 8·tq + 4·h + {0, 1} (register 0)
    // and + {2, 3} (register 1) of k-step 2·kc + h, matching the K codes' A operand.
    unsigned int qb[D / 32][2][2];
    float qmult;
    {
        float qv[D / 32][8];
        float qmax = 0.0f;
        const float* qh = q + (long)r * q_stride + (long)(kvh * group + g) * D + 8 * tq;
#pragma unroll
        for (int kc = 0; kc < D / 32; ++kc) {
            float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f), b = a;
            if (g < group) {
                a = *reinterpret_cast<const float4*>(qh + 32 * kc);
                b = *reinterpret_cast<const float4*>(qh + 32 * kc + 4);
            }
            qv[kc][0] = a.x; qv[kc][1] = a.y; qv[kc][2] = a.z; qv[kc][3] = a.w;
            qv[kc][4] = b.x; qv[kc][5] = b.y; qv[kc][6] = b.z; qv[kc][7] = b.w;
#pragma unroll
            for (int e = 0; e < 8; ++e) qmax = fmaxf(qmax, fabsf(qv[kc][e]));
        }
        qmax = fmaxf(qmax, __shfl_xor_sync(0xffffffffu, qmax, 1));
        qmax = fmaxf(qmax, __shfl_xor_sync(0xffffffffu, qmax, 2));
        const float f = qmax > 0.0f ? 256.0f / qmax : 0.0f;
        qmult = scale * 1.4426950408889634f * (qmax / 256.0f);
#pragma unroll
        for (int kc = 0; kc < D / 32; ++kc)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                qb[kc][h][0] = pack_f16x2(qv[kc][4 * h] * f, qv[kc][4 * h + 1] * f);
                qb[kc][h][1] = pack_f16x2(qv[kc][4 * h + 2] * f, qv[kc][4 * h + 3] * f);
            }
    }
    // This lane's score columns are heads 2·tq and 2·tq + 1 (head h's multiplier is in lane 4·h).
    const float qm[2] = {__shfl_sync(0xffffffffu, qmult, 8 * tq), __shfl_sync(0xffffffffu, qmult, 8 * tq + 4)};

    // o[c][u][e]: dim 32·c + 4·g + 2·u + (e >> 1), head 2·tq + (e & 1), in units of the V scales.
    float o[D / 32][2][4];
#pragma unroll
    for (int c = 0; c < D / 32; ++c)
#pragma unroll
        for (int u = 0; u < 2; ++u) o[c][u][0] = o[c][u][1] = o[c][u][2] = o[c][u][3] = 0.0f;
    float mx[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};
    const int key0 = warp * KW;

    for (int t = 0; t < n_tiles; ++t) {
        cp_async_wait<S - 2>();
        __syncthreads();
        if (t + S - 1 < n_tiles) load_kv(t + S - 1);
        cp_async_commit();
        const unsigned char* kst = decode_smem + (t % S) * RAW;
        const unsigned char* vst = kst + BN * D;
        const float* ksc = reinterpret_cast<const float*>(vst + BN * D);
        const float* vsc = ksc + BN;

        // S^T: rows keys key0 + 16·kt + g (elements 0, 1) and + 8 (2, 3), columns heads 2·tq, +1.
        float s[KT][4];
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
            float sa[4] = {0.0f, 0.0f, 0.0f, 0.0f}, sb[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const int ka = key0 + 16 * kt + g;
#pragma unroll
            for (int kc = 0; kc < D / 32; ++kc) {
                const uint2 ca = *reinterpret_cast<const uint2*>(kst + at(ka, 32 * kc + 8 * tq));
                const uint2 cb = *reinterpret_cast<const uint2*>(kst + at(ka + 8, 32 * kc + 8 * tq));
                const uint2 alo = e4m3x4_to_f16x4(ca.x), ahi = e4m3x4_to_f16x4(ca.y);
                const uint2 blo = e4m3x4_to_f16x4(cb.x), bhi = e4m3x4_to_f16x4(cb.y);
                mma_f16(sa, alo.x, blo.x, alo.y, blo.y, qb[kc][0][0], qb[kc][0][1]);
                mma_f16(sb, ahi.x, bhi.x, ahi.y, bhi.y, qb[kc][1][0], qb[kc][1][1]);
            }
#pragma unroll
            for (int e = 0; e < 4; ++e) s[kt][e] = sa[e] + sb[e];
        }

        const int pos0 = start + t * BN + key0 + g;
        float x[2] = {mx[0], mx[1]};
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
            const int ka = key0 + 16 * kt + g;
            const float ksa = ksc[ka], ksb = ksc[ka + 8];
            const bool va = pos0 + 16 * kt < end, vb = pos0 + 16 * kt + 8 < end;
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                s[kt][e] = va ? s[kt][e] * ksa * qm[e] : NEG_INF;
                s[kt][2 + e] = vb ? s[kt][2 + e] * ksb * qm[e] : NEG_INF;
                x[e] = fmaxf(x[e], fmaxf(s[kt][e], s[kt][2 + e]));
            }
        }
        float corr[2], ref[2];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            x[e] = fmaxf(x[e], __shfl_xor_sync(0xffffffffu, x[e], 4));
            x[e] = fmaxf(x[e], __shfl_xor_sync(0xffffffffu, x[e], 8));
            x[e] = fmaxf(x[e], __shfl_xor_sync(0xffffffffu, x[e], 16));
            ref[e] = x[e] == NEG_INF ? 0.0f : x[e];
            corr[e] = exp2f(mx[e] - ref[e]);
            mx[e] = x[e];
            l[e] *= corr[e];
        }
        float vsa[KT], vsb[KT], vmax = 0.0f;
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
            vsa[kt] = vsc[key0 + 16 * kt + g];
            vsb[kt] = vsc[key0 + 16 * kt + g + 8];
            vmax = fmaxf(vmax, fmaxf(vsa[kt], vsb[kt]));
        }
        vmax = fmaxf(vmax, __shfl_xor_sync(0xffffffffu, vmax, 4));
        vmax = fmaxf(vmax, __shfl_xor_sync(0xffffffffu, vmax, 8));
        vmax = fmaxf(vmax, __shfl_xor_sync(0xffffffffu, vmax, 16));
        const float vinv = vmax > 0.0f ? 1.0f / vmax : 0.0f;
        // P^T as the B operand: register 0 keys 2·tq, +1 of the tile's 16, register 1 keys 8 + 2·tq, +1,
        // column head g.
        unsigned int pb[KT][2];
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
            const float p0 = exp2f(s[kt][0] - ref[0]), p1 = exp2f(s[kt][1] - ref[1]);
            const float p2 = exp2f(s[kt][2] - ref[0]), p3 = exp2f(s[kt][3] - ref[1]);
            l[0] += p0 + p2;
            l[1] += p1 + p3;
            const float wa = vsa[kt] * vinv, wb = vsb[kt] * vinv;
            pb[kt][0] = lab_transpose_8x8_b16(pack_f16x2(p0 * wa, p1 * wa));
            pb[kt][1] = lab_transpose_8x8_b16(pack_f16x2(p2 * wb, p3 * wb));
        }
        // O^T += V^T P^T: A rows g and g + 8 of MMA (c, u) are dims 32·c + 4·g + 2·u and + 1, its
        // columns keys 2·tq, +1 (registers 0, 1) and 8 + 2·tq, +1 (registers 2, 3).
        float acc[D / 32][2][4];
#pragma unroll
        for (int c = 0; c < D / 32; ++c)
#pragma unroll
            for (int u = 0; u < 2; ++u) acc[c][u][0] = acc[c][u][1] = acc[c][u][2] = acc[c][u][3] = 0.0f;
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
            const int key = key0 + 16 * kt + 2 * tq;
#pragma unroll
            for (int c = 0; c < D / 32; ++c) {
                const int byte = 32 * c + 4 * g;
                const unsigned int w0 = *reinterpret_cast<const unsigned int*>(vst + at(key, byte));
                const unsigned int w1 = *reinterpret_cast<const unsigned int*>(vst + at(key + 1, byte));
                const unsigned int w8 = *reinterpret_cast<const unsigned int*>(vst + at(key + 8, byte));
                const unsigned int w9 = *reinterpret_cast<const unsigned int*>(vst + at(key + 9, byte));
                const uint2 b01 = e4m3x4_to_f16x4(__byte_perm(w0, w1, 0x5140)), b23 = e4m3x4_to_f16x4(__byte_perm(w0, w1, 0x7362));
                const uint2 c01 = e4m3x4_to_f16x4(__byte_perm(w8, w9, 0x5140)), c23 = e4m3x4_to_f16x4(__byte_perm(w8, w9, 0x7362));
                mma_f16(acc[c][0], b01.x, b01.y, c01.x, c01.y, pb[kt][0], pb[kt][1]);
                mma_f16(acc[c][1], b23.x, b23.y, c23.x, c23.y, pb[kt][0], pb[kt][1]);
            }
        }
#pragma unroll
        for (int c = 0; c < D / 32; ++c)
#pragma unroll
            for (int u = 0; u < 2; ++u)
#pragma unroll
                for (int e = 0; e < 4; ++e) o[c][u][e] = fmaf(vmax, acc[c][u][e], o[c][u][e] * corr[e & 1]);
    }

    // Each lane's l covers its keys: the heads' sums are over the eight lanes of its tq.
#pragma unroll
    for (int e = 0; e < 2; ++e) {
        l[e] += __shfl_xor_sync(0xffffffffu, l[e], 4);
        l[e] += __shfl_xor_sync(0xffffffffu, l[e], 8);
        l[e] += __shfl_xor_sync(0xffffffffu, l[e], 16);
    }
    __syncthreads();
    float* sm_acc = reinterpret_cast<float*>(decode_smem);   // [W][8][D]
    if (g == 0) {
#pragma unroll
        for (int e = 0; e < 2; ++e) { sm_m[warp * 8 + 2 * tq + e] = mx[e]; sm_l[warp * 8 + 2 * tq + e] = l[e]; }
    }
#pragma unroll
    for (int c = 0; c < D / 32; ++c)
#pragma unroll
        for (int u = 0; u < 2; ++u)
#pragma unroll
            for (int e = 0; e < 4; ++e)
                sm_acc[(warp * 8 + 2 * tq + (e & 1)) * D + 32 * c + 4 * g + 2 * u + (e >> 1)] = o[c][u][e];
    __syncthreads();
    finish_decode_block<W, 8, D>(sm_m, sm_l, sm_acc, part_m, part_l, part_acc, out, q_heads, kv_heads);
}

extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8t_w8k16s5(DECODE_PARAMS_FP8) {
    lab_attention_decode_fp8t<128, 8, 16, 5>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8t_w8k16s3(DECODE_PARAMS_FP8) {
    lab_attention_decode_fp8t<128, 8, 16, 3>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8t_w8k32s3(DECODE_PARAMS_FP8) {
    lab_attention_decode_fp8t<128, 8, 32, 3>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d128_fp8t_w4k32s3(DECODE_PARAMS_FP8) {
    lab_attention_decode_fp8t<128, 4, 32, 3>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(256) paged_attention_decode_d128_fp8t_w8k16s2(DECODE_PARAMS_FP8) {
    lab_attention_decode_fp8t<128, 8, 16, 2>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d128_fp8t_w4k16s3(DECODE_PARAMS_FP8) {
    lab_attention_decode_fp8t<128, 4, 16, 3>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d128_fp8t_w4k16s4(DECODE_PARAMS_FP8) {
    lab_attention_decode_fp8t<128, 4, 16, 4>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(128) paged_attention_decode_d128_fp8t_w4k32s2(DECODE_PARAMS_FP8) {
    lab_attention_decode_fp8t<128, 4, 32, 2>(DECODE_ARGS, scale_offset);
}
extern "C" __global__ void __launch_bounds__(512) paged_attention_decode_d128_fp8t_w16k16s2(DECODE_PARAMS_FP8) {
    lab_attention_decode_fp8t<128, 16, 16, 2>(DECODE_ARGS, scale_offset);
}
