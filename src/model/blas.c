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

/* OpenBLAS cores whose SGEMM uses AVX2 or AVX-512 */
static bool core_is_modern(const char *core) {
    static const char *const modern[] = {"haswell", "skylakex", "cooperlake", "sapphirerapids", "zen"};
    for (size_t i = 0; i < sizeof modern / sizeof modern[0]; i++)
        if (!strcasecmp(core, modern[i])) return true;
    return false;
}

const char *rq_blas_select_kernels(void) {
    const char *core = openblas_get_corename();
    if (!core || !gotoblas_dynamic_init || !gotoblas_dynamic_quit) return core ? core : "unknown";
    const char *target = getenv("RQ_BLAS_CORE");
    if (target && !strcasecmp(target, "default")) return core;
    if (!target || !*target) {
        /* A pin in the environment (OPENBLAS_CORETYPE) is kept. Without one, a CPU newer
         * than the OpenBLAS build falls back to its SSE3 kernels (Prescott): pick the
         * AVX-512 or AVX2 ones the CPU runs. */
        const char *pin = getenv("OPENBLAS_CORETYPE");
        if ((pin && *pin) || core_is_modern(core)) return core;
        rq_cpu_level lv = rq_cpu_max_level();
        if (lv < RQ_CPU_AVX2) return core;
        target = lv >= RQ_CPU_AVX512 ? "SKYLAKEX" : "HASWELL";
    }
    if (!strcasecmp(core, target)) return core;
    setenv("OPENBLAS_CORETYPE", target, 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    core = openblas_get_corename();
    return core ? core : "unknown";
}
