/* Process-wide BLAS set-up for the float forward pass.
 *
 * rq_blas_select_kernels: OpenBLAS 0.3.21 (Debian 12) does not know AMD Zen 4/5; this
 * environment pins it to its AVX2 kernels (OPENBLAS_CORETYPE=Haswell), although the CPU
 * has AVX-512 (Zen 5: full-width), and OpenBLAS's SkylakeX SGEMM is ~1.6x faster per
 * core here (bench/bench_model). So when the CPU has AVX-512 F/BW/VL/DQ, the kernel
 * level allows AVX-512 (RQ_CPU), and OpenBLAS runs its Haswell or Zen kernels, this
 * re-runs OpenBLAS's dynamic core selection with OPENBLAS_CORETYPE=SKYLAKEX, through its
 * exported gotoblas_dynamic_quit/init (weak symbols: a BLAS without them is left alone).
 * RQ_BLAS_CORE=<name> in the environment forces that OpenBLAS core instead (e.g.
 * RQ_BLAS_CORE=Haswell keeps the AVX2 kernels). Call once at start-up, before any thread
 * uses BLAS. Returns the core name in use afterwards. */
#ifndef RQ_MODEL_BLAS_H
#define RQ_MODEL_BLAS_H

const char *rq_blas_select_kernels(void);

#endif
