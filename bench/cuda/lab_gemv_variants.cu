// Lab-only configurations of gemv.cu's skinny GEMM for m <= 16 (appended to it by lab_gemv.py),
// beside the committed t2r2u2: one feature tile per CTA (t2r1: twice the CTAs, x read once per
// weight byte), one chunk a step (u1: fewer registers, more CTAs per
// multiprocessor), and no prefetch (p0). _b8: at most 8 warps (t2r1u4 needs 158
// registers).
#define GEMV_LAB(T, R, U, P, W) skinny_gemm<T, R, U, P, 1, W, 0>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT)
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r1u2p1h1(GEMV_ARGS) { GEMV_LAB(2, 1, 2, 1, 16); }
extern "C" __global__ void __launch_bounds__(256) gemv_bf16_t2r1u4p1h1_b8(GEMV_ARGS) { GEMV_LAB(2, 1, 4, 1, 8); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r2u1p1h1(GEMV_ARGS) { GEMV_LAB(2, 2, 1, 1, 16); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r2u4p0h1(GEMV_ARGS) { GEMV_LAB(2, 2, 4, 0, 16); }
