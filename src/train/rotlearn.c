/* Learned rotations: the reparameterization, its gradient and the run (train/rotlearn.h). */
#include "train/rotlearn.h"

#include "base/hash.h"
#include "base/mpi.h"
#include "base/rng.h"
#include "base/timer.h"
#include "format/abits.h"
#include "io/gguf.h"
#include "io/gguf_hash.h"
#include "model/fold.h"
#include "model/qinfo.h"
#include "quant/calib.h"
#include "quant/pipeline.h"
#include "quant/uniform.h"
#include "text/tokenizer.h"
#include "train/dp.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static bool rotated(const rq_param *e) { return e->group == RQ_PGROUP_LINEAR || e->group == RQ_PGROUP_EMBED; }

/* the block suffix of a tensor name ("attn_q.weight"), "" outside the blocks; *layer its layer */
static const char *block_suffix(const char *name, long long *layer, char sfx[48]) {
    *layer = -1, sfx[0] = 0;
    if (!strncmp(name, "blk.", 4) && sscanf(name, "blk.%lld.%47s", layer, sfx) != 2) sfx[0] = 0;
    return sfx;
}

/* route (b): the five linears that read a normed input rotated by Ri */
static bool ri_reader(const char *sfx) {
    return !strcmp(sfx, "attn_q.weight") || !strcmp(sfx, "attn_k.weight") || !strcmp(sfx, "attn_v.weight") ||
           !strcmp(sfx, "ffn_gate.weight") || !strcmp(sfx, "ffn_up.weight");
}

rq_status rq_rotlearn_new(rq_model *m, const rq_rotlearn_cfg *cfg, rq_rotlearn **out) {
    *out = NULL;
    const rq_model_config *c = &m->cfg;
    int64_t n = c->n_embd, hd = c->head_dim, nl = c->n_layer;
    if (c->post_norms && !cfg->linear)
        return rq_errorf(RQ_EUNSUPPORTED, "rotlearn: R1 cannot be folded into a model with post-norms (gemma3); "
                         "learn the per-linear input rotation Ri instead (route (b))");
    const rq_rot_plan *pi = m->online.pi;
    if (cfg->linear && (!pi || !rq_rot_plan_q(pi) || cfg->r2))
        return rq_errorf(RQ_EINVAL, "rotlearn: route (b) learns the model's online Ri: the model must apply a learned "
                         "Ri, and R2 is not learned there");
    if (!(cfg->wbits == 16 || (cfg->wbits >= 2 && cfg->wbits <= 8)))
        return rq_errorf(RQ_EINVAL, "rotlearn: --wbits %d (2..8, or 16 for float weights)", cfg->wbits);
    if (cfg->block < 0 || (cfg->block && n % cfg->block))
        return rq_errorf(RQ_EINVAL, "rotlearn: --block %lld does not divide the hidden size %lld",
                         (long long)cfg->block, (long long)n);
    if (cfg->wbits != 16) {
        int64_t ins[3] = {n, c->n_head * hd, c->n_ff};
        for (int i = 0; i < 3; i++)
            if (cfg->group < 1 || ins[i] % cfg->group)
                return rq_errorf(RQ_EINVAL, "rotlearn: --group %lld does not divide a linear's input width %lld",
                                 (long long)cfg->group, (long long)ins[i]);
    }
    rq_rotlearn *L = rq_calloc(sizeof *L);
    if (!L) return RQ_ENOMEM;
    L->cfg = *cfg, L->m = m, L->n = n, L->hd = hd, L->nl = nl;
    if (!cfg->linear) rq_fold_norms(m);
    rq_status s = rq_params_build(m, &L->p);
    if (s == RQ_OK && cfg->linear)
        s = rq_params_add(&L->p, "rotquant.ri.matrix", (float *)rq_rot_plan_q(pi), n, n, RQ_PGROUP_ROT, true);
    if (s == RQ_OK && !(L->base = rq_calloc(L->p.count * (int64_t)sizeof *L->base))) s = RQ_ENOMEM;
    for (int64_t i = 0; s == RQ_OK && i < L->p.count; i++) {
        rq_param *e = &L->p.p[i];
        long long l;
        char sfx[48];
        if (e->group == RQ_PGROUP_ROT) continue; /* trainable: its gradient is G_Q */
        /* route (b): every weight restored before it is quantized, the readers' get gradients */
        e->trainable = cfg->linear ? ri_reader(block_suffix(e->name, &l, sfx)) : rotated(e);
        if (!rotated(e) || (cfg->linear && l < 0)) continue; /* route (b) leaves the embedding/lm_head as they are */
        if (!(L->base[i] = rq_alloc(e->n * (int64_t)sizeof(float)))) s = RQ_ENOMEM;
        else memcpy(L->base[i], e->data, (size_t)e->n * sizeof(float));
    }
    if (s == RQ_OK && (!(L->R1 = rq_calloc(n * n * (int64_t)sizeof(double))) ||
                       !(L->r1f = rq_alloc(n * n * (int64_t)sizeof(float)))))
        s = RQ_ENOMEM;
    if (s == RQ_OK && cfg->r2 &&
        (!(L->R2 = rq_calloc(nl * hd * hd * (int64_t)sizeof(double))) ||
         !(L->r2f = rq_alloc(nl * hd * hd * (int64_t)sizeof(float)))))
        s = RQ_ENOMEM;
    if (s != RQ_OK) {
        rq_rotlearn_free(L);
        return s;
    }
    rq_rotlearn_set(L, NULL, NULL);
    *out = L;
    return RQ_OK;
}

