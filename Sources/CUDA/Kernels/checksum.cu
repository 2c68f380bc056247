// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) of a device buffer, for the checksum in
// each flash slot's header: pass 1 computes the CRC of every `chunk`-byte piece in parallel; the
// host combines the pieces (CRC32CCombiner), so a swapped-out block is checksummed without ever
// being copied to host memory.

// out[i] = CRC32C of bytes [i*chunk, min((i+1)*chunk, bytes)); one thread per chunk.
extern "C" __global__ void crc32c_chunks(const unsigned char* __restrict__ data, long bytes, int chunk, unsigned int* __restrict__ out) {
    wait_for_previous_kernel();
    __shared__ unsigned int table[256];
    for (int i = threadIdx.x; i < 256; i += blockDim.x) {
        unsigned int c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
    __syncthreads();
    const long chunks = (bytes + chunk - 1) / chunk;
    const long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= chunks) return;
    const long start = i * chunk;
    const long end = min(bytes, start + chunk);
    unsigned int crc = 0xFFFFFFFFu;
    long p = start;
    // Whole 16-byte words first (chunks are 16-byte aligned when the buffer is).
    for (; p + 16 <= end; p += 16) {
        const uint4 w = *reinterpret_cast<const uint4*>(data + p);
        const unsigned int words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            unsigned int v = words[j];
#pragma unroll
            for (int b = 0; b < 4; ++b) { crc = table[(crc ^ v) & 0xFFu] ^ (crc >> 8); v >>= 8; }
        }
    }
    for (; p < end; ++p) crc = table[(crc ^ data[p]) & 0xFFu] ^ (crc >> 8);
    out[i] = crc ^ 0xFFFFFFFFu;
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
