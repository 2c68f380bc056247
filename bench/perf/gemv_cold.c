// One-row quantized products (a decode step's) on weights that come from memory, not cache:
// copies of an n x k weight matrix fill 768 MiB, and each call multiplies the next copy, so a
// step's products are timed as a decode step meets them (its weights far exceed the caches).
// Prints the mean time a call and the weight bytes read a second.
//
//   cd Sources/CPUKernels && clang -O3 -I include -I . -pthread *.c ../../bench/perf/gemv_cold.c -o /tmp/gemv_cold -lm
//   /tmp/gemv_cold TYPE N K THREADS     (TYPE: GGML's number: 2 Q4_0, 3 Q4_1, 6 Q5_0, 7 Q5_1,
//                                        8 Q8_0, 12 Q4_K, 13 Q5_K, 14 Q6_K; 100 + one of those:
//                                        its interleaved layout, where it has one)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "CPUKernels.h"

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s TYPE N K THREADS\n", argv[0]);
        return 2;
    }
    const int asked = atoi(argv[1]), threads = atoi(argv[4]);
    // An interleaved type: random rows of its file format, interleaved copy by copy.
    const int type = asked > 100 ? asked - 100 : asked;
    const long n = atol(argv[2]), k = atol(argv[3]);
    const long per_block = hifc_quant_block_weights(type), block_bytes = hifc_quant_block_bytes(type);
    if (per_block == 0 || k % per_block != 0 || n < 1 || threads < 1 ||
        (asked > 100 && (hifc_quant_interleaved_type(type) != asked || n % 8 != 0))) {
        fprintf(stderr, "TYPE must be 2, 3, 6, 7, 8, 12, 13, 14 or 100 + one with an interleaved layout, K a multiple of its block,"
                        " N (a multiple of 8 if interleaved) and THREADS positive\n");
        return 2;
    }
    const long bytes = n * (k / per_block) * block_bytes;
    long copies = (768L << 20) / bytes;
    if (copies < 2) copies = 2;
    unsigned char *w = malloc((size_t)(copies * bytes));
    float *a = malloc(sizeof(float) * (size_t)k), *c = malloc(sizeof(float) * (size_t)n);
    void *scratch = malloc(hifc_gemm_quant_scratch(type, 1, k));
    hifc_pool *pool = hifc_pool_create(threads, 200);
    if (!w || !a || !c || !scratch || !pool) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    // Random codes; every block's f16 scales 2^-7 (0x2000), so no block is NaN or infinite
    // (Q6_K keeps its scale last).
    const long scale_at = type == 14 ? 208 : 0, scales = type == 12 || type == 13 ? 2 : 1;
    for (long i = 0; i < copies * bytes; i++) w[i] = (unsigned char)rand();
    for (long b = 0; b < copies * bytes / block_bytes; b++) {
        for (long s = 0; s < scales; s++) {
            w[b * block_bytes + scale_at + 2 * s] = 0x00;
            w[b * block_bytes + scale_at + 2 * s + 1] = 0x20;
        }
    }
    if (asked != type) {
        unsigned char *file = malloc((size_t)bytes);
        if (!file) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        for (long copy = 0; copy < copies; copy++) {
            memcpy(file, w + copy * bytes, (size_t)bytes);
            hifc_quant_interleave(pool, type, file, n, k, w + copy * bytes);
        }
        free(file);
    }
    for (long i = 0; i < k; i++) a[i] = (float)(rand() % 2001 - 1000) / 1000.0f;
    const long calls = 3 * copies;
    const double start = seconds();
    for (long r = 0; r < calls; r++) hifc_gemm_quant(pool, asked, a, w + (r % copies) * bytes, NULL, c, 1, n, k, scratch);
    const double each = (seconds() - start) / (double)calls;
    printf("type %d, %ld x %ld, %d threads: %.3f ms a call, %.1f GB/s of weights (%ld copies)\n", asked, n, k, threads, 1e3 * each,
           (double)bytes / each / 1e9, copies);
    hifc_pool_destroy(pool);
    free(scratch);
    free(c);
    free(a);
    free(w);
    return 0;
}
