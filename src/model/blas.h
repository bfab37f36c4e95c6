/* Process-wide BLAS set-up for the float forward pass.
 *
 * rq_blas_select_kernels chooses OpenBLAS's kernels through its exported
 * gotoblas_dynamic_quit/init (weak symbols: a BLAS without them is left alone):
 *   - RQ_BLAS_CORE=<name> (e.g. SKYLAKEX, HASWELL): those kernels (OPENBLAS_CORETYPE=<name>);
 *     RQ_BLAS_CORE=default: whatever OpenBLAS chose itself.
 *   - otherwise a pin in the environment (OPENBLAS_CORETYPE, set on CPUs where older
 *     OpenBLAS builds compute wrong results or crash; e.g. Haswell on AMD Zen 4/5, which
 *     OpenBLAS 0.3.21 does not know) is kept;
 *   - otherwise, when OpenBLAS fell back to kernels without AVX2 (0.3.21 takes Intel
 *     CPUs newer than it, e.g. Sapphire Rapids, for a Prescott: SSE3), the kernels the CPU
 *     runs: SKYLAKEX with AVX-512, HASWELL with AVX2. Measured on a 2-core Intel Xeon with
 *     AVX-512: float forward 10x faster (ppl, 2 windows of 2048: 100.6 s → 10.7 s, equal
 *     PPL).
 * Call once at start-up, before any thread uses BLAS. Returns the core name in use
 * afterwards. */
#ifndef RQ_MODEL_BLAS_H
#define RQ_MODEL_BLAS_H

const char *rq_blas_select_kernels(void);

#endif
