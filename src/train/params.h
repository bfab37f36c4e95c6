/* The model's parameters as one flat list (llm.c's pattern): name, pointer, shape, group,
 * trainable. Gradients and optimizer state mirror the list: the same entries in the same
 * order, each pointing into one contiguous buffer at the entry's offset. */
#ifndef RQ_TRAIN_PARAMS_H
#define RQ_TRAIN_PARAMS_H

#include "base/status.h"
#include "model/model.h"

#include <stdbool.h>
#include <stdint.h>

/* Parameter groups: each can have its own learning rate and weight decay (train/adamw.h).
 * Enums only grow at the end. */
typedef enum rq_param_group {
    RQ_PGROUP_LINEAR = 0, /* the block linears (q, k, v, o, gate, up, down) and an untied lm_head */
    RQ_PGROUP_NORM = 1,   /* RMSNorm scales (attn, ffn, q/k, post, output) */
    RQ_PGROUP_EMBED = 2,  /* the token embedding (the lm_head too when tied) */
    RQ_PGROUP_QUANT = 3,  /* quantizer parameters (QAT) */
    RQ_PGROUP_ROT = 4,    /* an online rotation's matrix (rotlearn: a learned Ri, route (b)) */
    RQ_PGROUP_COUNT
} rq_param_group;

typedef struct rq_param {
    char name[64];   /* the tensor's GGUF name ("blk.3.attn_q.weight") */
    float *data;     /* [ne[1], ne[0]] row-major (not owned) */
    int64_t ne[2];   /* GGUF order: ne[0] = columns (the fastest), ne[1] = rows (1 for vectors) */
    int64_t n;       /* ne[0]·ne[1] */
    int64_t offset;  /* of this entry in a flat buffer of n_total floats */
    rq_param_group group;
    bool trainable;
} rq_param;

typedef struct rq_params {
    rq_param *p;     /* [count] */
    int64_t count;
    int64_t n_total; /* Σ n */
    float *buf;      /* [n_total] owned by a mirror (rq_params_mirror); NULL for the model's list */
} rq_params;

/* The float model's parameters, in a fixed order (token_embd, per layer: attn_norm, q, k, v,
 * [q_norm, k_norm], o, [post_attention_norm], ffn_norm, gate, up, down, [post_ffw_norm];
 * output_norm, [output]); all trainable. A tied lm_head is the embedding's entry (listed
 * once). Errors (RQ_EUNSUPPORTED): a linear or the embedding not held as float32 (a
 * quantized file loaded on the fast path). *out is the caller's (rq_params_free). */
rq_status rq_params_build(rq_model *m, rq_params *out);
/* The same entries with data pointing into a new zeroed buffer of n_total floats (owned by
 * *out): gradients, optimizer moments. */
rq_status rq_params_mirror(const rq_params *src, rq_params *out);
void rq_params_free(rq_params *p);
/* Index of the entry whose data is `data` (−1 if none). */
int64_t rq_params_find(const rq_params *p, const float *data);
/* Index of the entry named `name` (−1 if none). */
int64_t rq_params_find_name(const rq_params *p, const char *name);
/* Append an entry (QAT adds its quantizer parameters); data is not owned. */
rq_status rq_params_add(rq_params *p, const char *name, float *data, int64_t ne0, int64_t ne1, rq_param_group group,
                        bool trainable);
/* Count of trainable elements. */
int64_t rq_params_n_trainable(const rq_params *p);

#endif
