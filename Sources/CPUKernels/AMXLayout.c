// Whether this process may use Intel AMX, and the AMX path's packing and epilogue compiled for
// any CPU (AMXLayout.h), so that tests check them where there is no AMX to run.
#include <stdatomic.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "AMXLayout.h"

/// Linux's arch_prctl request for an extended state component and the tile data's number
/// (arch/x86/include/uapi/asm/prctl.h, Documentation/arch/x86/xstate.rst): tile data is 8 KiB of
/// signal-frame state, so Linux hands it only to processes that ask.
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static int probe(void) {
    int status = 0;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if ((d >> 24) & 1) status |= HIFC_AMX_CPU_TILE;
    if ((d >> 25) & 1) status |= HIFC_AMX_CPU_INT8;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return status;  // no OSXSAVE: no xgetbv
    unsigned lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if (((lo >> 17) & 3) == 3) status |= HIFC_AMX_OS_STATE;
#if defined(__linux__)
    if ((status & (HIFC_AMX_CPU_TILE | HIFC_AMX_OS_STATE)) == (HIFC_AMX_CPU_TILE | HIFC_AMX_OS_STATE) &&
        syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0)
        status |= HIFC_AMX_PERMITTED;
#endif
#endif
    return status;
}

static _Atomic int amx_status = -1;
static _Atomic long amx_products = 0;

int hifc_amx_status(void) {
    int status = atomic_load(&amx_status);
    if (status < 0) {
        // Two first callers may both ask; the permission request is idempotent.
        status = probe();
        atomic_store(&amx_status, status);
    }
    return status;
}

long hifc_amx_products(void) { return atomic_load(&amx_products); }

void hifc_amx_count_product(void) { atomic_fetch_add_explicit(&amx_products, 1, memory_order_relaxed); }

void hifc_amx_pack_weights(int type, const void *w, long row_bytes, int nr, long block, hifc_amx_block *out) {
    amx_pack_weight_block(type, w, row_bytes, nr, block, out);
}

void hifc_amx_pack_activations(const float *a, int mr, long k, hifc_amx_block *out) {
    const long act_bytes = (long)hifc_gemm_quant_scratch(HIFC_QUANT_Q8_0, 1, k);
    hifc_block_q8 rows[16 * (k / 32)];
    for (int i = 0; i < mr; i++) hifc_kernels_portable.quantize_q8(a + i * k, rows + i * (k / 32), k);
    for (long b = 0; b < k / 32; b++) amx_pack_activation_block((const uint8_t *)rows, act_bytes, mr, b, out + b);
}

void hifc_amx_accumulate(const int32_t *c, const hifc_amx_block *w, const hifc_amx_block *a, float *acc) {
    amx_floats lanes[16];
    memcpy(lanes, acc, sizeof lanes);
    amx_accumulate(c, w, a, lanes);
    memcpy(acc, lanes, sizeof lanes);
}

void hifc_amx_store(const float *acc, int mr, int nr, float *out, long ldc) {
    amx_floats lanes[16];
    memcpy(lanes, acc, sizeof lanes);
    amx_store(lanes, mr, nr, out, ldc);
}
