/* Exact sums of float64 values kept as pairs (hi, lo) whose value is hi + lo: each
 * addition puts the rounding error of hi's sum (TwoSum, Knuth: exact in IEEE binary64
 * round-to-nearest, no FMA involved) into lo. Every error term is a multiple of u, the
 * unit in the last place of the finest addend, so lo's own sum is exact while
 * |lo| < 2^53·u; with N additions |lo| <= N·2^-53·max|hi|, so the pair holds the exact sum
 * while max|partial sum| / u < 2^106 / N — for float32 addends (u >= 2^-23 × the smallest
 * non-zero addend / 2) and N <= 2^20, while the sums stay below 2^62 times the smallest
 * non-zero addend. Then rq_exact_value, one rounding of the exact sum, is the same whatever
 * the order of the additions or how they were split into partial pairs: the property that
 * makes the GPTQ Hessians of an MPI run bit-identical to those of one process. */
#ifndef RQ_BASE_EXACT_SUM_H
#define RQ_BASE_EXACT_SUM_H

/* (*hi, *lo) += x */
static inline void rq_exact_add(double *hi, double *lo, double x) {
    double s = *hi + x, bv = s - *hi;
    double e = (*hi - (s - bv)) + (x - bv);
    *hi = s;
    *lo += e;
}

/* (*hi, *lo) += (hi2, lo2) */
static inline void rq_exact_add_pair(double *hi, double *lo, double hi2, double lo2) {
    rq_exact_add(hi, lo, hi2);
    *lo += lo2;
}

/* the sum, rounded once */
static inline double rq_exact_value(double hi, double lo) { return hi + lo; }

#endif
