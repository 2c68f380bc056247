// Writing new K/V into the block-major paged pool: one block holds all layers' K and V,
// [layer][K|V][token][kvHead][headDim] (HiFCCore.KVBlockLayout).

// slots[t] = block * block_tokens + offset within the block; blocks start `block_stride` elements
// apart (a block's size rounded up to 4 KiB). k and v rows are `kv_stride` floats apart (they
// may be slices of one fused qkv product). One block per token.
extern "C" __global__ void kv_write_bf16(
    bf16_t* __restrict__ pool, const float* __restrict__ k, const float* __restrict__ v, int kv_stride,
    const int* __restrict__ slots, int layer, int block_tokens, int token_elems, long block_stride)
{
    wait_for_previous_kernel();
    const int t = blockIdx.x;
    bf16_t* kd = kv_slot_k_row(pool, slots[t], layer, block_tokens, token_elems, block_stride);
    bf16_t* vd = kd + (long)block_tokens * token_elems;
    for (int i = threadIdx.x; i < token_elems; i += blockDim.x) {
        kd[i] = f32_to_bf16(k[(long)t * kv_stride + i]);
        vd[i] = f32_to_bf16(v[(long)t * kv_stride + i]);
    }
}

// The fp8 pool (E4M3 codes and a scale per token and KV head, common.cuh): block_stride and
// scale_offset in bytes. One block per token, one warp per KV head (kv_heads <= 32, head_dim <= 256): the warp
// finds its head's largest |x| and least-error scale of K and of V, then codes both rows.
extern "C" __global__ void kv_write_fp8(
    fp8_t* __restrict__ pool, const float* __restrict__ k, const float* __restrict__ v, int kv_stride,
    const int* __restrict__ slots, int layer, int block_tokens, int kv_heads, int head_dim, long block_stride, long scale_offset)
{
    wait_for_previous_kernel();
    const int t = blockIdx.x, h = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (h >= kv_heads) return;
    const int token_elems = kv_heads * head_dim;
    const long slot = slots[t];
    const long block = slot / block_tokens;
    const int offset = (int)(slot % block_tokens);
    fp8_t* kd = kv_slot_k_row(pool, slot, layer, block_tokens, token_elems, block_stride) + (long)h * head_dim;
    fp8_t* vd = kd + (long)block_tokens * token_elems;
    const float* ks = k + (long)t * kv_stride + (long)h * head_dim;
    const float* vs = v + (long)t * kv_stride + (long)h * head_dim;
    float kx[E4M3_ROW_SLOTS], vx[E4M3_ROW_SLOTS];
    warp_row_load(kx, [&](int i) { return ks[i]; }, head_dim, lane);
    warp_row_load(vx, [&](int i) { return vs[i]; }, head_dim, lane);
    float kmax = 0.0f, vmax = 0.0f;
#pragma unroll
    for (int c = 0; c < E4M3_ROW_SLOTS; c++) {
        kmax = fmaxf(kmax, __uint_as_float(e4m3_amax_bits(kx[c])));
        vmax = fmaxf(vmax, __uint_as_float(e4m3_amax_bits(vx[c])));
    }
    const E4M3Scale kscale = warp_e4m3_least_error_scale(kx, head_dim, warp_max(kmax), lane);
    const E4M3Scale vscale = warp_e4m3_least_error_scale(vx, head_dim, warp_max(vmax), lane);
#pragma unroll
    for (int c = 0; c < E4M3_ROW_SLOTS; c++) {
        const int i = lane + 32 * c;
        if (i >= head_dim) break;
        kd[i] = f32_to_e4m3(kx[c] * kscale.inverse);
        vd[i] = f32_to_e4m3(vx[c] * vscale.inverse);
    }
    if (lane == 0) {
        fp8_t* base = pool + block * block_stride;
        *reinterpret_cast<float*>(base + kv_scale_offset(scale_offset, layer, 0, offset, block_tokens, kv_heads, h)) = kscale.scale;
        *reinterpret_cast<float*>(base + kv_scale_offset(scale_offset, layer, 1, offset, block_tokens, kv_heads, h)) = vscale.scale;
    }
}
