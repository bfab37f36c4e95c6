#include "model/blas.h"

#include <cblas.h>
#include <stdlib.h>
#include <strings.h>

/* OpenBLAS internals, exported by its DYNAMIC_ARCH builds; weak so that a BLAS without
 * them still links. */
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

const char *rq_blas_select_kernels(void) {
    const char *core = openblas_get_corename();
    if (!core || !gotoblas_dynamic_init || !gotoblas_dynamic_quit) return core ? core : "unknown";
    /* Opt-in only: this workplace pins OPENBLAS_CORETYPE on CPUs where older OpenBLAS
     * builds compute wrong results or crash, and asks that tests and CI never change it. */
    const char *target = getenv("RQ_BLAS_CORE");
    if (!target || !*target) return core;
    if (!strcasecmp(core, target)) return core;
    setenv("OPENBLAS_CORETYPE", target, 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    core = openblas_get_corename();
    return core ? core : "unknown";
}
