/* Quantization-aware training of the block linears (train/qat.h). */
#include "train/qat.h"

#include "base/pool.h"
#include "train/fakequant.h"

#include <stdio.h>
#include <string.h>

enum { SHARED = 0, LATENT = 1, CLIP_LO = 2, CLIP_HI = 3 };

static bool is_block_linear(const char *name) {
    static const char *sfx[] = {".attn_q.weight", ".attn_k.weight", ".attn_v.weight", ".attn_output.weight",
                                ".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight"};
    if (strncmp(name, "blk.", 4)) return false;
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        size_t k = strlen(sfx[i]);
        if (n > k && !strcmp(name + n - k, sfx[i])) return true;
    }
    return false;
}

void rq_qat_free(rq_qat *q) {
    if (!q) return;
    rq_params_free(&q->list);
    rq_params_free(&q->grads);
    rq_free(q->src);
    rq_free(q->kind);
    rq_free(q->store);
    rq_free(q);
}

rq_status rq_qat_new(rq_params *p, int bits, int64_t group, float init_logit, rq_qat **out) {
    *out = NULL;
    if (bits < 2 || bits > 8) return rq_errorf(RQ_EINVAL, "QAT: %d weight bits, expected 2..8", bits);
    int64_t store_n = 0, n_entries = 0;
    for (int64_t i = 0; i < p->count; i++) {
        const rq_param *e = &p->p[i];
        if (!e->trainable) continue;
        n_entries++;
        if (!is_block_linear(e->name)) continue;
        if (group < 1 || e->ne[0] % group)
            return rq_errorf(RQ_EINVAL, "QAT: group %lld does not divide the %lld inputs of '%s'", (long long)group,
                             (long long)e->ne[0], e->name);
        store_n += e->n + 2 * (e->n / group);
        n_entries += 2;
    }
    rq_qat *q = rq_calloc(sizeof *q);
    if (!q) return RQ_ENOMEM;
    q->bits = bits, q->group = group;
    q->store = rq_alloc((store_n > 0 ? store_n : 1) * (int64_t)sizeof(float));
    q->src = rq_alloc((n_entries > 0 ? n_entries : 1) * (int64_t)sizeof(int64_t));
    q->kind = rq_alloc((n_entries > 0 ? n_entries : 1) * (int64_t)sizeof(int));
    rq_status s = q->store && q->src && q->kind ? RQ_OK : RQ_ENOMEM;
    float *at = q->store;
    char name[96];
    for (int64_t i = 0; i < p->count && s == RQ_OK; i++) {
        const rq_param *e = &p->p[i];
        if (!e->trainable) continue;
        int64_t j = q->list.count;
        if (!is_block_linear(e->name)) {
            s = rq_params_add(&q->list, e->name, e->data, e->ne[0], e->ne[1], e->group, true);
            q->src[j] = i, q->kind[j] = SHARED;
            continue;
        }
        memcpy(at, e->data, (size_t)e->n * sizeof(float));
        s = rq_params_add(&q->list, e->name, at, e->ne[0], e->ne[1], RQ_PGROUP_LINEAR, true);
        q->src[j] = i, q->kind[j] = LATENT;
        at += e->n;
        for (int h = 0; h < 2 && s == RQ_OK; h++) {
            int64_t ng = e->n / group;
            for (int64_t k = 0; k < ng; k++) at[k] = init_logit;
            snprintf(name, sizeof name, "%s.%s", e->name, h ? "clip_hi" : "clip_lo");
            if (strlen(name) >= sizeof q->list.p[0].name) {
                s = rq_errorf(RQ_EINVAL, "QAT: tensor name '%s' too long", name);
                break;
            }
            s = rq_params_add(&q->list, name, at, e->ne[0] / group, e->ne[1], RQ_PGROUP_QUANT, true);
            q->src[j + 1 + h] = i, q->kind[j + 1 + h] = h ? CLIP_HI : CLIP_LO;
            at += ng;
        }
    }
    if (s == RQ_OK) s = rq_params_mirror(&q->list, &q->grads);
    if (s != RQ_OK) {
        rq_qat_free(q);
        return s;
    }
    rq_qat_apply(q, p);
    *out = q;
    return RQ_OK;
}

/* rows of one linear per work item */
typedef struct {
    rq_qat *q;
    const rq_params *p, *g;
    int64_t j; /* the latent's index in list */
    bool backward;
} fq_job;

static void fq_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const fq_job *jb = ctx;
    rq_qat *q = jb->q;
    const rq_param *lat = &q->list.p[jb->j], *lo = &q->list.p[jb->j + 1], *hi = &q->list.p[jb->j + 2];
    const rq_param *dst = &jb->p->p[q->src[jb->j]];
    int64_t cols = lat->ne[0], gpr = cols / q->group; /* groups per row */
    for (int64_t r = b; r < e; r++) {
        const float *w = lat->data + r * cols, *be = lo->data + r * gpr, *ga = hi->data + r * gpr;
        if (!jb->backward) {
            rq_fq_uniform_forward(q->bits, q->group, w, cols, be, ga, dst->data + r * cols);
            continue;
        }
        float *dw = q->grads.p[jb->j].data + r * cols;
        float *db = q->grads.p[jb->j + 1].data + r * gpr, *dg = q->grads.p[jb->j + 2].data + r * gpr;
        memset(dw, 0, (size_t)cols * sizeof(float));
        memset(db, 0, (size_t)gpr * sizeof(float));
        memset(dg, 0, (size_t)gpr * sizeof(float));
        rq_fq_uniform_backward(q->bits, q->group, w, cols, be, ga, jb->g->p[q->src[jb->j]].data + r * cols, dw, db, dg);
    }
}

static void each_linear(rq_qat *q, const rq_params *p, const rq_params *g, bool backward) {
    for (int64_t j = 0; j < q->list.count; j++) {
        if (q->kind[j] == LATENT) {
            fq_job jb = {.q = q, .p = p, .g = g, .j = j, .backward = backward};
            rq_parallel_for(q->list.p[j].ne[1], 8, fq_rows, &jb);
        } else if (backward && q->kind[j] == SHARED) {
            memcpy(q->grads.p[j].data, g->p[q->src[j]].data, (size_t)q->list.p[j].n * sizeof(float));
        }
    }
}

void rq_qat_apply(rq_qat *q, rq_params *p) { each_linear(q, p, NULL, false); }

void rq_qat_grads(rq_qat *q, const rq_params *p, const rq_params *g) { each_linear(q, p, g, true); }