void rq_rotlearn_free(rq_rotlearn *L) {
    if (!L) return;
    for (int64_t i = 0; L->base && i < L->p.count; i++) rq_free(L->base[i]);
    rq_free(L->base);
    rq_params_free(&L->p);
    rq_free(L->R1), rq_free(L->R2), rq_free(L->r1f), rq_free(L->r2f);
    rq_free(L);
}

/* R [n, n] ← the nearest orthogonal matrix (polar factor) of a nearly orthogonal R, by the
 * Newton-Schulz iteration R ← R·(3I − RᵀR)/2: a float32-rounded rotation (‖RᵀR − I‖ ~1e-7)
 * becomes orthogonal to float64 rounding in two or three steps; a block-diagonal R stays so */
static void reorthogonalize(double *R, int64_t n) {
    double *P = rq_xalloc(n * n * (int64_t)sizeof(double)), *Y = rq_xalloc(n * n * (int64_t)sizeof(double));
    for (int it = 0; it < 4; it++) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n, (int)n, -0.5, R, (int)n, R, (int)n, 0.0, P,
                    (int)n);
        for (int64_t i = 0; i < n; i++) P[i * n + i] += 1.5;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, R, (int)n, P, (int)n, 0.0, Y,
                    (int)n);
        memcpy(R, Y, (size_t)(n * n) * sizeof(double));
    }
    rq_free(P), rq_free(Y);
}

void rq_rotlearn_set(rq_rotlearn *L, const float *r1, const float *r2) {
    int64_t n = L->n, hd = L->hd, b = L->cfg.block ? L->cfg.block : n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            L->R1[i * n + j] = i / b != j / b ? 0.0 : r1 ? r1[i * n + j] : (double)(i == j);
    if (r1) reorthogonalize(L->R1, n);
    if (L->R2)
        for (int64_t l = 0; l < L->nl; l++) {
            for (int64_t i = 0; i < hd * hd; i++) L->R2[l * hd * hd + i] = r2 ? r2[i] : (double)(i / hd == i % hd);
            if (r2) reorthogonalize(L->R2 + l * hd * hd, hd);
        }
}

/* Ŵ = RTN(W) in place, W [rows, cols], groups of `group` along a row (quant/uniform.h,
 * asymmetric, clip 1: the grid `quantize --method rtn --fit minmax` stores) */
static void rtn_rows(float *w, int64_t n, int bits, int64_t group) {
    double gw[1024];
    RQ_ASSERT(group <= 1024);
    for (int64_t k = 0; k < n / group; k++) {
        float *x = w + k * group, s;
        int z;
        for (int64_t i = 0; i < group; i++) gw[i] = x[i];
        rq_uniform_params(bits, false, 1.0, gw, group, &s, &z);
        for (int64_t i = 0; i < group; i++) x[i] = s * (float)(rq_uniform_code(bits, s, z, gw[i]) - z);
    }
}

