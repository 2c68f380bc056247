// Sampling helpers over fp32 logits rows.

// The block-wide largest (v, idx), smallest index on ties; thread 0 gets the result.
__device__ __forceinline__ void block_argmax(float& v, int& idx, float* best_v, int* best_i) {
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ov > v || (ov == v && oi < idx)) { v = ov; idx = oi; }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { best_v[warp] = v; best_i[warp] = idx; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); ++w)
            if (best_v[w] > v || (best_v[w] == v && best_i[w] < idx)) { v = best_v[w]; idx = best_i[w]; }
    }
}

// The argmax of row blockIdx.x / C by the C blocks of its cluster, each over a contiguous part
// (whole float4s where the vocabulary is divisible by 4), block 0 writing out[row] (the smallest
// index on ties; 0 for a row without a number above -inf). Rows of a vocabulary divisible by 4 are
// read as float4, four loads in flight a thread: one block per row is latency-bound, and a scalar
// loop over 128K logits took 33 us on the H100, the float4 loop 10 us on the H200.
template <int C>
__device__ __forceinline__ void argmax_row(const float* __restrict__ logits, int vocab, int* __restrict__ out) {
    __shared__ float best_v[32];
    __shared__ int best_i[32];
    const int row = blockIdx.x / C, rank = blockIdx.x % C;
    const float* x = logits + (long)row * vocab;
    float v = NEG_INF;
    int idx = 0x7fffffff;
    // A thread's indices only grow, so a strict > keeps its first maximum.
    auto take = [&](float value, int i) { if (value > v) { v = value; idx = i; } };
    if ((vocab & 3) == 0) {
        const float4* x4 = reinterpret_cast<const float4*>(x);
        const int n4 = vocab / 4, part = (n4 + C - 1) / C, stride = blockDim.x;
        const int lo = min(n4, rank * part), hi = min(n4, lo + part);
        for (int c = lo + threadIdx.x; c < hi; c += 4 * stride) {
            float4 f[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) f[u] = c + u * stride < hi ? x4[c + u * stride] : make_float4(NEG_INF, NEG_INF, NEG_INF, NEG_INF);
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const int i = 4 * (c + u * stride);
                take(f[u].x, i); take(f[u].y, i + 1); take(f[u].z, i + 2); take(f[u].w, i + 3);
            }
        }
    } else {
        const int part = (vocab + C - 1) / C, lo = min(vocab, rank * part), hi = min(vocab, lo + part);
        for (int i = lo + threadIdx.x; i < hi; i += blockDim.x) take(x[i], i);
    }
    block_argmax(v, idx, best_v, best_i);
    if constexpr (C > 1) {
        // Each block shows its (v, idx); block 0 takes the blocks' in rank order, whose indices
        // grow, so a strict > keeps the first maximum here too.
        __shared__ float shown_v;
        __shared__ unsigned int shown_i;
        if (threadIdx.x == 0) { shown_v = v; shown_i = (unsigned int)idx; }
        cluster_barrier();
        if (rank == 0 && threadIdx.x == 0) {
            for (int k = 1; k < C; ++k) {
                const float kv = cluster_load<float>(smem_addr(&shown_v), k);
                if (kv > v) { v = kv; idx = (int)cluster_load<unsigned int>(smem_addr(&shown_i), k); }
            }
        }
        cluster_barrier();  // no block leaves before block 0 has read its shared memory
    }
    if (rank == 0 && threadIdx.x == 0) out[row] = idx == 0x7fffffff ? 0 : idx;
}

// out[r] = index of the largest logit of row r (the smallest such index on ties); one block per row.
extern "C" __global__ void argmax_f32(const float* __restrict__ logits, int vocab, int* __restrict__ out) {
    wait_for_previous_kernel();
    argmax_row<1>(logits, vocab, out);
}

// token_ids[r] = previous[feed_rows[r]] where feed_rows[r] names one of the previous step's
// previous_rows greedy picks (-1: the row's id was uploaded): a step launched before the host has
// the tokens of the step it follows.
extern "C" __global__ void feed_tokens(int* __restrict__ token_ids, const int* __restrict__ feed_rows, int rows,
                                       const int* __restrict__ previous, int previous_rows) {
    wait_for_previous_kernel();
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const int source = feed_rows[r];
    if (source >= 0 && source < previous_rows) token_ids[r] = previous[source];
}

// MARK: Draws where the logits are (TokenDraw in Swift)

