// The fork-join pool behind every parallel CPU op (see CPUKernels.h, "Threads").
//
// A job is one 64-bit word, `job`: its generation, its chunk count and the next chunk to take.
// The caller writes the job's body and context, stores a new word, then announces its
// generation in `announced`; workers that are spinning on that line see it change within
// nanoseconds, sleeping ones are woken through the condition variable. Every thread takes a
// chunk with one fetch-and-add on the word, which returns the generation and the chunk count
// with the chunk: a worker that slept or was descheduled through a whole job and adds to a newer
// word has taken a chunk of that newer job (or nothing, past its end), never one of a job that
// is over. A thread adds the chunks it ran to `finished` once, when it finds the job's chunks all
// taken; the caller takes chunks too and then waits for `finished` to reach the chunk count, so a
// job is done, and its context still alive, when `hifc_parallel` returns.
//
// Why not wait for every worker instead: the caller would then wait, each job, for workers that
// have nothing to do but are not running, which on a busy host (a server's other threads, a
// client on the same cores) holds a region for a scheduler's time slice.
//
// Lost wake-ups: a worker increments `sleepers` and re-reads `announced` before waiting, both under
// the mutex, while the caller stores `announced` and then reads `sleepers` (all sequentially
// consistent): either the worker sees the new generation and does not sleep, or the caller sees
// the sleeper and broadcasts under the mutex.
//
// Profiling (`hifc_pool_profile_start`, for `hifc bench model --profile`): while it is on, each
// call's wall time is added to a slot of its body, found by probing a small table with
// compare-and-swap, so that calls from several threads (a second caller runs its chunks inline)
// can count at once. Off, a call reads one flag. Each slot also sums the gap before its calls:
// the time since the caller's previous call returned (the serial work that leads to this op).
#define _GNU_SOURCE
#include "CPUKernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "CPURelax.h"

// The job word: generation (20 bits, wrapping) | chunks (22 bits) | next chunk (22 bits). After a
// job's last chunk each thread adds at most once more before it waits for the next word, so the
// next-chunk field stays below its limit when chunks plus threads do.
#define FIELD_BITS 22
#define FIELD_MASK ((UINT64_C(1) << FIELD_BITS) - 1)
#define MOST_THREADS 4096
#define MOST_CHUNKS_A_JOB ((long)FIELD_MASK - MOST_THREADS)

static inline uint64_t job_word(uint64_t generation, long chunks) {
    return (generation << (2 * FIELD_BITS)) | ((uint64_t)chunks << FIELD_BITS);
}
static inline uint64_t word_generation(uint64_t word) { return word >> (2 * FIELD_BITS); }
static inline long word_chunks(uint64_t word) { return (long)((word >> FIELD_BITS) & FIELD_MASK); }
static inline long word_next(uint64_t word) { return (long)(word & FIELD_MASK); }

