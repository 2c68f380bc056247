// Lab only (bench/cuda/lab_layer_chain.py --late qkv,o), appended to gemv.cu: the plain skinny GEMM
// launches with their successor let in only at their exit (no griddepcontrol.launch_dependents
// after the wait), for q|k|v (before the decode attention) or o (before gate|up).
#define GEMV_WAIT_ONLY [] { grid_dependency_wait(); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u2p1h1_late(GEMV_ARGS) { skinny_gemm<1, 1, 2, 1, 1, 16, 0>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT_ONLY); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t1r1u4p1h1_late(GEMV_ARGS) { skinny_gemm<1, 1, 4, 1, 1, 16, 0>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT_ONLY); }
extern "C" __global__ void __launch_bounds__(512) gemv_bf16_t2r2u2p1h1_late(GEMV_ARGS) { skinny_gemm<2, 2, 2, 1, 1, 16, 0>(x, w, y, m, n, k, GEMV_PLAIN, blockIdx.x, GEMV_WAIT_ONLY); }

// lab_layer_chain.py --gate-kernel: one block that only waits for the kernel before it and lets the
// next one in, in place of a norm the chain leaves out (a boundary without the norm's work).
extern "C" __global__ void lab_gate_kernel() { wait_for_previous_kernel(); }