// One row's draw; a temperature of 0 or less marks a row the kernel leaves alone (its argmax,
// written by argmax_f32 before, stays). 24 bytes, as CUDAKernels.sampleRows packs it.
struct RowDraw {
    float temperature, top_p, min_p;
    int top_k;
    double uniform;
};

namespace draw {

constexpr int THREADS = 1024;
constexpr int WARPS = THREADS / 32;

// A value's place in the order a draw walks, as an unsigned key: a larger value has a larger key;
// NaN counts as minus infinity and -0 as +0, as the host's comparisons of floats make them.
__device__ __forceinline__ unsigned order_key(float x) {
    if (isnan(x)) x = NEG_INF;
    if (x == 0.f) x = 0.f;
    const unsigned b = __float_as_uint(x);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// The positions at or before a boundary in the walk's order (key descending, then index
// ascending): every constraint of a draw (top-k, min-p, the nucleus, the draw's own point) keeps
// such a prefix. NONE keeps nothing (no key reaches it).
struct Boundary {
    unsigned key;
    int index;
};
constexpr Boundary ALL = {0u, 0x7fffffff};
constexpr Boundary NONE = {0xffffffffu, -1};

__device__ __forceinline__ bool within(unsigned key, int i, Boundary b) {
    return key > b.key || (key == b.key && i <= b.index);
}

struct Shared {
    double mass[256];
    unsigned count[256];
    double merged_mass[256];  // the cluster's histogram (C > 1)
    unsigned merged_count[256];
    double sums[WARPS];
    int ints[WARPS];
    float floats[WARPS];
    int chosen;
    double above;
    int found;
    // What this block shows the other blocks of its cluster (cluster_combine).
    double shown;
    float shown_float;
    unsigned shown_count;
};

// One row of logits and what the draw computes from each: its value (soft-capped), its key and
// its weight e^((value - max) / T), taken as the host takes it (the top-k path divides by T, the
// whole-vocabulary path multiplies by 1 / T). A block walks its part [lo, hi) of the row.
struct Row {
    const float* x;
    int lo, hi, rank;
    float softcap, max, temperature, inverse;
    bool divides;
    float floor;  // the least weight a candidate keeps (min-p); -inf: none
    __device__ float value(int i) const { return softcap > 0.f ? softcap * tanhf(x[i] / softcap) : x[i]; }
    __device__ float weight(float v) const { return expf(divides ? (v - max) / temperature : (v - max) * inverse); }
};

// The C blocks of a row's cluster combine a value each block holds (every thread the same):
// `slot` shows it, and every block reads all C in rank order, so each gets the same result.
// kind 0: the sum; 1: the sum over the blocks before this one; 2: the largest. C == 1: no cluster.
template <int C, typename T>
__device__ T cluster_combine(T v, T* slot, int rank, int kind) {
    if constexpr (C == 1) {
        return kind == 1 ? T(0) : v;
    } else {
        if (threadIdx.x == 0) *slot = v;
        cluster_barrier();
        T r = kind == 2 ? cluster_load<T>(smem_addr(slot), 0) : T(0);
        for (int k = kind == 2 ? 1 : 0; k < (kind == 1 ? rank : C); ++k) {
            const T x = cluster_load<T>(smem_addr(slot), k);
            r = kind == 2 ? (x > r ? x : r) : r + x;
        }
        cluster_barrier();  // every block has read every slot before any shows its next value
        return r;
    }
}

__device__ double block_sum(double v, Shared& sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sh.sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < WARPS ? sh.sums[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) sh.sums[0] = v;
    }
    __syncthreads();
    const double total = sh.sums[0];
    __syncthreads();
    return total;
}

__device__ float block_max(float v, Shared& sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sh.floats[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < WARPS ? sh.floats[lane] : NEG_INF;
        for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
        if (lane == 0) sh.floats[0] = v;
    }
    __syncthreads();
    const float m = sh.floats[0];
    __syncthreads();
    return m;
}

// The sum of `v` over the threads before this one (thread order), for T = int or double; the
// block's total in `total`.
template <typename T>
__device__ T block_exclusive_scan(T v, T* scratch, T& total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    T x = v;
    for (int o = 1; o < 32; o <<= 1) {
        const T y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    if (lane == 31) scratch[warp] = x;
    __syncthreads();
    if (warp == 0) {
        T s = lane < WARPS ? scratch[lane] : T(0);
        for (int o = 1; o < 32; o <<= 1) {
            const T y = __shfl_up_sync(0xffffffffu, s, o);
            if (lane >= o) s += y;
        }
        if (lane < WARPS) scratch[lane] = s;
    }
    __syncthreads();
    const T before = (warp > 0 ? scratch[warp - 1] : T(0)) + x - v;
    total = scratch[WARPS - 1];
    __syncthreads();
    return before;
}

// Adds each lane's contribution `c` to bin `digit` (none where digit < 0): one atomic per distinct
// digit of the warp, whose lanes mostly share one (most logits share an exponent).
__device__ __forceinline__ void warp_histogram_add(int digit, double c, Shared& sh) {
    const int lane = threadIdx.x & 31;
    unsigned pending = __ballot_sync(0xffffffffu, digit >= 0);
    while (pending) {
        const int leader = __ffs(pending) - 1;
        const int d = __shfl_sync(0xffffffffu, digit, leader);
        const unsigned group = __ballot_sync(0xffffffffu, digit == d);
        double s = digit == d ? c : 0.0;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == leader) {
            atomicAdd(&sh.mass[d], s);
            atomicAdd(&sh.count[d], (unsigned)__popc(group));
        }
        pending &= ~group;
    }
}

// Whether position i is a candidate within `members`; its value's key in `key`, its weight in `w`.
__device__ __forceinline__ bool candidate(const Row& r, int i, Boundary members, unsigned& key, float& w) {
    const float v = r.value(i);
    key = order_key(v);
    if (!within(key, i, members)) return false;
    w = r.weight(v);
    return w >= r.floor;
}

// A thread's contiguous span of its block's part of the row, so that counts and sums in thread
// order, then block (rank) order, are in index order.
__device__ __forceinline__ void thread_span(const Row& r, int& lo, int& hi) {
    const int per = (r.hi - r.lo + THREADS - 1) / THREADS;
    lo = min(r.hi, r.lo + (int)threadIdx.x * per);
    hi = min(r.hi, lo + per);
}

// The index of the `j`-th candidate (1-based, in index order) whose key is `key`.
template <int C>
__device__ int nth_with_key(const Row& r, Boundary members, unsigned key, int j, Shared& sh) {
    int lo, hi;
    thread_span(r, lo, hi);
    int count = 0;
    unsigned k;
    float w;
    for (int i = lo; i < hi; ++i)
        if (candidate(r, i, members, k, w) && k == key) ++count;
    if (threadIdx.x == 0) sh.found = -1;
    int total;
    int before = block_exclusive_scan(count, sh.ints, total);
    before += (int)cluster_combine<C, unsigned>((unsigned)total, &sh.shown_count, r.rank, 1);
    if (before < j && j <= before + count) {
        int seen = before;
        for (int i = lo; i < hi; ++i) {
            if (candidate(r, i, members, k, w) && k == key && ++seen == j) {
                sh.found = i;
                break;
            }
        }
    }
    __syncthreads();
    const int found = sh.found;
    __syncthreads();
    // One block found it; the others hold -1 (shown as 0).
    return (int)cluster_combine<C, unsigned>((unsigned)(found + 1), &sh.shown_count, r.rank, 2) - 1;
}

// The end of the shortest prefix (walk order) of the candidates within `members` whose
// contributions (1 each, or their weights) reach `goal` (pass it, with `strict`); where none does,
// the last candidate. Four passes of a 256-bin histogram narrow the boundary's key a byte at a
// time, from the top (each block's histogram of its part, summed over the cluster); then the
// equal keys at the boundary, whose contributions are equal, are counted off in index order.
template <int C>
__device__ Boundary prefix_reaching(const Row& r, Boundary members, bool weighted, double goal, bool strict, Shared& sh) {
    unsigned prefix = 0, mask = 0;
    double above = 0.0;
    const double* mass = C > 1 ? sh.merged_mass : sh.mass;
    const unsigned* count = C > 1 ? sh.merged_count : sh.count;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int d = threadIdx.x; d < 256; d += THREADS) {
            sh.mass[d] = 0.0;
            sh.count[d] = 0u;
        }
        __syncthreads();
        for (int base = r.lo; base < r.hi; base += THREADS) {
            const int i = base + threadIdx.x;
            int digit = -1;
            double c = 0.0;
            unsigned key;
            float w;
            if (i < r.hi && candidate(r, i, members, key, w) && (key & mask) == prefix) {
                digit = (key >> shift) & 255;
                c = weighted ? (double)w : 1.0;
            }
            warp_histogram_add(digit, c, sh);
        }
        if constexpr (C > 1) {
            cluster_barrier();  // every block's histogram is complete
            for (int d = threadIdx.x; d < 256; d += THREADS) {
                double m = 0.0;
                unsigned n = 0u;
                for (int k = 0; k < C; ++k) {
                    m += cluster_load<double>(smem_addr(&sh.mass[d]), k);
                    n += cluster_load<unsigned>(smem_addr(&sh.count[d]), k);
                }
                sh.merged_mass[d] = m;
                sh.merged_count[d] = n;
            }
            cluster_barrier();  // every block has read every histogram before any clears its own
        } else {
            __syncthreads();
        }
        if (threadIdx.x == 0) {
            int chosen = -1, lowest = -1;
            double reached = above, beforeLowest = above;
            for (int d = 255; d >= 0; --d) {
                if (count[d] == 0u) continue;
                const double next = reached + mass[d];
                if (strict ? next > goal : next >= goal) {
                    chosen = d;
                    break;
                }
                beforeLowest = reached;
                lowest = d;
                reached = next;
            }
            if (chosen >= 0) {
                sh.chosen = chosen;
                sh.above = reached;
            } else {
                sh.chosen = lowest;  // the goal is past them all: the last candidate
                sh.above = beforeLowest;
            }
        }
        __syncthreads();
        const int chosen = sh.chosen;
        above = sh.above;
        if (chosen < 0) return NONE;  // no candidate at all (the same in every block)
        prefix |= (unsigned)chosen << shift;
        mask |= 255u << shift;
        __syncthreads();
    }
    // The last pass's bin holds exactly the candidates whose key is `prefix`.
    const unsigned ties = count[sh.chosen];
    const double each = mass[sh.chosen] / (double)ties;
    __syncthreads();
    // How many of the equal keys, in index order, the goal needs; all of them where it is past
    // their sum, or where their weights are 0 or NaN.
    const double needed = (goal - above) / each;
    double j = (double)ties;
    if (isfinite(needed)) j = fmin((double)ties, fmax(1.0, strict ? floor(needed) + 1.0 : ceil(needed)));
    return Boundary{prefix, nth_with_key<C>(r, members, prefix, (int)j, sh)};
}