void rq_rotlearn_apply(rq_rotlearn *L) {
    for (int64_t i = 0; i < L->p.count; i++)
        if (L->base[i]) memcpy(L->p.p[i].data, L->base[i], (size_t)L->p.p[i].n * sizeof(float));
    int64_t n = L->n, hd = L->hd;
    for (int64_t i = 0; i < n * n; i++) L->r1f[i] = (float)L->R1[i];
    if (L->R2)
        for (int64_t i = 0; i < L->nl * hd * hd; i++) L->r2f[i] = (float)L->R2[i];
    if (L->cfg.linear) { /* W ← W·Ri for the readers, Ri online */
        for (int64_t i = 0; i < L->p.count; i++) {
            const rq_param *e = &L->p.p[i];
            long long l;
            char sfx[48];
            if (!L->base[i] || !ri_reader(block_suffix(e->name, &l, sfx))) continue;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)e->ne[1], (int)n, (int)n, 1.0f, L->base[i],
                        (int)n, L->r1f, (int)n, 0.0f, e->data, (int)n);
        }
        rq_rot_plan_set_q(L->m->online.pi, L->r1f);
    } else {
        RQ_ASSERT(rq_fold_model_dense(L->m, L->r1f, L->R2 ? L->r2f : NULL, L->nl) == RQ_OK);
    }
    if (L->cfg.wbits == 16) return;
    for (int64_t l = 0; l < L->nl; l++) {
        rq_layer *ly = &L->m->layers[l];
        rq_linear *ls[7] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (int i = 0; i < 7; i++) rtn_rows(ls[i]->w, ls[i]->n_out * ls[i]->n_in, L->cfg.wbits, L->cfg.group);
    }
}

/* D [n, n] += Aᵀ·B, A and B [rows, n] (lda = ldb = n) */
static void acc_atb(double *D, const float *A, const float *B, int64_t rows, int64_t n, float *tmp) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n, (int)rows, 1.0f, A, (int)n, B, (int)n, 0.0f,
                tmp, (int)n);
    for (int64_t i = 0; i < n * n; i++) D[i] += tmp[i];
}

/* D [n, n] += A·Bᵀ, A and B [n, cols] */
static void acc_abt(double *D, const float *A, const float *B, int64_t n, int64_t cols, float *tmp) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)cols, 1.0f, A, (int)cols, B, (int)cols,
                0.0f, tmp, (int)n);
    for (int64_t i = 0; i < n * n; i++) D[i] += tmp[i];
}

