/* CPU feature detection and the kernel level chosen at run time.
 * RQ_CPU=scalar|avx2|avx512 in the environment caps the level (for tests and
 * benchmarks); it never raises it above what the CPU has. */
#ifndef RQ_BASE_CPU_H
#define RQ_BASE_CPU_H

#include <stdbool.h>

typedef enum rq_cpu_level {
    RQ_CPU_SCALAR = 0,
    RQ_CPU_AVX2 = 1,   /* AVX2 + FMA + F16C */
    RQ_CPU_AVX512 = 2, /* AVX-512 F/BW/VL/DQ (+ VNNI reported separately) */
} rq_cpu_level;

typedef struct rq_cpu_features {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avxvnni;
} rq_cpu_features;

const rq_cpu_features *rq_cpu_features_get(void);
/* Highest level the CPU supports (ignores RQ_CPU). */
rq_cpu_level rq_cpu_max_level(void);
/* Level kernels should use now: min(max level, RQ_CPU cap, rq_cpu_set_level cap). */
rq_cpu_level rq_cpu_level_get(void);
/* Cap the level for this process (tests use it to run every path the CPU has). */
void rq_cpu_set_level(rq_cpu_level level);
const char *rq_cpu_level_name(rq_cpu_level level);

#endif