// The sum of the candidates' weights within `members`.
template <int C>
__device__ double weight_sum(const Row& r, Boundary members, Shared& sh) {
    double s = 0.0;
    for (int i = r.lo + threadIdx.x; i < r.hi; i += THREADS) {
        unsigned key;
        float w;
        if (candidate(r, i, members, key, w)) s += (double)w;
    }
    return cluster_combine<C, double>(block_sum(s, sh), &sh.shown, r.rank, 0);
}

// The candidate at which the running sum of weights in index order first passes `target`; the
// last candidate where it never does.
template <int C>
__device__ int index_order_draw(const Row& r, double target, Shared& sh) {
    int lo, hi;
    thread_span(r, lo, hi);
    double mine = 0.0;
    int last = -1;
    unsigned key;
    float w;
    for (int i = lo; i < hi; ++i) {
        if (candidate(r, i, ALL, key, w)) {
            mine += (double)w;
            last = i;
        }
    }
    if (threadIdx.x == 0) sh.found = -1;
    double total;
    double before = block_exclusive_scan(mine, sh.sums, total);
    before += cluster_combine<C, double>(total, &sh.shown, r.rank, 1);
    if (before <= target && target < before + mine) {
        double running = before;
        for (int i = lo; i < hi; ++i) {
            if (candidate(r, i, ALL, key, w)) {
                running += (double)w;
                if (running > target) {
                    sh.found = i;
                    break;
                }
            }
        }
    }
    // The last candidate of the row, for a target past every sum.
    for (int o = 16; o > 0; o >>= 1) last = max(last, __shfl_xor_sync(0xffffffffu, last, o));
    if ((threadIdx.x & 31) == 0) sh.ints[threadIdx.x >> 5] = last;
    __syncthreads();
    int found = sh.found;
    last = -1;
    for (int w2 = 0; w2 < WARPS; ++w2) last = max(last, sh.ints[w2]);
    __syncthreads();
    found = (int)cluster_combine<C, unsigned>((unsigned)(found + 1), &sh.shown_count, r.rank, 2) - 1;
    last = (int)cluster_combine<C, unsigned>((unsigned)(last + 1), &sh.shown_count, r.rank, 2) - 1;
    return found >= 0 ? found : last;
}

