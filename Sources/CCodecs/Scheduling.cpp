// The scheduling calls of the codec helpers' hand-off (see CodecHelperProcess); glibc declares them under
// _GNU_SOURCE.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <sched.h>
#include <string.h>

#include "CCodecs.h"

static_assert(sizeof(CCodecs_CPUMask) == sizeof(cpu_set_t), "CCodecs_CPUMask mirrors cpu_set_t");

extern "C" int CCodecs_currentCPU(void) { return sched_getcpu(); }

extern "C" int CCodecs_pinToCPU(int pid, int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return -1;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(pid, sizeof set, &set);
}

extern "C" int CCodecs_getAffinity(CCodecs_CPUMask *mask) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    memcpy(mask, &set, sizeof set);
    return 0;
}

extern "C" int CCodecs_setAffinity(const CCodecs_CPUMask *mask) {
    cpu_set_t set;
    memcpy(&set, mask, sizeof set);
    return sched_setaffinity(0, sizeof set, &set);
}

extern "C" int CCodecs_trimMemory(void) { return malloc_trim(0); }
