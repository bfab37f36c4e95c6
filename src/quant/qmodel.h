/* Writing a quantized model file: the source GGUF's metadata (tokenizer, architecture)
 * plus rotquant.* keys (model/qinfo.h); the quantized linears as N.codes/N.params
 * (format/qpacked.h); norms as F32 (all ones after folding); the token embedding and
 * lm_head in `embd_type` (f32, f16 or q8_0). Written atomically. */
#ifndef RQ_QUANT_QMODEL_H
#define RQ_QUANT_QMODEL_H

#include "io/gguf.h"
#include "model/qinfo.h"
#include "quant/ptq.h"

/* info: wbits/group/quantizer/method/rotations/calib settings/embd_type and the run-time
 * quantizers are taken from it; bits_per_weight is computed here and written back into
 * *info. info->wbits == 16: res holds no layers (may be empty) and the model's linears
 * are written as F32 tensors under their usual names. */
rq_status rq_qmodel_write(const rq_model *m, const rq_gguf *src, const rq_ptq_result *res, rq_qinfo *info,
                          const char *path);

#endif