// Row blockIdx.x / C's draw by the C blocks of its cluster, each over a contiguous part of the
// row; block 0 writes the token.
template <int C>
__device__ void sample_row(const float* __restrict__ logits, int vocab, const RowDraw* __restrict__ draws, float softcap, int* __restrict__ out) {
    __shared__ Shared sh;
    const int row = blockIdx.x / C;
    const RowDraw d = draws[row];
    if (!(d.temperature > 0.f) || vocab < 2) return;  // every block of the row returns
    Row r;
    r.x = logits + (long)row * vocab;
    r.rank = blockIdx.x % C;
    const int part = (vocab + C - 1) / C;
    r.lo = min(vocab, r.rank * part);
    r.hi = min(vocab, r.lo + part);
    r.softcap = softcap;
    r.temperature = d.temperature;
    r.inverse = 1.f / d.temperature;
    const bool topk = d.top_k > 0 && d.top_k < vocab;
    r.divides = topk;
    float m = NEG_INF;
    for (int i = r.lo + threadIdx.x; i < r.hi; i += THREADS) m = fmaxf(m, r.value(i));
    r.max = cluster_combine<C, float>(block_max(m, sh), &sh.shown_float, r.rank, 2);
    // Top-k counts candidates before any floor.
    r.floor = NEG_INF;
    const Boundary kept = topk ? prefix_reaching<C>(r, ALL, false, (double)d.top_k, false, sh) : ALL;
    r.floor = fmaxf(d.min_p, 0.f);
    double total = weight_sum<C>(r, kept, sh);
    Boundary nucleus = kept;
    if (d.top_p < 1.f) {
        nucleus = prefix_reaching<C>(r, kept, true, (double)d.top_p * total, false, sh);
        total = weight_sum<C>(r, nucleus, sh);
    }
    const double target = d.uniform * total;
    int token;
    if (topk || d.top_p < 1.f) {
        token = prefix_reaching<C>(r, nucleus, true, target, true, sh).index;
    } else {
        token = index_order_draw<C>(r, target, sh);
    }
    if (r.rank == 0 && threadIdx.x == 0) out[row] = token < 0 ? 0 : token;
}

}  // namespace draw

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define CLUSTER_OF_8 __cluster_dims__(8, 1, 1)
#else
#define CLUSTER_OF_8
#endif

