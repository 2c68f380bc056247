// Scratch memory that a calling thread reuses from op to op.
//
// A decode step runs a few hundred ops, each needing some short-lived memory (attention's work
// list and per-thread buffers, rotated key rows, quantized activations). glibc's allocator was 8%
// of the caller's samples in a decode step on a 16-core host (perf, bench/results/cpu-vs-llamacpp.md),
// part of it these buffers (attention's alone are 727 KB for 16 threads, above glibc's initial
// mmap threshold). Here each thread keeps one buffer per slot, grown when a call needs more and
// kept until the thread exits.
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "CPUKernels.h"

typedef struct {
    void *memory;
    size_t bytes;
} scratch_buffer;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void free_buffers(void *value) {
    scratch_buffer *buffers = value;
    for (int slot = 0; slot < HIFC_SCRATCH_SLOTS; slot++) free(buffers[slot].memory);
    free(buffers);
}

static void make_key(void) { pthread_key_create(&scratch_key, free_buffers); }

void *hifc_thread_scratch(int slot, size_t bytes) {
    if (slot < 0 || slot >= HIFC_SCRATCH_SLOTS) return NULL;
    // No allocation this large can succeed, and growing it by half would wrap around.
    if (bytes > SIZE_MAX / 2) return NULL;
    pthread_once(&scratch_once, make_key);
    scratch_buffer *buffers = pthread_getspecific(scratch_key);
    if (!buffers) {
        buffers = calloc(HIFC_SCRATCH_SLOTS, sizeof(scratch_buffer));
        if (!buffers || pthread_setspecific(scratch_key, buffers) != 0) {
            free(buffers);
            return NULL;
        }
    }
    scratch_buffer *b = &buffers[slot];
    if (b->bytes < bytes || !b->memory) {
        // Grown by half again, so that a run of slowly growing calls (a prompt's chunks) does not
        // reallocate each time.
        size_t grown = bytes + bytes / 2;
        grown = (grown + 63) / 64 * 64;
        void *memory = aligned_alloc(64, grown ? grown : 64);
        if (!memory) return NULL;  // the old buffer stays the slot's
        free(b->memory);
        b->memory = memory;
        b->bytes = grown;
    }
    return b->memory;
}
