/* The rotquant.* metadata of a quantized model file: how its linear layers were
 * quantized and which rotations were folded into it. Written by quant/qmodel.c, read
 * by the model loader (which dequantizes the N.codes/N.params tensors of
 * format/qpacked.h) and shown by `rotquant info`. Readers check the format version. */
#ifndef RQ_MODEL_QINFO_H
#define RQ_MODEL_QINFO_H

#include "base/status.h"
#include "format/qpacked.h"
#include "io/gguf.h"
#include "rotate/rotation.h"

#define RQ_QFORMAT_VERSION 1

typedef struct rq_qinfo {
    bool present;           /* the file has rotquant.format_version */
    uint32_t version;
    uint32_t wbits;         /* 2, 3, 4, 8 */
    uint32_t group;         /* weights per group along the input dimension */
    rq_qparam_kind quantizer;
    char method[16];        /* "rtn", "gptq" */
    rq_rotation r1, r2;     /* folded rotations (kind none when absent) */
    char embd_type[16];     /* storage of token_embd/output: "f16", "q8_0", "f32" */
    uint32_t calib_n, calib_len;
    char calib[64];         /* "generate", or the calibration file's base name */
    uint64_t seed;
    bool act_order;
    float damp;
    double bits_per_weight; /* over the quantized linear layers: codes + params */
} rq_qinfo;

/* Read rotquant.* keys; info->present = false (and RQ_OK) when the file has none.
 * RQ_EUNSUPPORTED for a newer format version, RQ_EFORMAT for bad values. */
rq_status rq_qinfo_read(const rq_gguf *g, rq_qinfo *info);
/* Write the keys of info into a writer. */
void rq_qinfo_write(const rq_qinfo *info, rq_gguf_writer *w);
/* One line: "W2 g64 gptq uniform, R1 gsr(n=576, block=64), R2 none, 2.250 bpw". */
const char *rq_qinfo_describe(const rq_qinfo *info, char *buf, size_t n);

/* The tensors of the quantized linear `name` ([n_out, n_in]): N.codes, N.params, checked
 * against the shape and the metadata, and the layer's group size (n_in / groups of
 * N.params). RQ_EFORMAT names the tensor on any mismatch. */
rq_status rq_qinfo_linear_tensors(const rq_gguf *g, const rq_qinfo *info, const char *name, int64_t n_out,
                                  int64_t n_in, const rq_gguf_tensor **codes, const rq_gguf_tensor **params,
                                  int64_t *group);
/* Dequantize the quantized linear `name` ([n_out, n_in]) of a rotquant file into a new
 * float buffer (*dst, rq_free). RQ_EFORMAT names the tensor on any size mismatch. */
rq_status rq_qinfo_load_linear(const rq_gguf *g, const rq_qinfo *info, const char *name, int64_t n_out,
                               int64_t n_in, float **dst);

#endif