// out[r] = the token row r's draw picks from its logits (soft-capped by `softcap` when it is above
// 0), as TokenDraw.pick does on the host: top-k by value (the lower index first on ties), the
// weights e^((x - max) / T), min-p's floor on them, the top-p nucleus, then the point where the
// running sum of weights passes `uniform` of the candidates' (in the walk's order, or in index
// order with neither top-k nor top-p). One block per row; rows without a draw are left alone.
extern "C" __global__ void __launch_bounds__(1024) sample_rows_f32(
    const float* __restrict__ logits, int vocab, const RowDraw* __restrict__ draws, float softcap, int* __restrict__ out)
{
    wait_for_previous_kernel();
    draw::sample_row<1>(logits, vocab, draws, softcap, out);
}

// The same draws by a cluster of 8 blocks a row (grid: rows x 8), each over an eighth of the row,
// their histograms and sums combined through distributed shared memory: one block walked a
// 128K-logit row about 15 times for a top-p draw, 1.2 ms of an H100's step (logprobs.md). From
// sm_90 on; below it a trap, and CUDAKernels.sampleRows launches sample_rows_f32 instead.
extern "C" __global__ void CLUSTER_OF_8 __launch_bounds__(1024) sample_rows_f32_cluster8(
    const float* __restrict__ logits, int vocab, const RowDraw* __restrict__ draws, float softcap, int* __restrict__ out)
{
    wait_for_previous_kernel();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    draw::sample_row<8>(logits, vocab, draws, softcap, out);
#else
    __trap();
#endif
}

// argmax_f32 by a cluster of 8 blocks a row (grid: rows x 8), each over an eighth of the row, their
// results met through distributed shared memory: the one block a row walked 128K logits in 10 us
// of every decode step on the H200 (cuda-graphs-h200.md), after the LM head and before the next
// step can start. From sm_90 on; below it a trap, and CUDAKernels.argmax launches argmax_f32.
extern "C" __global__ void CLUSTER_OF_8 __launch_bounds__(1024) argmax_f32_cluster8(const float* __restrict__ logits, int vocab, int* __restrict__ out) {
    wait_for_previous_kernel();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    argmax_row<8>(logits, vocab, out);
#else
    __trap();
#endif
}
