// How many physical cores this process may run on: the default thread count. SMT siblings
// share one core's vector units, so a second thread on them adds little to these kernels and
// takes the core from its sibling.
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

#include "CPUKernels.h"

int hifc_physical_cores(void) {
#if defined(__linux__)
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return (int)sysconf(_SC_NPROCESSORS_ONLN);
    // (package, core) pairs seen so far; machines with more than 4096 logical CPUs count as many.
    enum { most = 4096 };
    long seen[most];
    int cores = 0, logical = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed)) continue;
        logical++;
        char path[128];
        long core = -1, package = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%ld", &core) != 1) core = -1;
            fclose(f);
        }
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
        f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%ld", &package) != 1) package = 0;
            fclose(f);
        }
        if (core < 0) return CPU_COUNT(&allowed);  // no topology: count logical CPUs
        long key = package * 1000000 + core;
        int known = 0;
        for (int i = 0; i < cores && !known; i++) known = seen[i] == key;
        if (!known && cores < most) seen[cores++] = key;
    }
    return cores > 0 ? cores : (logical > 0 ? logical : 1);
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
#endif
}
