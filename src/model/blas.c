#include "model/blas.h"

#include "base/cpu.h"

#include <cblas.h>
#include <stdbool.h>
#include <stdlib.h>
#include <strings.h>

/* OpenBLAS internals, exported by its DYNAMIC_ARCH builds; weak so that a BLAS without
 * them still links. */
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

const char *rq_blas_select_kernels(void) {
    const char *core = openblas_get_corename();
    if (!core || !gotoblas_dynamic_init || !gotoblas_dynamic_quit) return core ? core : "unknown";
    const char *target = getenv("RQ_BLAS_CORE");
    if (!target || !*target) {
        const rq_cpu_features *f = rq_cpu_features_get();
        bool avx512 = f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq && rq_cpu_level_get() >= RQ_CPU_AVX512;
        bool avx2_core = !strcasecmp(core, "haswell") || !strcasecmp(core, "zen");
        if (!avx512 || !avx2_core) return core;
        target = "SKYLAKEX";
    }
    if (!strcasecmp(core, target)) return core;
    setenv("OPENBLAS_CORETYPE", target, 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    core = openblas_get_corename();
    return core ? core : "unknown";
}
