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