void rq_rotlearn_grad(const rq_rotlearn *L, const rq_params *g, double *dR1, double *dR2) {
    const rq_model_config *c = &L->m->cfg;
    int64_t n = L->n, hd = L->hd, qd = c->n_head * hd, kvd = c->n_head_kv * hd;
    memset(dR1, 0, (size_t)(n * n) * sizeof(double));
    if (dR2) memset(dR2, 0, (size_t)(L->nl * hd * hd) * sizeof(double));
    float *tmp = rq_xalloc(n * n * (int64_t)sizeof(float));
    float *X = rq_xalloc((qd > kvd ? qd : kvd) * n * (int64_t)sizeof(float)); /* a product of a weight */
    float *t2 = rq_xalloc(hd * hd * (int64_t)sizeof(float));
    const float *r1 = L->r1f;
    for (int64_t i = 0; i < L->p.count; i++) {
        const rq_param *e = &L->p.p[i];
        const float *W = L->base[i], *G = g->p[i].data;
        long long l;
        char sfx[48];
        block_suffix(e->name, &l, sfx);
        if (L->cfg.linear) { /* route (b): the readers' Wᵀ·G and the online matrix's own gradient */
            if (e->group == RQ_PGROUP_ROT)
                for (int64_t k = 0; k < n * n; k++) dR1[k] += G[k];
            else if (W && ri_reader(sfx))
                acc_atb(dR1, W, G, e->ne[1], n, tmp);
            continue;
        }
        if (!W) continue;
        int64_t rows = e->ne[1], cols = e->ne[0];
        const float *r2 = L->R2 && l >= 0 ? L->r2f + l * hd * hd : NULL;
        double *d2 = dR2 && l >= 0 ? dR2 + l * hd * hd : NULL;
        if (!strcmp(sfx, "attn_v.weight")) {
            /* W_eff = D_vᵀ·W·R1: dR1 += (D_vᵀ·W)ᵀ·G; dR2 += Σ_h (W·R1)_h·G_hᵀ */
            if (r2) {
                for (int64_t h = 0; h < c->n_head_kv; h++)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)hd, (int)n, (int)hd, 1.0f, r2, (int)hd,
                                W + h * hd * n, (int)n, 0.0f, X + h * hd * n, (int)n);
                acc_atb(dR1, X, G, kvd, n, tmp);
                if (d2)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)kvd, (int)n, (int)n, 1.0f, W, (int)n,
                                r1, (int)n, 0.0f, X, (int)n);
                for (int64_t h = 0; d2 && h < c->n_head_kv; h++) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)hd, (int)hd, (int)n, 1.0f, X + h * hd * n,
                                (int)n, G + h * hd * n, (int)n, 0.0f, t2, (int)hd);
                    for (int64_t j = 0; j < hd * hd; j++) d2[j] += t2[j];
                }
            } else {
                acc_atb(dR1, W, G, rows, n, tmp);
            }
        } else if (!strcmp(sfx, "attn_output.weight")) {
            /* W_eff = R1ᵀ·W·D_o: dR1 += (W·D_o)·Gᵀ; dR2 += Σ_h (R1ᵀ·W)_{:,h}ᵀ·G_{:,h} */
            if (r2) {
                for (int64_t h = 0; h < c->n_head; h++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)hd, (int)hd, 1.0f, W + h * hd,
                                (int)qd, r2, (int)hd, 0.0f, X + h * hd, (int)qd);
                acc_abt(dR1, X, G, n, qd, tmp);
                if (d2)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)qd, (int)n, 1.0f, r1, (int)n, W,
                                (int)qd, 0.0f, X, (int)qd);
                for (int64_t h = 0; d2 && h < c->n_head; h++) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)hd, (int)hd, (int)n, 1.0f, X + h * hd,
                                (int)qd, G + h * hd, (int)qd, 0.0f, t2, (int)hd);
                    for (int64_t j = 0; j < hd * hd; j++) d2[j] += t2[j];
                }
            } else {
                acc_abt(dR1, W, G, n, cols, tmp);
            }
        } else if (!strcmp(sfx, "ffn_down.weight")) {
            acc_abt(dR1, W, G, n, cols, tmp); /* W_eff = R1ᵀ·W */
        } else {
            RQ_ASSERT(cols == n);
            acc_atb(dR1, W, G, rows, n, tmp); /* readers, embedding, lm_head: W_eff = W·R1 */
        }
    }
    rq_free(tmp), rq_free(X), rq_free(t2);
    if (L->cfg.block) /* only the diagonal blocks are parameters */
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++)
                if (i / L->cfg.block != j / L->cfg.block) dR1[i * n + j] = 0;
}

/* the Cayley steps of R1 and every R2 from the gradient g of the weights last applied */
static rq_status cayley_update(rq_rotlearn *L, const rq_params *g, double lr, rq_rotlearn_step_info *info) {
    int64_t n = L->n, hd = L->hd;
    double *d1 = rq_alloc(n * n * (int64_t)sizeof(double));
    double *d2 = L->R2 ? rq_alloc(L->nl * hd * hd * (int64_t)sizeof(double)) : NULL;
    if (!d1 || (L->R2 && !d2)) {
        rq_free(d1), rq_free(d2);
        return RQ_ENOMEM;
    }
    rq_rotlearn_grad(L, g, d1, d2);
    rq_cayley_info ci;
    rq_status s = rq_cayley_step(L->R1, d1, n, L->cfg.block, lr, true, &ci);
    info->lr1 = ci.lr, info->a1 = ci.a_norm;
    for (int64_t l = 0; s == RQ_OK && d2 && l < L->nl; l++)
        s = rq_cayley_step(L->R2 + l * hd * hd, d2 + l * hd * hd, hd, 0, lr, true, NULL);
    rq_free(d1), rq_free(d2);
    if (s != RQ_OK) return s;
    info->orth1 = rq_orth_error(L->R1, n);
    for (int64_t l = 0; L->R2 && l < L->nl; l++) {
        double e = rq_orth_error(L->R2 + l * hd * hd, hd);
        info->orth2 = e > info->orth2 ? e : info->orth2;
    }
    return RQ_OK;
}

