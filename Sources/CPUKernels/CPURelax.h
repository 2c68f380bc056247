// The one instruction a spin wait runs each turn, for the thread pool's workers and caller
// (ThreadPool.c) and a two-phase op's second phase waiting for its first (Dispatch.c): on its
// own so that neither depends on the kernel table for it.
#ifndef HIFC_CPU_RELAX_H
#define HIFC_CPU_RELAX_H

/// What a thread does in each turn of a spin wait: tells the core it is waiting.
#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#endif
