// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) of device buffers, for the checksum in
// each flash slot's header: every `chunk`-byte piece of every block is checksummed by a thread of
// its own, and the host combines the pieces (CRC32CCombiner), so a swapped-out block is
// checksummed without ever being copied to host memory.
//
// All the blocks of a swap go in one launch (grid.y = block): a launch per block gave the GPU
// only bytes / chunk / 128 CTAs at a time, one block after another. Each thread takes 8 bytes a
// step through eight tables (slicing-by-8, as the store's host CRC32C does), so the chain of
// dependent shared-memory lookups is an eighth of the bytewise one.

// out[b * chunks + i] = CRC32C of bytes [i*chunk, min((i+1)*chunk, bytes)) of block b, whose
// address is blocks[b]; blocks are 16-byte aligned and chunk a multiple of 16.
extern "C" __global__ void crc32c_blocks(const unsigned long long* __restrict__ blocks, long bytes, int chunk,
                                         unsigned int* __restrict__ out) {
    wait_for_previous_kernel();
    // table[k][v]: the CRC contribution of byte v, k bytes before the end of an 8-byte step.
    __shared__ unsigned int table[8][256];
    for (int v = threadIdx.x; v < 256; v += blockDim.x) {
        unsigned int c = v;
        for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][v] = c;
    }
    __syncthreads();
    for (int k = 1; k < 8; ++k) {
        for (int v = threadIdx.x; v < 256; v += blockDim.x) {
            const unsigned int prev = table[k - 1][v];
            table[k][v] = (prev >> 8) ^ table[0][prev & 0xFFu];
        }
        __syncthreads();
    }
    const long chunks = (bytes + chunk - 1) / chunk;
    const long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= chunks) return;
    const unsigned char* data = reinterpret_cast<const unsigned char*>(blocks[blockIdx.y]);
    const long start = i * chunk;
    const long end = min(bytes, start + chunk);
    unsigned int crc = 0xFFFFFFFFu;
    long p = start;
    for (; p + 16 <= end; p += 16) {
        const uint4 w = *reinterpret_cast<const uint4*>(data + p);
        const unsigned int halves[2][2] = {{w.x, w.y}, {w.z, w.w}};
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const unsigned int lo = halves[h][0] ^ crc, hi = halves[h][1];
            crc = table[7][lo & 0xFFu] ^ table[6][(lo >> 8) & 0xFFu] ^ table[5][(lo >> 16) & 0xFFu] ^ table[4][lo >> 24]
                ^ table[3][hi & 0xFFu] ^ table[2][(hi >> 8) & 0xFFu] ^ table[1][(hi >> 16) & 0xFFu] ^ table[0][hi >> 24];
        }
    }
    for (; p < end; ++p) crc = table[0][(crc ^ data[p]) & 0xFFu] ^ (crc >> 8);
    out[blockIdx.y * chunks + i] = crc ^ 0xFFFFFFFFu;
}

// Fills `words` 32-bit words with pseudo-random bits from (seed, index) (a splitmix64 hash), for
// checks and benchmarks that must never run on zeros.
extern "C" __global__ void fill_random_u32(unsigned int* __restrict__ out, long words, unsigned long long seed) {
    wait_for_previous_kernel();
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < words; i += (long)gridDim.x * blockDim.x) {
        unsigned long long z = seed + 0x9E3779B97F4A7C15ull * (unsigned long long)(i + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        out[i] = (unsigned int)((z ^ (z >> 31)) >> 16);
    }
}

// Turns random fp32 bit patterns into ordinary numbers in [-0.5, 0.5): mantissa bits kept, the
// exponent set to that of [1, 2), then 1.5 subtracted.
extern "C" __global__ void normalize_random_f32(float* __restrict__ x, long n) {
    wait_for_previous_kernel();
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        const unsigned int u = __float_as_uint(x[i]);
        x[i] = __uint_as_float((u & 0x007FFFFFu) | 0x3F800000u) - 1.5f;
    }
}

// The same for bf16 bit patterns.
extern "C" __global__ void normalize_random_bf16(bf16_t* __restrict__ x, long n) {
    wait_for_previous_kernel();
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        const float f = bf16_to_f32((bf16_t)((x[i] & 0x007Fu) | 0x3F80u)) - 1.5f;
        x[i] = f32_to_bf16(f);
    }
}
