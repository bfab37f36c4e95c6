/* Process-wide BLAS set-up for the float forward pass.
 *
 * rq_blas_select_kernels: OpenBLAS 0.3.21 (Debian 12) does not know AMD Zen 4/5; this
 * environment pins it to its AVX2 kernels (OPENBLAS_CORETYPE=Haswell), although the CPU
 * has AVX-512 (Zen 5: full-width), and OpenBLAS's SkylakeX SGEMM is ~1.6x faster per
 * core here (bench/bench_model). The pin is there because older OpenBLAS builds compute
 * wrong results or crash on some CPUs, so it is only overridden on request:
 * RQ_BLAS_CORE=<name> (e.g. SKYLAKEX) re-runs OpenBLAS's dynamic core selection with
 * OPENBLAS_CORETYPE=<name> through its exported gotoblas_dynamic_quit/init (weak
 * symbols: a BLAS without them is left alone). Benchmarks may set it; tests and CI do
 * not. Call once at start-up, before any thread uses BLAS. Returns the core name in use
 * afterwards. */
#ifndef RQ_MODEL_BLAS_H
#define RQ_MODEL_BLAS_H

const char *rq_blas_select_kernels(void);

#endif
