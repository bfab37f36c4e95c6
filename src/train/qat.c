/* Quantization-aware training of the block linears (train/qat.h). */
#include "train/qat.h"

#include "base/pool.h"
#include "format/format.h"
#include "train/fakequant.h"

#include <stdio.h>
#include <string.h>

/* what each list entry is */
enum { SHARED = 0, LATENT = 1, CLIP_LO = 2, CLIP_HI = 3, QP = 4, QR = 5 };

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

/* a linear's training group (per channel: the whole row) */
static int64_t group_of(const rq_qat_cfg *c, int64_t n_in) { return c->group > 0 ? c->group : n_in; }

static const rq_qlinear *init_linear(const rq_ptq_result *r, const char *name) {
    for (int64_t i = 0; r && i < r->n_lin; i++)
        if (!strcmp(r->lin[i].name, name)) return &r->lin[i];
    return NULL;
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

/* entry names "<linear>.<suffix>" */
static rq_status add_entry(rq_qat *q, const char *base, const char *sfx, float *data, int64_t ne0, int64_t ne1,
                           bool trainable, int64_t src, int kind) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", base, sfx);
    if (strlen(name) >= sizeof q->list.p[0].name) return rq_errorf(RQ_EINVAL, "QAT: tensor name '%s' too long", name);
    int64_t j = q->list.count;
    RQ_TRY(rq_params_add(&q->list, name, data, ne0, ne1, RQ_PGROUP_QUANT, trainable));
    q->src[j] = src, q->kind[j] = kind;
    return RQ_OK;
}

/* fq2 start of one linear: latent and (q, r) per group, from the PTQ result or min/max */
static rq_status fq2_init_linear(const rq_qat_cfg *c, const rq_param *e, float *lat, float *qp, float *qr) {
    int64_t in = e->ne[0], out = e->ne[1], g = group_of(c, in), ng = in / g;
    int np = rq_fq2_n_param(c->kind), nc = rq_fq2_n_const(c->kind);
    const rq_qlinear *ql = init_linear(c->init, e->name);
    if (c->init && !ql) return rq_errorf(RQ_EINVAL, "QAT: the start point has no quantized '%s'", e->name);
    if (ql && (ql->n_in != in || ql->n_out != out))
        return rq_errorf(RQ_EINVAL, "QAT: the start point's '%s' is [%lld, %lld], the model's [%lld, %lld]", e->name,
                         (long long)ql->n_out, (long long)ql->n_in, (long long)out, (long long)in);
    /* per-channel training takes only the start's latents (the grids differ); SEQ takes a
     * group's grid only where it is SEQ's (uniform, zero point 1.5), else its own fit */
    bool grid = ql && c->group > 0;
    if (grid && ql->group != g)
        return rq_errorf(RQ_EINVAL, "QAT: the start point's '%s' has groups of %lld, training asks for %lld", e->name,
                         (long long)ql->group, (long long)g);
    memcpy(lat, ql && ql->latent ? ql->latent : e->data, (size_t)e->n * sizeof(float));
    /* the start grid's parameter kind: 4 values are LUT levels, 2 a scale and zero */
    int n_par = 0;
    if (grid) n_par = c->init_kind == RQ_QPARAM_LUT ? 4 : 2;
    for (int64_t r = 0; r < out; r++)
        for (int64_t k = 0; k < ng; k++) {
            float v[4], *vp = NULL;
            if (n_par) {
                const float *pp = ql->params + (r * ng + k) * n_par;
                if (n_par == 4) {
                    memcpy(v, pp, sizeof v);
                } else {
                    for (int i = 0; i < 4; i++) v[i] = pp[0] * ((float)i - pp[1]);
                }
                vp = c->kind != RQ_FQ2_SEQ || (n_par == 2 && pp[1] == 1.5f) ? v : NULL;
            }
            rq_fq2_init(c->kind, lat + r * in + k * g, g, c->init_logit, vp, qp + (r * ng + k) * np,
                        qr + (r * ng + k) * nc);
        }
    return RQ_OK;
}

