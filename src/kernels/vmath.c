/* rq_vmath_get (kernels/vmath.h): the table of the fastest level rq_cpu_level_get()
 * allows (x86/vmath_avx2.c, x86/vmath_avx512.c), else the scalar one of ref/vmath_ref.c. */
#include "kernels/vmath.h"

#include "base/cpu.h"

const rq_vmath *rq_vmath_get(void) {
    switch (rq_cpu_level_get()) {
    case RQ_CPU_AVX512: return &rq_vmath_avx512;
    case RQ_CPU_AVX2: return &rq_vmath_avx2;
    default: return &rq_vmath_ref;
    }
}