struct hifc_pool {
    // Set at creation.
    int threads;
    long spin_nanoseconds;
    pthread_t *workers;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    // The job's body, written by the caller before it stores the job's word, read by a thread
    // only while it holds one of the job's chunks (so never while the caller rewrites it).
    hifc_chunk_fn body;
    void *context;
    uint64_t generation;  // the caller's count of jobs (under `busy`)
    _Atomic int busy;     // a job is being run (submission lock)
    // What spinning workers poll, written once a job (`announced`) or rarely. The job word and
    // `finished` are written by every thread each job; on the polled line each of those writes
    // would pull it away from every spinner (on 16 cores that doubled an empty region's cost).
    _Alignas(64) _Atomic uint64_t announced;  // the generation of the latest job
    _Atomic int stop;
    _Atomic int sleepers;
    _Alignas(64) _Atomic uint64_t job;
    _Alignas(64) _Atomic long finished;  // chunks of the current job done
    // Profiling: written only by callers, and only while on.
    _Alignas(64) _Atomic int profiling;
    _Atomic long last_return;  // when the last profiled call returned (0: none since the start)
    struct profile_slot {
        _Atomic(uintptr_t) body;
        _Atomic long calls, pooled_calls, chunks, nanoseconds, gap_nanoseconds;
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

/// Takes and runs chunks of the current job until one past its end, then counts the ones it ran
/// as finished; returns the generation of the word that said so. Every chunk it takes is of one
/// job: that job cannot end before this thread has counted them.
static uint64_t take_chunks(hifc_pool *pool, int thread) {
    long ran = 0;
    for (;;) {
        uint64_t word = atomic_fetch_add_explicit(&pool->job, 1, memory_order_acq_rel);
        long chunk = word_next(word);
        if (chunk >= word_chunks(word)) {
            if (ran) atomic_fetch_add_explicit(&pool->finished, ran, memory_order_release);
            return word_generation(word);
        }
        pool->body(pool->context, chunk, thread);
        ran++;
    }
}

static int job_pending(hifc_pool *pool, uint64_t seen) { return atomic_load(&pool->announced) != seen; }

static void *worker_main(void *argument) {
    worker_start start = *(worker_start *)argument;
    free(argument);
    hifc_pool *pool = start.pool;
    uint64_t seen = atomic_load(&pool->announced);
    for (;;) {
        // Spin for the next job, then sleep.
        long deadline = now_nanoseconds() + pool->spin_nanoseconds;
        int polls = 0;
        while (!job_pending(pool, seen) && !atomic_load(&pool->stop)) {
            CPU_RELAX();
            if (++polls % 64 == 0 && now_nanoseconds() > deadline) break;
        }
        if (!job_pending(pool, seen)) {
            pthread_mutex_lock(&pool->mutex);
            atomic_fetch_add(&pool->sleepers, 1);
            while (!job_pending(pool, seen) && !atomic_load(&pool->stop)) pthread_cond_wait(&pool->wake, &pool->mutex);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) break;
        seen = take_chunks(pool, start.index);
    }
    return NULL;
}

hifc_pool *hifc_pool_create(int threads, int spin_microseconds) {
    if (threads < 1) threads = 1;
    if (threads > MOST_THREADS) threads = MOST_THREADS;
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
    // Without room for the workers' handles the pool has the caller alone, as when a worker
    // cannot start: it runs every job inline.
    for (int i = 1; i < threads && pool->workers; i++) {
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

/// Runs `chunks` (at most MOST_CHUNKS_A_JOB) chunks on the pool, or inline on the calling
/// thread; returns whether the pool ran them.
static int run_job(hifc_pool *pool, long chunks, hifc_chunk_fn body, void *context) {
    int expected = 0;
    if (!pool || pool->threads == 1 || chunks == 1 || !atomic_compare_exchange_strong(&pool->busy, &expected, 1)) {
        for (long c = 0; c < chunks; c++) body(context, c, 0);
        return 0;
    }
    pool->body = body;
    pool->context = context;
    atomic_store_explicit(&pool->finished, 0, memory_order_relaxed);
    pool->generation = (pool->generation + 1) & ((UINT64_C(1) << (64 - 2 * FIELD_BITS)) - 1);
    atomic_store(&pool->job, job_word(pool->generation, chunks));
    atomic_store(&pool->announced, pool->generation);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    take_chunks(pool, 0);
    // Every chunk has been taken; wait for the threads still running theirs.
    int polls = 0;
    while (atomic_load_explicit(&pool->finished, memory_order_acquire) < chunks) {
        CPU_RELAX();
        if (++polls > 4096) sched_yield();
    }
    atomic_store(&pool->busy, 0);
    return 1;
}

/// A job of more chunks than a job word holds, run as consecutive jobs of a slice each.
typedef struct {
    hifc_chunk_fn body;
    void *context;
    long offset;
} slice_job;

static void slice_chunk(void *context, long chunk, int thread) {
    slice_job *slice = context;
    slice->body(slice->context, slice->offset + chunk, thread);
}

static int run_jobs(hifc_pool *pool, long chunks, hifc_chunk_fn body, void *context) {
    if (chunks <= MOST_CHUNKS_A_JOB) return run_job(pool, chunks, body, context);
    int pooled = 0;
    for (long offset = 0; offset < chunks; offset += MOST_CHUNKS_A_JOB) {
        slice_job slice = {.body = body, .context = context, .offset = offset};
        long rest = chunks - offset;
        pooled |= run_job(pool, rest < MOST_CHUNKS_A_JOB ? rest : MOST_CHUNKS_A_JOB, slice_chunk, &slice);
    }
    return pooled;
}

static void profile_add(hifc_pool *pool, hifc_chunk_fn body, long chunks, int pooled, long nanoseconds, long gap) {
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
        atomic_fetch_add_explicit(&slot->gap_nanoseconds, gap, memory_order_relaxed);
        return;
    }
}

void hifc_parallel(hifc_pool *pool, long chunks, hifc_chunk_fn body, void *context) {
    if (chunks <= 0) return;
    if (!pool || !atomic_load_explicit(&pool->profiling, memory_order_relaxed)) {
        run_jobs(pool, chunks, body, context);
        return;
    }
    const long start = now_nanoseconds();
    const long previous = atomic_load_explicit(&pool->last_return, memory_order_relaxed);
    const int pooled = run_jobs(pool, chunks, body, context);
    const long end = now_nanoseconds();
    profile_add(pool, body, chunks, pooled, end - start, previous ? start - previous : 0);
    atomic_store_explicit(&pool->last_return, end, memory_order_relaxed);
}

void hifc_pool_profile_start(hifc_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->profiling, 0);
    atomic_store(&pool->last_return, 0);
    for (int i = 0; i < HIFC_PROFILE_BODIES; i++) {
        struct profile_slot *slot = &pool->profile[i];
        atomic_store(&slot->gap_nanoseconds, 0);
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
            .gap_nanoseconds = atomic_load(&slot->gap_nanoseconds),
        };
    }
    return n;
}