rq_status rq_rotlearn_step(rq_rotlearn *L, rq_train_ctx *c, rq_params *g, const int32_t *tokens, double lr,
                           rq_rotlearn_step_info *info) {
    memset(info, 0, sizeof *info);
    rq_rotlearn_apply(L);
    RQ_TRY(rq_train_forward(c, tokens));
    info->loss = rq_train_loss(c, tokens, NULL, 0);
    memset(g->buf, 0, (size_t)g->n_total * sizeof(float));
    rq_train_backward(c, tokens, c->st->logits, &L->p, g);
    return cayley_update(L, g, lr, info);
}

/* rq_rotlearn_step data-parallel (train/dp.h): c a context of one window, tokens [n_seq, T]
 * split by window over the ranks, the gradient their exact sum; collective */
static rq_status step_dp(rq_rotlearn *L, rq_train_ctx *c, rq_params *g, rq_dp_sum *acc, const int32_t *tokens,
                         int64_t n_seq, double lr, rq_rotlearn_step_info *info) {
    memset(info, 0, sizeof *info);
    rq_rotlearn_apply(L);
    RQ_TRY(rq_dp_grads(c, NULL, &L->p, g, acc, tokens, n_seq, 0, &info->loss));
    return cayley_update(L, g, lr, info);
}

/* ---- the run ------------------------------------------------------------------------------ */

rq_rotlearn_opts rq_rotlearn_opts_default(void) {
    return (rq_rotlearn_opts){.init = RQ_ROT_HADAMARD, .init2 = RQ_ROT_HADAMARD, .r2 = true, .rotate3 = -1,
                              .r1_route = RQ_R1_AUTO,
                              .rotate4 = -1, .wbits = 4, .group = 64, .abits = 16, .kvbits = 16, .aclip = 1.0f,
                              .steps = 100, .n_seq = 4, .T = 512, .lr = 0.02, .schedule = RQ_LR_COSINE, .gen_seqs = 64,
                              .gen_temp = 1.0f, .val_seqs = 4};
}

static bool blocked(rq_rot_kind k) { return k == RQ_ROT_GSR || k == RQ_ROT_GH; }

static rq_status check_opts(const rq_rotlearn_opts *o) {
    if (o->steps < 1 || o->n_seq < 1 || o->T < 2)
        return rq_errorf(RQ_EINVAL, "rotlearn: %lld steps of %lld windows of %lld tokens", (long long)o->steps,
                         (long long)o->n_seq, (long long)o->T);
    if (!(o->lr > 0)) return rq_errorf(RQ_EINVAL, "rotlearn: --lr must be > 0");
    if (!(o->wbits == 16 || (o->wbits >= 2 && o->wbits <= 8)))
        return rq_errorf(RQ_EINVAL, "rotlearn: --wbits %d (2..8, or 16 for float weights)", o->wbits);
    RQ_TRY(rq_abits_check(o->abits, "--abits"));
    RQ_TRY(rq_kvbits_check(o->kvbits, "--kvbits"));
    if (o->val_seqs < 0 || o->gen_seqs < 1) return rq_errorf(RQ_EINVAL, "rotlearn: --val-seqs / --gen-seqs");
    /* a block-diagonal learner starts from a block-diagonal rotation whose blocks fit in its own */
    if (o->block && !(o->init == RQ_ROT_NONE || (blocked(o->init) && o->init_block && o->block % o->init_block == 0) ||
                      (blocked(o->init) && !o->init_block)))
        return rq_errorf(RQ_EINVAL, "rotlearn: --block %lld learns a block-diagonal R1; start it from none, gsr or gh "
                         "with blocks dividing %lld (--init %s)", (long long)o->block, (long long)o->block,
                         rq_rot_kind_name(o->init));
    return RQ_OK;
}

/* the mean loss over the val windows [n_val, T] (whole batches of n_seq) of the model as
 * applied, split by window over the ranks; collective */
static rq_status val_loss(rq_train_ctx *c, const int32_t *val, int64_t n_val, int64_t n_seq, double *loss) {
    return rq_dp_loss(c, NULL, val, n_val / n_seq * n_seq, 0, loss);
}

