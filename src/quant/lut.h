/* Non-uniform 2-bit quantizer (METHODS.md "Non-uniform 2-bit quantizer (LUT)"): each group
 * of g consecutive input columns of one output row has 4 levels v0 <= v1 <= v2 <= v3
 * (fp16-representable, as a file stores them); a weight gets the code of the nearest level,
 * with thresholds at the midpoints of the stored levels (a value exactly on a midpoint
 * takes the lower code); ŵ = v_code.
 *
 * Fitting: weighted Lloyd-Max (1-D k-means with 4 centroids) minimizing Σ imp_j (w_j − ŵ_j)²,
 * started from the uniform levels lo + k(hi − lo)/3 (lo = min w, hi = max w), for
 * cfg->iters iterations or until the assignment stops changing; a cell that receives no
 * weight keeps its level. The levels are then rounded through fp16. Lloyd keeps the
 * levels ordered; they are strictly increasing unless the group has fewer than 4 distinct
 * values (e.g. an all-zero group: all four levels 0).
 *
 * The LDP quantizer (learnable partitions) will produce the same stored form. */
#ifndef RQ_QUANT_LUT_H
#define RQ_QUANT_LUT_H

#include "quant/quantizer.h"

#include <stdint.h>

#define RQ_LUT_LEVELS 4
#define RQ_LUT_ITERS_DEFAULT 10

typedef struct rq_lut_cfg {
    int iters; /* Lloyd iterations; 0 keeps the uniform levels */
} rq_lut_cfg;

/* As an rq_group_quantizer: n_param = 4 (the levels), max_code = 3. cfg must outlive it. */
rq_group_quantizer rq_lut_quantizer(const rq_lut_cfg *cfg);

/* One group's levels from w [n] (imp [n] or NULL). */
void rq_lut_fit(const rq_lut_cfg *cfg, const double *w, const double *imp, int64_t n,
                float levels[RQ_LUT_LEVELS]);
/* Code of the nearest level (midpoint thresholds, ties to the lower code). */
int rq_lut_code(const float levels[RQ_LUT_LEVELS], double w);

/* RTN with per-group Lloyd-Max levels (rows in parallel); buffers owned by the caller:
 *   w [out, in], imp [in] or NULL, codes [out, in] in [0, 3],
 *   levels [out, in/group, 4], deq [out, in] or NULL. */
rq_status rq_lut_quantize(const rq_lut_cfg *cfg, const float *w, int64_t out, int64_t in,
                          int64_t group, const float *imp, uint8_t *codes, float *levels,
                          float *deq);

#endif
