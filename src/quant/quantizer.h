/* The per-group scalar weight quantizer that RTN and GPTQ both drive.
 *
 * A weight matrix W [out, in] is cut into groups of g consecutive input columns of one
 * output row (g divides in; g = in is per-channel). Each (row, group) has n_param float
 * parameters (uniform: scale, zero point; 4-level LUT: v0..v3), and each weight gets an
 * integer code in [0, max_code] and a dequantized value that depends only on its code and
 * its group's parameters. Parameters are always values a file can store exactly (scales
 * and levels are fp16-representable, zero points are integers), so what we compute is what
 * a reader will dequantize.
 *
 * GPTQ needs only two operations from a quantizer: fit a group's parameters from the
 * group's current values, and quantize one value against fitted parameters. Values are
 * passed as double because GPTQ's error-feedback solve runs in float64 (see gptq.h).
 *
 * Implementations: uniform.h (asymmetric / symmetric, b bits, optional clip search) and
 * lut.h (4 levels from weighted Lloyd-Max). */
#ifndef RQ_QUANT_QUANTIZER_H
#define RQ_QUANT_QUANTIZER_H

#include "base/status.h"

#include <stdint.h>

#define RQ_QUANT_MAX_PARAM 8 /* largest n_param of any quantizer */

typedef struct rq_group_quantizer rq_group_quantizer;
struct rq_group_quantizer {
    const char *name; /* "uniform", "lut" */
    int n_param;      /* floats per (row, group), <= RQ_QUANT_MAX_PARAM */
    int max_code;     /* codes lie in [0, max_code], max_code <= 255 */
    /* Fit one group's parameters from its values w [n]; imp [n] are non-negative
     * per-value importances for a weighted error (NULL: all 1). Writes param [n_param]. */
    void (*fit)(const rq_group_quantizer *q, const double *w, const double *imp, int64_t n,
                float *param);
    /* Quantize one value: returns its code and writes the dequantized value to *wq. */
    int (*quant)(const rq_group_quantizer *q, const float *param, double w, double *wq);
    const void *cfg; /* the quantizer's own settings; owned by the caller, must outlive q */
    int64_t span;    /* 0 or 1: fit sees one group; k > 1: fit sees k consecutive groups at once
                      * (n = k·g values, k parameter sets written), e.g. a K-quant super-block
                      * whose sub-blocks share a scale (quant/ggquant.h); k·g must divide the
                      * row, and with GPTQ's act-order the groups must be static */
};

/* Groups per fit (q->span, at least 1). */
static inline int64_t rq_quantizer_span(const rq_group_quantizer *q) { return q->span > 1 ? q->span : 1; }

/* Round-to-nearest (RTN) over a whole matrix, rows in parallel on the pool (each fit over
 * span·group columns, span = rq_quantizer_span(q), which must divide in).
 *   w      [out, in]            weights (read only)
 *   imp    [in] or NULL         per-column importance passed to fit (e.g. diag(H))
 *   codes  [out, in]            written
 *   params [out, in/group, n_param] written
 *   deq    [out, in] or NULL    dequantized weights, written
 * Returns RQ_EINVAL (with a message) if the shape or group size is invalid. All buffers
 * are owned by the caller. */
rq_status rq_quant_rtn(const rq_group_quantizer *q, const float *w, int64_t out, int64_t in,
                       int64_t group, const float *imp, uint8_t *codes, float *params,
                       float *deq);

/* Round a float to the nearest fp16 value (ties to even) and back; overflow gives ±inf,
 * NaN stays NaN. A local helper so that quant/ does not depend on format/ (which has
 * rq_fp32_to_fp16 / rq_fp16_to_fp32); both must round the same way (IEEE RNE). */
float rq_quant_round_fp16(float x);

#endif