rq_status rq_rotlearn_run(const char *in, const char *out, const rq_rotlearn_opts *o, rq_rotlearn_result *res) {
    memset(res, 0, sizeof *res);
    RQ_TRY(check_opts(o));
    double t_start = rq_time_now(), t0;
    rq_gguf *gf = NULL;
    rq_model *m = NULL;
    rq_tokenizer *tok = NULL;
    int32_t *win = NULL, *batch = NULL;
    rq_rotlearn *L = NULL;
    rq_train_ctx *c = NULL;
    rq_params g = {0};
    rq_dp_sum acc = {0};
    float *q1 = NULL, *q2 = NULL;
    rq_rot_learned out_rot = {0};
    rq_quant_plan plan = {0};
    rq_qinfo qi;
    rq_model_load_opts lo = {.ref_linear = true};
    rq_status s = rq_gguf_open(in, &gf);
    if (s == RQ_OK) s = rq_qinfo_read(gf, &qi);
    if (s == RQ_OK && qi.present) s = rq_errorf(RQ_EINVAL, "%s is already quantized by rotquant: give the float model", in);
    if (s == RQ_OK && rq_mpi_size() > 1) { /* data-parallel (train/dp.h): every rank the same model */
        char what[600];
        snprintf(what, sizeof what, "rotlearn: the model %s", in);
        s = rq_mpi_check_same(rq_gguf_hash(gf), what);
    }
    if (s == RQ_OK) s = rq_model_load_ex(gf, &lo, &m);
    if (s == RQ_OK && !o->ids) s = rq_tokenizer_load(gf, &tok);
    if (s != RQ_OK) goto done;
    const rq_model_config *mc = &m->cfg;
    /* as loaded (the fold below unties the lm_head): what quantize compares with */
    rq_model_config_describe(mc, out_rot.model, sizeof out_rot.model);
    if (o->T > mc->n_ctx_train && mc->n_ctx_train > 0) {
        s = rq_errorf(RQ_EINVAL, "rotlearn: windows of %lld tokens exceed the model's context %lld", (long long)o->T,
                      (long long)mc->n_ctx_train);
        goto done;
    }
    /* the online part as `quantize` makes it: R1/R2 none here (learned), R3/R4 Hadamard by
     * default when activations or the KV cache are quantized (SpinQuant's online rotations) */
    bool online_q = o->abits != RQ_BITS_OFF || o->kvbits != RQ_BITS_OFF;
    /* route (b) (post-norm models by default): Ri learned online, started at the identity here
     * (the learner sets its start); o's input and R4 take the start's kind when it has a fast
     * form, fixed */
    bool linear = o->r1_route == RQ_R1_LINEAR || (o->r1_route == RQ_R1_AUTO && mc->post_norms);
    bool fast_init = o->init == RQ_ROT_HADAMARD || o->init == RQ_ROT_WALSH || blocked(o->init);
    bool r2 = o->r2 && !linear;
    int64_t ib = o->init_block ? o->init_block : o->block ? o->block : o->group;
    rq_quant_opts qo = rq_quant_opts_default();
    qo.rotate = RQ_ROT_NONE, qo.rotate2 = RQ_ROT_NONE, qo.wbits = 16, qo.group = o->group, qo.seed = o->seed;
    qo.r1_route = linear ? RQ_R1_LINEAR : RQ_R1_RESIDUAL;
    qo.rotate3 = o->rotate3 >= 0 ? o->rotate3 : online_q ? RQ_ROT_HADAMARD : RQ_ROT_NONE;
    qo.rotate4 = o->rotate4 >= 0 ? o->rotate4 : linear ? (fast_init ? (int)o->init : RQ_ROT_NONE) : qo.rotate3;
    qo.abits = o->abits, qo.kvbits = o->kvbits;
    if (o->abits != RQ_BITS_OFF) qo.asym = o->asym, qo.aclip = o->aclip;
    if ((s = rq_quant_plan_make(m, &qo, &plan)) != RQ_OK) goto done;
    if (linear) {
        int64_t n = mc->n_embd, qd = mc->n_head * mc->head_dim;
        rq_rot_kind ko = fast_init ? o->init : RQ_ROT_NONE;
        if (!(plan.r1_dense = rq_calloc(n * n * (int64_t)sizeof(float)))) {
            s = RQ_ENOMEM;
            goto done;
        }
        for (int64_t i = 0; i < n; i++) plan.r1_dense[i * n + i] = 1.0f;
        plan.ri = plan.online.ri = rq_rot_make(RQ_ROT_LEARNED, n, o->block, 0);
        plan.ro = plan.online.ro = rq_rot_make(ko, qd, blocked(ko) ? ib : 0, o->seed + 5);
        plan.online.ri_matrix = plan.r1_dense;
    }
    if ((s = rq_quant_fold(m, &plan)) != RQ_OK) goto done;

    /* data: given ids or the float model's own text */
    t0 = rq_time_now();
    int64_t n_win;
    if ((s = rq_quant_train_windows(m, tok, o->ids, o->n_ids, o->T, o->gen_seqs, o->gen_temp, gf, o->gen_chat, o->seed, o->progress,
                                    o->data_save, "rotlearn", &win, &n_win)) != RQ_OK)
        goto done;
    if (rq_mpi_size() > 1 &&
        (s = rq_mpi_check_same(rq_hash64(win, n_win * o->T * (int64_t)sizeof(int32_t), 0), "rotlearn: the training windows")) != RQ_OK)
        goto done;
    int64_t n_val = o->val_seqs / o->n_seq * o->n_seq, n_train = n_win - n_val;
    if (n_train < 1) {
        s = rq_errorf(RQ_EINVAL, "rotlearn: %lld windows of %lld tokens leave none for training after %lld held out",
                      (long long)n_win, (long long)o->T, (long long)n_val);
        goto done;
    }
    const int32_t *val = win + n_train * o->T;
    res->t_data = rq_time_now() - t0;

    /* R4's inverse folded, the fake quantizers on (a float KV cache holding the quantized values) */
    if ((s = rq_quant_arm(m, &plan)) != RQ_OK) goto done;
    m->online.kv_fake = true;
    rq_rotlearn_cfg cfg = {.block = o->block, .r2 = r2, .wbits = o->wbits, .group = o->group, .linear = linear};
    if ((s = rq_rotlearn_new(m, &cfg, &L)) != RQ_OK) goto done;
    int64_t n = L->n, hd = L->hd;
    rq_rotation init1 = rq_rot_make(o->init, n, blocked(o->init) ? ib : 0, o->seed);
    rq_rotation init2 = rq_rot_make(o->init2, hd, blocked(o->init2) ? hd : 0, o->seed + 1);
    if ((s = rq_rot_dense(&init1, &q1)) != RQ_OK || (r2 && (s = rq_rot_dense(&init2, &q2)) != RQ_OK)) goto done;
    rq_rotlearn_set(L, q1, q2);
    /* one window at a time (train/dp.h): the same gradients on any rank count */
    if ((s = rq_train_ctx_new(m, 1, o->T, &c)) != RQ_OK || (s = rq_params_mirror(&L->p, &g)) != RQ_OK ||
        (s = rq_dp_sum_init(&acc, &L->p)) != RQ_OK)
        goto done;
    if (!(batch = rq_alloc(o->n_seq * o->T * (int64_t)sizeof(int32_t)))) {
        s = RQ_ENOMEM;
        goto done;
    }
    char d1[96], d2[96], don[320];
    bool talk = o->progress && rq_mpi_rank() == 0; /* one rank reports */
    if (talk)
        fprintf(stderr, "rotlearn: %s: %s from %s%s, R2 %s; W%d%s A%d KV%d, %s; %lld steps of %lld x %lld tokens, lr "
                "%.3g %s; %lld training windows, %lld held out\n", in,
                linear ? "Ri (route (b): each linear's input, online)" : "R1", rq_rot_describe(&init1, d1, sizeof d1),
                o->block ? " (learned block-diagonal)" : "", r2 ? rq_rot_describe(&init2, d2, sizeof d2) : "none",
                o->wbits, o->wbits != 16 ? " RTN" : "", o->abits, o->kvbits, rq_online_describe(&plan.online, don, sizeof don),
                (long long)o->steps, (long long)o->n_seq, (long long)o->T, o->lr,
                o->schedule == RQ_LR_COSINE ? "cosine" : o->schedule == RQ_LR_LINEAR ? "linear" : "constant",
                (long long)n_train, (long long)n_val);
    rq_rotlearn_apply(L);
    if (n_val && (s = val_loss(c, val, n_val, o->n_seq, &res->val_first)) != RQ_OK) goto done;
    if (talk && n_val) fprintf(stderr, "rotlearn: held-out loss at the start %.5f\n", res->val_first);

    t0 = rq_time_now();
    rq_rng rng;
    rq_rng_seed(&rng, o->seed ^ 0x726f746cULL);
    rq_lr_schedule sched = {.shape = o->schedule, .total = o->steps};
    rq_rotlearn_step_info info = {0};
    for (int64_t st = 0; st < o->steps; st++) {
        for (int64_t b = 0; b < o->n_seq; b++)
            memcpy(batch + b * o->T, win + (int64_t)rq_rng_below(&rng, (uint64_t)n_train) * o->T,
                   (size_t)o->T * sizeof(int32_t));
        double lr = o->lr * rq_lr_factor(&sched, st);
        if ((s = step_dp(L, c, &g, &acc, batch, o->n_seq, lr, &info)) != RQ_OK) goto done;
        if (!st) res->loss_first = info.loss;
        res->loss_last = info.loss;
        res->tokens += o->n_seq * o->T;
        double el = rq_time_now() - t0;
        if (talk)
            fprintf(stderr, "rotlearn: step %lld/%lld loss %.5f |A| %.3g eta %.3g |R1'R1-I| %.1e |R2'R2-I| %.1e  "
                    "%.0f tokens/s, ETA %.0f s\n", (long long)st + 1, (long long)o->steps, info.loss, info.a1,
                    info.lr1, info.orth1, info.orth2, (double)res->tokens / el,
                    el / (double)(st + 1) * (double)(o->steps - st - 1));
    }
    res->t_train = rq_time_now() - t0;
    res->orth1 = info.orth1, res->orth2 = info.orth2;
    rq_rotlearn_apply(L);
    if (n_val && (s = val_loss(c, val, n_val, o->n_seq, &res->val_last)) != RQ_OK) goto done;

    /* the file */
    out_rot.n = n, out_rot.block = o->block, out_rot.head_dim = hd, out_rot.n_r2 = r2 ? L->nl : 0;
    if (!(out_rot.r1 = rq_alloc(n * n * (int64_t)sizeof(float))) ||
        (r2 && !(out_rot.r2 = rq_alloc(L->nl * hd * hd * (int64_t)sizeof(float))))) {
        s = RQ_ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n * n; i++) out_rot.r1[i] = (float)L->R1[i];
    for (int64_t i = 0; r2 && i < L->nl * hd * hd; i++) out_rot.r2[i] = (float)L->R2[i];
    out_rot.init1 = init1, out_rot.init2 = r2 ? init2 : (rq_rotation){0};
    out_rot.r3 = plan.r3, out_rot.r4 = plan.r4;
    out_rot.wbits = o->wbits, out_rot.abits = o->abits, out_rot.kvbits = o->kvbits, out_rot.group = o->group;
    out_rot.asym = o->asym, out_rot.aclip = o->aclip;
    out_rot.steps = o->steps, out_rot.n_seq = o->n_seq, out_rot.T = o->T, out_rot.tokens = res->tokens;
    out_rot.lr = (float)o->lr, out_rot.seed = o->seed;
    out_rot.loss_first = res->loss_first, out_rot.loss_last = res->loss_last, out_rot.seconds = res->t_train;
    s = rq_mpi_rank() == 0 ? rq_rot_learned_write(&out_rot, out) : RQ_OK; /* every rank the same rotations */
done:
    res->t_total = rq_time_now() - t_start;
    rq_rot_learned_free(&out_rot);
    rq_quant_plan_free(&plan);
    rq_free(q1), rq_free(q2), rq_free(batch), rq_free(win);
    rq_params_free(&g);
    rq_dp_sum_free(&acc);
    rq_train_ctx_free(c);
    rq_rotlearn_free(L);
    rq_tokenizer_free(tok);
    rq_model_free(m);
    rq_gguf_close(gf);
    return s;
}
