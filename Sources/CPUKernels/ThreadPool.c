// The fork-join pool behind every parallel CPU op (see CPUKernels.h, "Threads").
//
// A job is published by bumping `generation`; workers that are spinning see it within
// nanoseconds, sleeping ones are woken through the condition variable. Chunks are handed out by
// an atomic counter. The caller takes chunks too and then waits for `running` to reach zero, so
// a job is finished, and its context still alive, when `hifc_parallel` returns.
//
// Lost wake-ups: a worker increments `sleepers` and re-reads `generation` before waiting, both
// under the mutex, while the caller bumps `generation` and then reads `sleepers` (all sequentially
// consistent): either the worker sees the new generation and does not sleep, or the caller sees
// the sleeper and broadcasts under the mutex.
//
// Profiling (`hifc_pool_profile_start`, for `hifc bench model --profile`): while it is on, each
// call's wall time is added to a slot of its body, found by probing a small table with
// compare-and-swap, so that calls from several threads (a second caller runs its chunks inline)
// can count at once. Off, a call reads one flag.
#define _GNU_SOURCE
#include "CPUKernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

struct hifc_pool {
    // Set at creation.
    int threads;
    long spin_nanoseconds;
    pthread_t *workers;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    // The job, written by the caller before `generation` is bumped.
    hifc_chunk_fn body;
    void *context;
    long chunks;
    _Atomic int busy;  // a job is being run (submission lock)
    // What spinning workers poll, written once a job (`generation`) or rarely. Each line below is
    // written by other threads many times a job: sharing a line with what the workers poll, every
    // chunk taken and every worker's finish would pull that line away from every spinner.
    _Alignas(64) _Atomic uint64_t generation;
    _Atomic int stop;
    _Atomic int parked;
    _Atomic int sleepers;
    _Alignas(64) _Atomic long next_chunk;
    _Alignas(64) _Atomic int running;  // workers still in the job
    // Profiling: written only by callers, and only while on.
    _Alignas(64) _Atomic int profiling;
    struct profile_slot {
        _Atomic(uintptr_t) body;
        _Atomic long calls, pooled_calls, chunks, nanoseconds;
    } profile[HIFC_PROFILE_BODIES];
};

typedef struct {
    hifc_pool *pool;
    int index;
} worker_start;

static long now_nanoseconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

static void take_chunks(hifc_pool *pool, int thread) {
    const long chunks = pool->chunks;
    for (;;) {
        long c = atomic_fetch_add_explicit(&pool->next_chunk, 1, memory_order_relaxed);
        if (c >= chunks) break;
        pool->body(pool->context, c, thread);
    }
}

static void *worker_main(void *argument) {
    worker_start start = *(worker_start *)argument;
    free(argument);
    hifc_pool *pool = start.pool;
    uint64_t seen = 0;
    for (;;) {
        // Spin for the next job, then sleep.
        long deadline = now_nanoseconds() + pool->spin_nanoseconds;
        int polls = 0;
        while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop) && !atomic_load(&pool->parked)) {
            CPU_RELAX();
            if (++polls % 64 == 0 && now_nanoseconds() > deadline) break;
        }
        if (atomic_load(&pool->generation) == seen) {
            pthread_mutex_lock(&pool->mutex);
            atomic_fetch_add(&pool->sleepers, 1);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop)) {
                pthread_cond_wait(&pool->wake, &pool->mutex);
            }
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) break;
        seen = atomic_load(&pool->generation);
        take_chunks(pool, start.index);
        atomic_fetch_sub_explicit(&pool->running, 1, memory_order_release);
    }
    return NULL;
}

hifc_pool *hifc_pool_create(int threads, int spin_microseconds) {
    if (threads < 1) threads = 1;
    // Aligned as its cache-line members ask (calloc gives 16 bytes).
    size_t bytes = (sizeof(hifc_pool) + 63) & ~(size_t)63;
    hifc_pool *pool = aligned_alloc(64, bytes);
    if (!pool) return NULL;
    memset(pool, 0, bytes);
    pool->threads = threads;
    pool->spin_nanoseconds = (long)(spin_microseconds < 0 ? 0 : spin_microseconds) * 1000L;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->workers = calloc((size_t)threads, sizeof(pthread_t));
    int started = 1;
    for (int i = 1; i < threads; i++) {
        worker_start *start = malloc(sizeof(worker_start));
        if (!start) break;
        start->pool = pool;
        start->index = i;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setstacksize(&attributes, 1 << 20);
        int failed = pthread_create(&pool->workers[i], &attributes, worker_main, start);
        pthread_attr_destroy(&attributes);
        if (failed) {
            free(start);
            break;
        }
        started++;
    }
    pool->threads = started;
    return pool;
}

