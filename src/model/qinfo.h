/* The rotquant.* metadata of a quantized model file: how its linear layers were
 * quantized, which rotations were folded into it, and the run-time quantizers and online
 * rotations the loaded model applies (activations, KV cache, R3, R4). Written by
 * quant/qmodel.c, read by the model loader (which dequantizes the N.codes/N.params
 * tensors of format/qpacked.h and sets rq_model.online) and shown by `rotquant info`.
 * Readers check the format version.
 *
 * Versions: 1 = weights only (W2/3/4/8, R1, R2). 2 adds keys that change what the
 * loaded model computes, so that a version-1 reader refuses such files instead of
 * silently running them without:
 *   rotquant.abits (u32: 16 = float, 8, 4), rotquant.asym (bool), rotquant.aclip (f32)
 *   rotquant.kvbits (u32: 16 or 4), rotquant.kv_group (u32), rotquant.kv_clip (f32)
 *   rotquant.r3.* / rotquant.r4.* (like r1/r2; R4 is folded into ffn_down)
 *   rotquant.wbits = 16: the linears are plain float tensors (no quantized weights).
 * Version 3 adds the rotations of post-norm models and the per-linear input rotations
 * (METHODS.md "Rotations through post-norms"), which a version-2 reader would skip:
 *   rotquant.r1.online (bool): route (a), R1 is applied online to the post-norms' outputs
 *   rotquant.ri.* / rotquant.ro.*: route (b), online rotations of the q/k/v and gate/up
 *     inputs and of o's input (folded into those linears)
 * The writer uses the lowest version that holds what is in use. Absent keys read as
 * "off". */
#ifndef RQ_MODEL_QINFO_H
#define RQ_MODEL_QINFO_H

#include "base/status.h"
#include "format/qpacked.h"
#include "io/gguf.h"
#include "model/model.h"
#include "rotate/rotation.h"

#define RQ_QFORMAT_VERSION 3

typedef struct rq_qinfo {
    bool present;           /* the file has rotquant.format_version */
    uint32_t version;       /* 1, 2 or 3 */
    uint32_t wbits;         /* 2, 3, 4, 8; 16 = float linears (only A/KV quantizers, rotations) */
    uint32_t group;         /* weights per group along the input dimension */
    rq_qparam_kind quantizer;
    char method[16];        /* "rtn", "gptq" */
    rq_rotation r1, r2;     /* folded rotations (kind none when absent) */
    rq_rotation r3, r4;     /* online rotations (kind none when absent; R4 folded into ffn_down) */
    uint32_t abits;         /* 16 (float), 8 or 4: per-token quantizer of the linears' inputs (a
                             * setting, format/abits.h; 0 in a zero-initialized struct: 16) */
    bool asym;              /* activation quantizer asymmetric */
    float aclip;            /* activation clip ratio */
    uint32_t kvbits;        /* 16 (float) or 4 (likewise) */
    uint32_t kv_group;      /* KV channels per scale/zero */
    float kv_clip;          /* KV clip ratio */
    char embd_type[16];     /* storage of token_embd/output: "f16", "q8_0", "f32" */
    uint32_t calib_n, calib_len;
    char calib[64];         /* "generate", or the calibration file's base name */
    uint64_t seed;
    bool act_order;
    bool fit_importance;    /* GPTQ fitted the group quantizers with diag(H) weights */
    char weight_fit[16];    /* the group fit: "ls", "clip", "minmax", "lloyd" ("" = not recorded) */
    float damp;
    double bits_per_weight; /* over the quantized linear layers: codes + params */
    bool r1_online;         /* route (a): r1 also applied online after the post-norms (version 3) */
    rq_rotation ri, ro;     /* route (b): online input rotations of q/k/v, gate/up and of o (version 3) */
    /* a learned R1 (kind learned): where it came from, as rotquant.rotation_file /
     * rotation_init / rotation_compose ("" = absent); the writer also stores the folded
     * matrices as tensors rotquant.r1.matrix [n_embd, n_embd] and rotquant.r2.matrix
     * [n_r2, head_dim, head_dim] (rq_qmodel_write; for inspection and reuse, not read by the
     * loader: they are folded into the weights) */
    char rotation_file[64], rotation_init[64], rotation_compose[64];
    const float *r1_matrix, *r2_matrix; /* writer only; not owned */
    /* a learned Ri (route (b), ri.kind learned): its matrix, stored as the tensor
     * rotquant.ri.matrix [n_embd, n_embd], which the loader reads (it is applied online) */
    const float *ri_matrix;             /* writer only; not owned */
    int64_t n_r2;
} rq_qinfo;

/* Read rotquant.* keys; info->present = false (and RQ_OK) when the file has none.
 * RQ_EUNSUPPORTED for a newer format version, RQ_EFORMAT for bad values. */
rq_status rq_qinfo_read(const rq_gguf *g, rq_qinfo *info);
/* Check info against the model it describes, once the linears are loaded: the rotations'
 * sizes, wbits against which linears are quantized, and bits_per_weight against the
 * q_bytes of codes and parameters over the q_weights weights of the quantized linears.
 * (Each layer's group is checked against rotquant.group by rq_qinfo_linear_tensors.)
 * RQ_EFORMAT names the key. */
rq_status rq_qinfo_check_model(const rq_gguf *g, const rq_qinfo *info, const rq_model_config *c, int64_t q_bytes,
                               int64_t q_weights);
/* Write the keys of info into a writer. */
void rq_qinfo_write(const rq_qinfo *info, rq_gguf_writer *w);
/* One line: "W2 g64 gptq uniform, A4 asym clip 0.90, KV4 asym g64 clip 1.00, R1 gsr(n=576,
 * block=64), R2 none, R3 ..., R4 ..., 2.250 bits/weight ...". */
const char *rq_qinfo_describe(const rq_qinfo *info, char *buf, size_t n);
/* Short name of the configuration: "W2A4KV4", "W16A16KV4" (W16 without metadata). */
const char *rq_qinfo_short(const rq_qinfo *info, char *buf, size_t n);
/* The run-time part of info as a model's online configuration. */
void rq_qinfo_online_cfg(const rq_qinfo *info, rq_online_cfg *cfg);
/* The same, complete for a file whose Ri is learned: its matrix read from the tensor
 * rotquant.ri.matrix (F32 [n, n], n = info->ri.n, finite) into *ri_buf (allocated, the
 * caller frees; NULL otherwise) and cfg->ri_matrix. RQ_EFORMAT naming the file when it is
 * missing or malformed. */
rq_status rq_qinfo_online_cfg_file(const rq_gguf *g, const rq_qinfo *info, rq_online_cfg *cfg, float **ri_buf);
/* Read the file's rotquant.* keys and set the model's quantizers and online rotations
 * (rq_model_set_online); RQ_OK and nothing set for a file without them. Errors name the
 * file. */
rq_status rq_qinfo_apply_online(const rq_gguf *g, rq_model *m);

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