rq_status rq_qat_new_cfg(rq_params *p, const rq_qat_cfg *cfg, rq_qat **out) {
    *out = NULL;
    if (!cfg->fq2 && (cfg->bits < 2 || cfg->bits > 8))
        return rq_errorf(RQ_EINVAL, "QAT: %d weight bits, expected 2..8", cfg->bits);
    if (cfg->fq2 && (cfg->kind < 0 || cfg->kind >= RQ_FQ2_COUNT)) return rq_errorf(RQ_EINVAL, "QAT: quantizer kind");
    if (cfg->group < 0 || (cfg->fq2 && cfg->group % 32))
        return rq_errorf(RQ_EINVAL, "QAT: group %lld (2-bit export: a multiple of 32, or 0 = per channel)",
                         (long long)cfg->group);
    if (!cfg->fq2 && cfg->group < 1) return rq_errorf(RQ_EINVAL, "QAT: group %lld", (long long)cfg->group);
    int np = cfg->fq2 ? rq_fq2_n_param(cfg->kind) : 1, nc = cfg->fq2 ? rq_fq2_n_const(cfg->kind) : 1;
    int64_t store_n = 0, n_entries = 0;
    for (int64_t i = 0; i < p->count; i++) {
        const rq_param *e = &p->p[i];
        if (!e->trainable) continue;
        n_entries++;
        if (!is_block_linear(e->name)) continue;
        int64_t g = group_of(cfg, e->ne[0]);
        if (e->ne[0] % g)
            return rq_errorf(RQ_EINVAL, "QAT: group %lld does not divide the %lld inputs of '%s'", (long long)g,
                             (long long)e->ne[0], e->name);
        store_n += e->n + (np + nc) * (e->n / g);
        n_entries += 2;
    }
    rq_qat *q = rq_calloc(sizeof *q);
    if (!q) return RQ_ENOMEM;
    q->cfg = *cfg;
    q->cfg.init = NULL; /* not kept */
    q->store = rq_alloc((store_n > 0 ? store_n : 1) * (int64_t)sizeof(float));
    q->src = rq_alloc((n_entries > 0 ? n_entries : 1) * (int64_t)sizeof(int64_t));
    q->kind = rq_alloc((n_entries > 0 ? n_entries : 1) * (int64_t)sizeof(int));
    rq_status s = q->store && q->src && q->kind ? RQ_OK : RQ_ENOMEM;
    float *at = q->store;
    for (int64_t i = 0; i < p->count && s == RQ_OK; i++) {
        const rq_param *e = &p->p[i];
        if (!e->trainable) continue;
        int64_t j = q->list.count;
        if (!is_block_linear(e->name)) {
            s = rq_params_add(&q->list, e->name, e->data, e->ne[0], e->ne[1], e->group, true);
            q->src[j] = i, q->kind[j] = SHARED;
            continue;
        }
        int64_t g = group_of(cfg, e->ne[0]), ng = e->n / g, gpr = e->ne[0] / g;
        float *lat = at, *qp = at + e->n, *qr = qp + np * ng;
        s = rq_params_add(&q->list, e->name, lat, e->ne[0], e->ne[1], RQ_PGROUP_LINEAR, true);
        if (s != RQ_OK) break;
        q->src[j] = i, q->kind[j] = LATENT;
        if (cfg->fq2) {
            s = fq2_init_linear(cfg, e, lat, qp, qr);
            if (s == RQ_OK) s = add_entry(q, e->name, "qp", qp, gpr * np, e->ne[1], true, i, QP);
            if (s == RQ_OK) s = add_entry(q, e->name, "qr", qr, gpr * nc, e->ne[1], false, i, QR);
        } else {
            memcpy(lat, e->data, (size_t)e->n * sizeof(float));
            for (int64_t k = 0; k < 2 * ng; k++) qp[k] = cfg->init_logit;
            s = add_entry(q, e->name, "clip_lo", qp, gpr, e->ne[1], true, i, CLIP_LO);
            if (s == RQ_OK) s = add_entry(q, e->name, "clip_hi", qp + ng, gpr, e->ne[1], true, i, CLIP_HI);
        }
        at += e->n + (np + nc) * ng;
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

rq_status rq_qat_new(rq_params *p, int bits, int64_t group, float init_logit, rq_qat **out) {
    rq_qat_cfg c = {.bits = bits, .group = group, .init_logit = init_logit};
    if (group < 1) return rq_errorf(RQ_EINVAL, "QAT: group %lld", (long long)group);
    return rq_qat_new_cfg(p, &c, out);
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
    const rq_qat_cfg *cf = &q->cfg;
    const rq_param *lat = &q->list.p[jb->j], *e1 = &q->list.p[jb->j + 1], *e2 = &q->list.p[jb->j + 2];
    const rq_param *dst = &jb->p->p[q->src[jb->j]];
    int64_t cols = lat->ne[0], gpr = cols / group_of(cf, cols); /* groups per row */
    int np = cf->fq2 ? rq_fq2_n_param(cf->kind) : 1, nc = cf->fq2 ? rq_fq2_n_const(cf->kind) : 1;
    for (int64_t r = b; r < e; r++) {
        const float *w = lat->data + r * cols;
        const float *dwq = jb->backward ? jb->g->p[q->src[jb->j]].data + r * cols : NULL;
        float *dw = jb->backward ? q->grads.p[jb->j].data + r * cols : NULL;
        if (cf->fq2) {
            const float *qp = e1->data + r * gpr * np, *qr = e2->data + r * gpr * nc;
            if (!jb->backward) {
                rq_fq2_forward(cf->kind, cols / gpr, w, cols, qp, qr, dst->data + r * cols, NULL);
                continue;
            }
            float *dq = q->grads.p[jb->j + 1].data + r * gpr * np;
            memset(dw, 0, (size_t)cols * sizeof(float));
            memset(dq, 0, (size_t)(gpr * np) * sizeof(float));
            rq_fq2_backward(cf->kind, cols / gpr, w, cols, qp, qr, dwq, dw, dq);
            continue;
        }
        const float *be = e1->data + r * gpr, *ga = e2->data + r * gpr;
        if (!jb->backward) {
            rq_fq_uniform_forward(cf->bits, cf->group, w, cols, be, ga, dst->data + r * cols);
            continue;
        }
        float *db = q->grads.p[jb->j + 1].data + r * gpr, *dg = q->grads.p[jb->j + 2].data + r * gpr;
        memset(dw, 0, (size_t)cols * sizeof(float));
        memset(db, 0, (size_t)gpr * sizeof(float));
        memset(dg, 0, (size_t)gpr * sizeof(float));
        rq_fq_uniform_backward(cf->bits, cf->group, w, cols, be, ga, dwq, dw, db, dg);
    }
}

static void each_linear(rq_qat *q, const rq_params *p, const rq_params *g, bool backward) {
    for (int64_t j = 0; j < q->list.count; j++) {
        if (q->kind[j] == LATENT) {
            if (!q->list.p[j].trainable) continue; /* a frozen block (rq_qat_only_block): ŵ unchanged */
            fq_job jb = {.q = q, .p = p, .g = g, .j = j, .backward = backward};
            rq_parallel_for(q->list.p[j].ne[1], 8, fq_rows, &jb);
        } else if (backward && q->kind[j] == SHARED) {
            memcpy(q->grads.p[j].data, g->p[q->src[j]].data, (size_t)q->list.p[j].n * sizeof(float));
        }
    }
}

void rq_qat_apply(rq_qat *q, rq_params *p) { each_linear(q, p, NULL, false); }

void rq_qat_grads(rq_qat *q, const rq_params *p, const rq_params *g) { each_linear(q, p, g, true); }

int64_t rq_qat_only_block(rq_qat *q, int64_t layer) {
    char pre[32];
    snprintf(pre, sizeof pre, "blk.%lld.", (long long)layer);
    size_t k = strlen(pre);
    for (int64_t j = 0; j < q->list.count; j++) {
        rq_param *e = &q->list.p[j];
        if (q->kind[j] == QR) e->trainable = false;
        else e->trainable = layer < 0 || (q->kind[j] != SHARED && !strncmp(e->name, pre, k));
    }
    return rq_params_n_trainable(&q->list);
}

rq_status rq_qat_export(const rq_qat *q, int64_t file_group, rq_ptq_result *res, rq_qparam_kind *kind) {
    memset(res, 0, sizeof *res);
    const rq_qat_cfg *cf = &q->cfg;
    if (!cf->fq2) return rq_errorf(RQ_EINVAL, "QAT export: only the 2-bit runtime-grid quantizers are exported packed");
    *kind = cf->kind == RQ_FQ2_LDP ? RQ_QPARAM_LUT : RQ_QPARAM_UNIFORM;
    int n_par = rq_qparam_count(*kind), np = rq_fq2_n_param(cf->kind), nc = rq_fq2_n_const(cf->kind);
    int64_t n_lin = 0;
    for (int64_t j = 0; j < q->list.count; j++) n_lin += q->kind[j] == LATENT;
    if (!(res->lin = rq_calloc((n_lin > 0 ? n_lin : 1) * (int64_t)sizeof(rq_qlinear)))) return RQ_ENOMEM;
    rq_status s = RQ_OK;
    for (int64_t j = 0; j < q->list.count && s == RQ_OK; j++) {
        if (q->kind[j] != LATENT) continue;
        const rq_param *lat = &q->list.p[j], *qp = &q->list.p[j + 1], *qr = &q->list.p[j + 2];
        int64_t in = lat->ne[0], out = lat->ne[1], g = group_of(cf, in), gf = file_group;
        if (gf < 1 || g % gf || in % gf) {
            s = rq_errorf(RQ_EINVAL, "QAT export: file groups of %lld do not split '%s' (groups of %lld)",
                          (long long)gf, lat->name, (long long)g);
            break;
        }
        rq_qlinear *ql = &res->lin[res->n_lin++];
        snprintf(ql->name, sizeof ql->name, "%s", lat->name);
        ql->n_out = out, ql->n_in = in, ql->group = gf;
        ql->codes = rq_alloc(out * in);
        ql->params = rq_alloc(out * (in / gf) * n_par * (int64_t)sizeof(float));
        float *wq = rq_alloc(in * (int64_t)sizeof(float));
        if (!ql->codes || !ql->params || !wq) s = RQ_ENOMEM;
        for (int64_t r = 0; r < out && s == RQ_OK; r++) {
            int64_t gpr = in / g;
            const float *qpr = qp->data + r * gpr * np, *qrr = qr->data + r * gpr * nc;
            rq_fq2_forward(cf->kind, g, lat->data + r * in, in, qpr, qrr, wq, ql->codes + r * in);
            for (int64_t k = 0; k < in / gf; k++) {
                int64_t tg = k * gf / g; /* the training group holding file group k */
                float v[4], dz[2];
                rq_fq2_levels(cf->kind, qpr + tg * np, qrr + tg * nc, v, dz);
                memcpy(ql->params + (r * (in / gf) + k) * n_par, n_par == 4 ? v : dz, (size_t)n_par * sizeof(float));
            }
        }
        rq_free(wq);
    }
    if (s != RQ_OK) rq_ptq_result_free(res);
    return s;
}