void hifc_pool_destroy(hifc_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->threads; i++) pthread_join(pool->workers[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->workers);
    free(pool);
}

int hifc_pool_threads(const hifc_pool *pool) { return pool ? pool->threads : 1; }

void hifc_pool_park(hifc_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->parked, 1);
}

/// Runs the job on the pool, or inline on the calling thread; returns whether the pool ran it.
static int run_job(hifc_pool *pool, long chunks, hifc_chunk_fn body, void *context) {
    int expected = 0;
    if (!pool || pool->threads == 1 || chunks == 1 || !atomic_compare_exchange_strong(&pool->busy, &expected, 1)) {
        for (long c = 0; c < chunks; c++) body(context, c, 0);
        return 0;
    }
    // Written only when set: a store each job would pull the polled line from every spinner.
    if (atomic_load_explicit(&pool->parked, memory_order_relaxed)) atomic_store(&pool->parked, 0);
    pool->body = body;
    pool->context = context;
    pool->chunks = chunks;
    atomic_store_explicit(&pool->next_chunk, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->running, pool->threads - 1, memory_order_relaxed);
    atomic_fetch_add(&pool->generation, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    take_chunks(pool, 0);
    // Every chunk has been taken; wait for the workers still finishing theirs (and for those
    // that have not woken yet, which take nothing but must not see this job's context later).
    int polls = 0;
    while (atomic_load_explicit(&pool->running, memory_order_acquire) > 0) {
        CPU_RELAX();
        if (++polls > 4096) sched_yield();
    }
    atomic_store(&pool->busy, 0);
    return 1;
}

static void profile_add(hifc_pool *pool, hifc_chunk_fn body, long chunks, int pooled, long nanoseconds) {
    const uintptr_t key = (uintptr_t)body;
    for (int probe = 0; probe < HIFC_PROFILE_BODIES; probe++) {
        struct profile_slot *slot = &pool->profile[(key / 16 + (uintptr_t)probe) % HIFC_PROFILE_BODIES];
        uintptr_t found = atomic_load_explicit(&slot->body, memory_order_acquire);
        if (found == 0 && atomic_compare_exchange_strong(&slot->body, &found, key)) found = key;
        if (found != key) continue;
        atomic_fetch_add_explicit(&slot->calls, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&slot->pooled_calls, pooled, memory_order_relaxed);
        atomic_fetch_add_explicit(&slot->chunks, chunks, memory_order_relaxed);
        atomic_fetch_add_explicit(&slot->nanoseconds, nanoseconds, memory_order_relaxed);
        return;
    }
}

void hifc_parallel(hifc_pool *pool, long chunks, hifc_chunk_fn body, void *context) {
    if (chunks <= 0) return;
    if (!pool || !atomic_load_explicit(&pool->profiling, memory_order_relaxed)) {
        run_job(pool, chunks, body, context);
        return;
    }
    const long start = now_nanoseconds();
    const int pooled = run_job(pool, chunks, body, context);
    profile_add(pool, body, chunks, pooled, now_nanoseconds() - start);
}

void hifc_pool_profile_start(hifc_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->profiling, 0);
    for (int i = 0; i < HIFC_PROFILE_BODIES; i++) {
        struct profile_slot *slot = &pool->profile[i];
        atomic_store(&slot->body, 0);
        atomic_store(&slot->calls, 0);
        atomic_store(&slot->pooled_calls, 0);
        atomic_store(&slot->chunks, 0);
        atomic_store(&slot->nanoseconds, 0);
    }
    atomic_store(&pool->profiling, 1);
}

int hifc_pool_profile_stop(hifc_pool *pool, hifc_region_profile *out, int capacity) {
    if (!pool) return 0;
    atomic_store(&pool->profiling, 0);
    int n = 0;
    for (int i = 0; i < HIFC_PROFILE_BODIES && n < capacity; i++) {
        struct profile_slot *slot = &pool->profile[i];
        uintptr_t body = atomic_load(&slot->body);
        if (!body) continue;
        out[n++] = (hifc_region_profile){
            .body = (hifc_chunk_fn)body,
            .calls = atomic_load(&slot->calls),
            .pooled_calls = atomic_load(&slot->pooled_calls),
            .chunks = atomic_load(&slot->chunks),
            .nanoseconds = atomic_load(&slot->nanoseconds),
        };
    }
    return n;
}
