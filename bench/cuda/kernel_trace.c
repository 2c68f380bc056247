// A CUDA injection library that writes every kernel's start and end (GPU timestamps, CUPTI's
// concurrent-kernel activity) to a text file, graph-replayed kernels included. Nsight Systems is
// not on the GPU machine and Nsight Compute times each kernel alone, serialized; this shows the
// kernels of a decode step as the graph replays them, overlapped by programmatic dependent launch,
// so the time each adds to the step can be read off (kernel_timeline.py).
//
// Build: bench/cuda/build-kernel-trace.sh (CUPTI 13.0 from PyPI, into .device/cupti/). Use (the
// driver loads the library and calls InitializeInjection when the program first uses CUDA):
//   CUDA_INJECTION64_PATH=$PWD/.device/cupti/kernel_trace.so LD_LIBRARY_PATH=$PWD/.device/cupti \
//   HIFC_KERNEL_TRACE=trace.txt hifc bench model ...
// (gpu-visit.sh's trace step). Tracing left 8B decode steps within 0.1-0.2% of their untraced time
// on an H100 (bench/results/cuda-graphs-h200.md, 2026-12-06).
// Each line: graph id, graph node id (0 outside graphs), start and end (ns), grid and block x,
// registers a thread, name.

#include <cupti.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE* trace_file;

static void check(CUptiResult result, const char* what) {
    if (result == CUPTI_SUCCESS) return;
    const char* message = "unknown";
    cuptiGetResultString(result, &message);
    fprintf(stderr, "kernel_trace: %s failed: %s\n", what, message);
    exit(1);
}

static void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
    *size = 16u << 20;
    *buffer = aligned_alloc(8, *size);
    if (*buffer == NULL) {
        fprintf(stderr, "kernel_trace: out of host memory for a %zu-byte record buffer\n", *size);
        exit(1);
    }
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext context, uint32_t stream, uint8_t* buffer, size_t size, size_t valid) {
    (void)context;
    (void)stream;
    (void)size;
    CUpti_Activity* record = NULL;
    while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
        if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && record->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
        const CUpti_ActivityKernel10* k = (const CUpti_ActivityKernel10*)record;
        fprintf(trace_file, "%u %llu %llu %llu %d %d %u %s\n", k->graphId, (unsigned long long)k->graphNodeId,
                (unsigned long long)k->start, (unsigned long long)k->end, k->gridX, k->blockX, k->registersPerThread,
                k->name);
    }
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(context, stream, &dropped) == CUPTI_SUCCESS && dropped > 0)
        fprintf(stderr, "kernel_trace: %zu records dropped\n", dropped);
    free(buffer);
}

static void flush_at_exit(void) {
    cuptiActivityFlushAll(1);
    fclose(trace_file);
}

int InitializeInjection(void) {
    const char* path = getenv("HIFC_KERNEL_TRACE");
    trace_file = fopen(path != NULL ? path : "kernel-trace.txt", "w");
    if (trace_file == NULL) {
        perror("kernel_trace: cannot open the trace file");
        return 0;
    }
    check(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "cuptiActivityRegisterCallbacks");
    check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "cuptiActivityEnable");
    atexit(flush_at_exit);
    return 1;
}
