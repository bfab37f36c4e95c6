/* The model's backward pass (train/backward.h). */
#include "train/backward.h"

#include "base/pool.h"
#include "kernels/vmath.h"
#include "format/kv.h"
#include "train/fakequant.h"
#include "train/ops.h"

#include <cblas.h>
#include <string.h>


#define ROWS_PER_ITEM 16

static int64_t floats_per_row(const rq_model_config *c, bool checkpoint_act) {
    int64_t qd = c->n_head * c->head_dim, kvd = c->n_head_kv * c->head_dim, e = c->n_embd, f = c->n_ff;
    /* saved per layer: x_in, q, k, v, att, x_mid, gate, up (+ q_pre, k_pre, o_out, down_out);
     * checkpointed: x_in per layer, the rest once */
    int64_t layer = 2 * e + 2 * qd + 2 * kvd + 2 * f + (c->qk_norm ? qd + kvd : 0) + (c->post_norms ? 2 * e : 0);
    int64_t saved = checkpoint_act ? c->n_layer * e + (layer - e) : c->n_layer * layer;
    /* x_final, scratch (dx, dxn, xn, tmp, dq, dq2, dk, dk2, dv, datt, dgate, dup, h), state
     * buffers (x, xn, q, att, gate, up, hidden, KV cache) and the logits */
    int64_t scratch = 5 * e + 3 * qd + 3 * kvd + 3 * f;
    int64_t state = 3 * e + 2 * qd + 2 * f + 2 * c->n_layer * kvd;
    return saved + scratch + state + c->n_vocab;
}

int64_t rq_train_ctx_bytes_ex(const rq_model_config *c, int64_t n_seq, int64_t T, const rq_train_ctx_opts *opts) {
    const bool ckpt = opts && opts->checkpoint_act && !opts->block;
    int64_t n, b;
    if (!rq_mul_ok(n_seq, T, &n) || !rq_mul_ok(n, floats_per_row(c, ckpt), &b) || !rq_mul_ok(b, 4, &b))
        return INT64_MAX;
    return b;
}

int64_t rq_train_ctx_bytes(const rq_model_config *c, int64_t n_seq, int64_t T) {
    return rq_train_ctx_bytes_ex(c, n_seq, T, NULL);
}

void rq_train_ctx_free(rq_train_ctx *c) {
    if (!c) return;
    rq_state_free(c->st);
    if (c->acts.layers) {
        /* one buffer each, at its x_in; or one for all (block-wise, checkpointed) */
        if (c->acts_buf) rq_free(c->acts_buf);
        else
            for (int64_t l = 0; l < c->model->cfg.n_layer; l++) rq_free(c->acts.layers[l].x_in);
        rq_free(c->acts.layers);
    }
    rq_free(c->x_ins);
    rq_free(c->xn0);
    rq_free(c->xq); /* one block for the online scratch */
    rq_free(c->acts.x_final);
    rq_free(c->seg);
    rq_free(c->target);
    rq_free(c->dx); /* one block for the scratch */
    rq_free(c);
}

rq_status rq_train_ctx_new_ex(rq_model *m, int64_t n_seq, int64_t T, const rq_train_ctx_opts *opts,
                              rq_train_ctx **out) {
    *out = NULL;
    const rq_model_config *cf = &m->cfg;
    const rq_online *on = &m->online;
    bool block = opts && opts->block;
    bool ckpt = opts && opts->checkpoint_act && !block;
    if (n_seq < 1 || T < 1) return rq_errorf(RQ_EINVAL, "training: batch of %lld × %lld tokens", (long long)n_seq, (long long)T);
    if (on->p1)
        return rq_errorf(RQ_EUNSUPPORTED, "training: the backward pass does not run the online R1 of the post-norms "
                         "(route (a)); use the per-linear input rotations (--r1-route linear) or R1 none");
    int64_t n = n_seq * T, e = cf->n_embd, qd = cf->n_head * cf->head_dim, kvd = cf->n_head_kv * cf->head_dim;
    int64_t f = cf->n_ff;
    bool actq = on->cfg.act.bits != 0, kv4 = on->cfg.kv_bits == 4;
    bool online = actq || kv4 || on->p3 || on->p4 || on->pi || on->po;
    rq_train_ctx *c = rq_calloc(sizeof *c);
    if (!c) return RQ_ENOMEM;
    c->model = m;
    c->n_seq = n_seq, c->T = T, c->n = n;
    c->block = block;
    c->checkpoint_act = ckpt;
    c->block_l = -1;
    /* the segmented forward needs the float cache: the fake-quantized one for KV4 (kv_fake is
     * read only when a state is created) */
    bool kv_fake = m->online.kv_fake;
    m->online.kv_fake = true;
    rq_status s = rq_state_new(m, n, n, !block, &c->st);
    m->online.kv_fake = kv_fake;
    if (s == RQ_OK) s = rq_state_set_segments(c->st, T);
    c->acts.n_rows = n;
    if (s == RQ_OK && !(c->acts.layers = rq_calloc(cf->n_layer * (int64_t)sizeof(rq_layer_acts)))) s = RQ_ENOMEM;
    int64_t per_layer = 2 * e + 2 * qd + 2 * kvd + 2 * f + (cf->qk_norm ? qd + kvd : 0) + (cf->post_norms ? 2 * e : 0) +
                        (actq ? f : 0);
    /* checkpointed: the shared block buffer has no x_in (x_ins holds every layer's) */
    if (s == RQ_OK && ckpt && !(c->x_ins = rq_alloc(cf->n_layer * n * e * (int64_t)sizeof(float)))) s = RQ_ENOMEM;
    for (int64_t l = 0; l < (block || ckpt ? 1 : cf->n_layer) && s == RQ_OK; l++) {
        float *b = rq_alloc(n * (per_layer - (ckpt ? e : 0)) * (int64_t)sizeof(float));
        if (!b) {
            s = RQ_ENOMEM;
            break;
        }
        if (block || ckpt) c->acts_buf = b;
        rq_layer_acts *A = &c->acts.layers[l];
#define TAKE(dst, w) (dst = b, b += n * (w))
        if (!ckpt) TAKE(A->x_in, e);
        TAKE(A->q, qd), TAKE(A->k, kvd), TAKE(A->v, kvd), TAKE(A->att, qd), TAKE(A->x_mid, e);
        TAKE(A->gate, f), TAKE(A->up, f);
        if (cf->qk_norm) TAKE(A->q_pre, qd), TAKE(A->k_pre, kvd);
        if (cf->post_norms) TAKE(A->o_out, e), TAKE(A->down_out, e);
        if (actq) TAKE(A->down_in, f);
    }
    if (s == RQ_OK && (block || ckpt))
        for (int64_t l = 1; l < cf->n_layer; l++) c->acts.layers[l] = c->acts.layers[0];
    if (s == RQ_OK && ckpt)
        for (int64_t l = 0; l < cf->n_layer; l++) c->acts.layers[l].x_in = c->x_ins + l * n * e;
    if (s == RQ_OK && !block && !(c->acts.x_final = rq_alloc(n * e * (int64_t)sizeof(float)))) s = RQ_ENOMEM;
    if (s == RQ_OK && on->pi && rq_rot_plan_q(on->pi) && !(c->xn0 = rq_alloc(n * e * (int64_t)sizeof(float))))
        s = RQ_ENOMEM;
    if (s == RQ_OK && !(c->seg = rq_alloc(2 * n * (int64_t)sizeof(int64_t)))) s = RQ_ENOMEM;
    if (s == RQ_OK && !(c->target = rq_alloc(n * (int64_t)sizeof(int32_t)))) s = RQ_ENOMEM;
    float *b = s == RQ_OK ? rq_alloc(n * (5 * e + 3 * qd + 3 * kvd + 3 * f) * (int64_t)sizeof(float)) : NULL;
    if (s == RQ_OK && !b) s = RQ_ENOMEM;
    float *ob = s == RQ_OK && online ? rq_alloc(n * (e + 2 * qd + 5 * kvd + f) * (int64_t)sizeof(float)) : NULL;
    if (s == RQ_OK && online && !ob) s = RQ_ENOMEM;
    if (s != RQ_OK) {
        rq_free(b);
        rq_train_ctx_free(c);
        return s;
    }
    TAKE(c->dx, e), TAKE(c->dxn, e), TAKE(c->xn, e), TAKE(c->tmp, e);
    TAKE(c->dq, qd), TAKE(c->dq2, qd), TAKE(c->datt, qd);
    TAKE(c->dk, kvd), TAKE(c->dk2, kvd), TAKE(c->dv, kvd);
    TAKE(c->dgate, f), TAKE(c->dup, f), TAKE(c->h, f);
    if (online) {
        b = ob;
        TAKE(c->xq, e), TAKE(c->attq, qd), TAKE(c->qr, qd), TAKE(c->hq, f);
        TAKE(c->kr, kvd), TAKE(c->kq, kvd), TAKE(c->vq, kvd), TAKE(c->dks, kvd), TAKE(c->dvs, kvd);
    }
#undef TAKE
    c->pos = c->seg + n;
    for (int64_t i = 0; i < n; i++) c->seg[i] = i / T, c->pos[i] = i % T;
    *out = c;
    return RQ_OK;
}

rq_status rq_train_ctx_new(rq_model *m, int64_t n_seq, int64_t T, rq_train_ctx **out) {
    return rq_train_ctx_new_ex(m, n_seq, T, NULL, out);
}

rq_status rq_train_forward(rq_train_ctx *c, const int32_t *tokens) {
    if (c->block) return rq_errorf(RQ_EINVAL, "training: a block-wise context cannot run the whole model");
    rq_state *st = c->st;
    st->acts = &c->acts;
    rq_state_reset(st);
    c->block_l = -1; /* a checkpointed context's shared buffer now holds the last layer's */
    rq_status s = rq_model_forward_segments(st, tokens, c->seg, c->pos, c->n, RQ_LOGITS_ALL);
    st->acts = NULL;
    return s;
}

/* Checkpointed: layer l's forward again from its saved input, refilling the shared block
 * buffer exactly as the whole forward filled it for l (the same layer_forward on the same
 * rows, segments and positions; the state's other layers are not touched). */
static void recompute_layer(rq_train_ctx *c, int64_t l) {
    rq_state *st = c->st;
    memcpy(st->x, c->acts.layers[l].x_in, (size_t)(c->n * c->model->cfg.n_embd) * sizeof(float));
    st->acts = &c->acts;
    rq_state_reset(st);
    rq_status s = rq_model_forward_layers_segments(st, l, l + 1, c->seg, c->pos, c->n);
    st->acts = NULL;
    RQ_ASSERT(s == RQ_OK); /* the rows the whole forward accepted */
    c->block_l = l;
}

/* ---- row-parallel pieces ------------------------------------------------------------- */

typedef struct {
    rq_train_ctx *c;
    const float *x, *g;
    float *y;
    int64_t d;
    const float *gate, *up, *dh;
    float *dgate, *dup, *h;
    bool gelu;
    float *dq, *dk; /* RoPE backward */
    const float *cos_, *sin_;
} rows_job;

static void rmsnorm_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const rows_job *j = ctx;
    const rq_vmath *vm = rq_vmath_get();
    float eps = j->c->model->cfg.rms_eps;
    for (int64_t i = b; i < e; i++) vm->rmsnorm(j->x + i * j->d, j->g, j->d, eps, j->y + i * j->d);
}

/* y [n, d] = RMSNorm(x)·g, as the forward computes it */
static void rmsnorm_fwd(rq_train_ctx *c, const float *x, const float *g, int64_t d, float *y) {
    rows_job j = {.c = c, .x = x, .g = g, .y = y, .d = d};
    rq_parallel_for(c->n, ROWS_PER_ITEM, rmsnorm_rows, &j);
}

static void act_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const rows_job *j = ctx;
    int64_t f = j->d;
    rq_train_mlp_act_backward(j->gelu, j->gate + b * f, j->up + b * f, j->dh + b * f, (e - b) * f, j->dgate + b * f,
                              j->dup + b * f, NULL);
}

static void act_fwd_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const rows_job *j = ctx;
    int64_t f = j->d;
    rq_train_mlp_act(j->gelu, j->gate + b * f, j->up + b * f, (e - b) * f, j->h + b * f);
}

static void rope_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const rows_job *j = ctx;
    const rq_model_config *cf = &j->c->model->cfg;
    int64_t hd = cf->head_dim, half = cf->rope_dim / 2;
    for (int64_t i = b; i < e; i++) {
        int64_t p = j->c->pos[i];
        const float *cs = j->cos_ + p * half, *sn = j->sin_ + p * half;
        for (int64_t h = 0; h < cf->n_head; h++)
            rq_train_rope_backward(j->dq + (i * cf->n_head + h) * hd, cs, sn, cf->rope_dim, cf->rope_neox);
        for (int64_t h = 0; h < cf->n_head_kv; h++)
            rq_train_rope_backward(j->dk + (i * cf->n_head_kv + h) * hd, cs, sn, cf->rope_dim, cf->rope_neox);
    }
}

/* gradient buffer of the parameter whose data is `data` (NULL when frozen) */
static float *grad_of(const rq_params *p, rq_params *g, const float *data) {
    int64_t i = rq_params_find(p, data);
    RQ_ASSERT(i >= 0);
    return p->p[i].trainable ? g->p[i].data : NULL;
}

/* ---- the backward -------------------------------------------------------------------- */

/* ---- online quantizers, row-parallel ------------------------------------------------- */

typedef struct {
    const rq_actq *aq; /* activation quantizer, or NULL: the KV quantizer */
    const rq_online_cfg *oc;
    const float *x, *dy;
    float *y;
    int64_t dim;
} fq_job;

/* y = x̃ (rows copied and fake-quantized, as the forward's quant_input / kv_store_rows) */
static void fq_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const fq_job *j = ctx;
    memcpy(j->y + b * j->dim, j->x + b * j->dim, (size_t)((e - b) * j->dim) * sizeof(float));
    for (int64_t i = b; i < e; i++) {
        if (j->aq) rq_actq_row(j->aq, j->y + i * j->dim, j->dim);
        else rq_kv4_fake_row_ref(j->y + i * j->dim, j->dim, j->oc->kv_group, j->oc->kv_clip);
    }
}

/* y = STE(dy) given the quantizer's input x (no clip gradient) */
static void fq_back_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const fq_job *j = ctx;
    int64_t o = b * j->dim;
    if (j->aq) rq_fq_act_backward(j->aq, j->x + o, j->dy + o, e - b, j->dim, j->y + o, NULL);
    else rq_fq_kv4_backward(j->x + o, j->dy + o, e - b, j->dim, j->oc->kv_group, j->oc->kv_clip, j->y + o, NULL);
}

/* x̃ [n, dim] of rows x through the activation quantizer (aq) or the KV one (aq NULL) */
static void fq_fwd(const rq_train_ctx *c, const rq_actq *aq, const float *x, int64_t dim, float *y) {
    fq_job j = {.aq = aq, .oc = &c->model->online.cfg, .x = x, .y = y, .dim = dim};
    rq_parallel_for(c->n, ROWS_PER_ITEM, fq_rows, &j);
}

/* dx [n, dim] = the straight-through gradient of dy through the quantizer of input x */
static void fq_bwd(const rq_train_ctx *c, const rq_actq *aq, const float *x, const float *dy, int64_t dim,
                   float *dx) {
    fq_job j = {.aq = aq, .oc = &c->model->online.cfg, .x = x, .dy = dy, .y = dx, .dim = dim};
    rq_parallel_for(c->n, ROWS_PER_ITEM, fq_back_rows, &j);
}

/* ∂L/∂Q of a learned Ri (route (b), x ← x·Q online) when Q is a trainable entry of p
 * (rotquant rotlearn adds it), else NULL */
static float *ri_grad(const rq_train_ctx *c, const rq_params *p, rq_params *g) {
    const rq_rot_plan *pi = c->model->online.pi;
    const float *q = pi ? rq_rot_plan_q(pi) : NULL;
    if (!q || !c->xn0) return NULL;
    int64_t i = rq_params_find(p, q);
    return i >= 0 && p->p[i].trainable ? g->p[i].data : NULL;
}

/* x·Q's backward for a learned Q: gq += x0ᵀ·dy (x0 the input before Q, dy the gradient
 * after it), before dy is rotated back */
static void ri_grad_acc(const rq_train_ctx *c, float *gq, const float *dy) {
    int e = (int)c->model->cfg.n_embd;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, e, e, (int)c->n, 1.0f, c->xn0, e, dy, e, 1.0f, gq, e);
}

/* ---- the backward -------------------------------------------------------------------- */

/* Layer l: c->dx holds ∂L/∂(its output); on return ∂L/∂(its input x_in). */
static void layer_backward(rq_train_ctx *c, int64_t l, const rq_params *p, rq_params *g) {
    const rq_model *m = c->model;
    const rq_model_config *cf = &m->cfg;
    const rq_layer *L = &m->layers[l];
    const rq_layer_acts *A = &c->acts.layers[l];
    int64_t n = c->n, e = cf->n_embd, f = cf->n_ff, hd = cf->head_dim;
    int64_t qd = cf->n_head * hd, kvd = cf->n_head_kv * hd;
    float eps = cf->rms_eps;
    const rq_online *on = &m->online;
    /* training runs F32 linears: the forward's quant_input applies the quantizer to all seven */
    const rq_actq *aq = on->cfg.act.bits ? &on->cfg.act : NULL;
    bool kv4 = on->cfg.kv_bits == 4;
    float *gri = ri_grad(c, p, g);

    /* MLP block: x_out = x_mid + [post_norm](down(Q(R4(act(gate(Q(xn)))·up(Q(xn)))))),
     * xn = norm(x_mid), Q the activation quantizer (identity when off) */
    const float *dd = c->dx;
    if (cf->post_norms) {
        rq_train_rmsnorm_backward(A->down_out, L->post_ffn_norm, c->dx, n, e, eps, c->tmp, false,
                                  grad_of(p, g, L->post_ffn_norm));
        dd = c->tmp;
    }
    /* down's input as it received it; dh (into dup) = dd·W_down, dW_down += ddᵀ·input, then
     * back through Q and R4; then dgate and dup (over dh: each element of dh is read before
     * its dup is written) */
    rows_job aj = {.c = c, .gate = A->gate, .up = A->up, .dh = c->dup, .dgate = c->dgate, .dup = c->dup, .h = c->h,
                   .gelu = cf->ffn_gelu, .d = f};
    if (aq) {
        fq_fwd(c, aq, A->down_in, f, c->hq);
        rq_train_linear_backward(L->w_down.w, c->hq, dd, n, e, f, c->dgate, false, grad_of(p, g, L->w_down.w));
        fq_bwd(c, aq, A->down_in, c->dgate, f, c->dup);
    } else {
        rq_parallel_for(n, ROWS_PER_ITEM, act_fwd_rows, &aj);
        if (on->p4) rq_rot_apply(on->p4, c->h, c->h, n);
        rq_train_linear_backward(L->w_down.w, c->h, dd, n, e, f, c->dup, false, grad_of(p, g, L->w_down.w));
    }
    if (on->p4) rq_rot_apply_t(on->p4, c->dup, c->dup, n);
    rq_parallel_for(n, ROWS_PER_ITEM, act_rows, &aj);
    rmsnorm_fwd(c, A->x_mid, L->ffn_norm, e, c->xn);
    if (gri) memcpy(c->xn0, c->xn, (size_t)(n * e) * sizeof(float));
    if (on->pi) rq_rot_apply(on->pi, c->xn, c->xn, n); /* route (b): gate/up's input ·Ri */
    const float *xin = c->xn;
    if (aq) fq_fwd(c, aq, c->xn, e, c->xq), xin = c->xq;
    rq_train_linear_backward(L->w_gate.w, xin, c->dgate, n, f, e, c->dxn, false, grad_of(p, g, L->w_gate.w));
    rq_train_linear_backward(L->w_up.w, xin, c->dup, n, f, e, c->dxn, true, grad_of(p, g, L->w_up.w));
    float *dxn = c->dxn;
    if (aq) fq_bwd(c, aq, c->xn, c->dxn, e, c->tmp), dxn = c->tmp;
    if (gri) ri_grad_acc(c, gri, dxn);
    if (on->pi) rq_rot_apply_t(on->pi, dxn, dxn, n);
    rq_train_rmsnorm_backward(A->x_mid, L->ffn_norm, dxn, n, e, eps, c->dx, true, grad_of(p, g, L->ffn_norm));

    /* attention block: x_mid = x_in + [post_norm](o(Q(attention(q·R3, KVQ(k·R3), KVQ(v))))) */
    const float *dout = c->dx;
    if (cf->post_norms) {
        rq_train_rmsnorm_backward(A->o_out, L->post_attn_norm, c->dx, n, e, eps, c->tmp, false,
                                  grad_of(p, g, L->post_attn_norm));
        dout = c->tmp;
    }
    /* o's input as it received it: the attention output, ·Ro under route (b) (c->qr is free until
     * R3 below) */
    const float *att = A->att;
    if (on->po) rq_rot_apply(on->po, A->att, c->qr, n), att = c->qr;
    if (aq) {
        fq_fwd(c, aq, att, qd, c->attq);
        rq_train_linear_backward(L->wo.w, c->attq, dout, n, e, qd, c->dq2, false, grad_of(p, g, L->wo.w));
        fq_bwd(c, aq, att, c->dq2, qd, c->datt);
    } else {
        rq_train_linear_backward(L->wo.w, att, dout, n, e, qd, c->datt, false, grad_of(p, g, L->wo.w));
    }
    if (on->po) rq_rot_apply_t(on->po, c->datt, c->datt, n);
    /* the attention's inputs as the forward used them */
    const float *qa = A->q, *ka = A->k, *va = A->v;
    if (on->p3) {
        rq_rot_apply(on->p3, A->q, c->qr, n * cf->n_head);
        rq_rot_apply(on->p3, A->k, c->kr, n * cf->n_head_kv);
        qa = c->qr, ka = c->kr;
    }
    const float *k_pre = ka; /* the KV quantizer's input */
    if (kv4) {
        fq_fwd(c, NULL, ka, kvd, c->kq);
        fq_fwd(c, NULL, A->v, kvd, c->vq);
        ka = c->kq, va = c->vq;
    }
    bool swa = rq_model_layer_is_swa(cf, l);
    rq_train_attn_shape as = {.n_seq = c->n_seq, .T = c->T, .n_head = cf->n_head, .n_kv = cf->n_head_kv, .hd = hd,
                              .window = swa ? cf->sliding_window : 0, .scale = cf->attn_scale};
    rq_train_attention_backward(&as, qa, ka, va, c->datt, c->dq, c->dk, c->dv);
    float *dkr = c->dk, *dvr = c->dv;
    if (kv4) {
        fq_bwd(c, NULL, k_pre, c->dk, kvd, c->dks);
        fq_bwd(c, NULL, A->v, c->dv, kvd, c->dvs);
        dkr = c->dks, dvr = c->dvs;
    }
    if (on->p3) {
        rq_rot_apply_t(on->p3, c->dq, c->dq, n * cf->n_head);
        rq_rot_apply_t(on->p3, dkr, dkr, n * cf->n_head_kv);
    }
    rows_job rj = {.c = c, .dq = c->dq, .dk = dkr, .cos_ = swa ? c->st->rope_cos_swa : c->st->rope_cos,
                   .sin_ = swa ? c->st->rope_sin_swa : c->st->rope_sin};
    rq_parallel_for(n, ROWS_PER_ITEM, rope_rows, &rj);
    const float *dq = c->dq, *dk = dkr;
    if (cf->qk_norm) { /* per-head RMSNorm: rows of head_dim */
        rq_train_rmsnorm_backward(A->q_pre, L->q_norm, c->dq, n * cf->n_head, hd, eps, c->dq2, false,
                                  grad_of(p, g, L->q_norm));
        rq_train_rmsnorm_backward(A->k_pre, L->k_norm, dkr, n * cf->n_head_kv, hd, eps, c->dk2, false,
                                  grad_of(p, g, L->k_norm));
        dq = c->dq2, dk = c->dk2;
    }
    rmsnorm_fwd(c, A->x_in, L->attn_norm, e, c->xn);
    if (gri) memcpy(c->xn0, c->xn, (size_t)(n * e) * sizeof(float));
    if (on->pi) rq_rot_apply(on->pi, c->xn, c->xn, n); /* route (b): q/k/v's input ·Ri */
    xin = c->xn;
    if (aq) fq_fwd(c, aq, c->xn, e, c->xq), xin = c->xq;
    rq_train_linear_backward(L->wq.w, xin, dq, n, qd, e, c->dxn, false, grad_of(p, g, L->wq.w));
    rq_train_linear_backward(L->wk.w, xin, dk, n, kvd, e, c->dxn, true, grad_of(p, g, L->wk.w));
    rq_train_linear_backward(L->wv.w, xin, dvr, n, kvd, e, c->dxn, true, grad_of(p, g, L->wv.w));
    dxn = c->dxn;
    if (aq) fq_bwd(c, aq, c->xn, c->dxn, e, c->tmp), dxn = c->tmp;
    if (gri) ri_grad_acc(c, gri, dxn);
    if (on->pi) rq_rot_apply_t(on->pi, dxn, dxn, n);
    rq_train_rmsnorm_backward(A->x_in, L->attn_norm, dxn, n, e, eps, c->dx, true, grad_of(p, g, L->attn_norm));
}

void rq_train_backward(rq_train_ctx *c, const int32_t *tokens, const float *dlogits, const rq_params *p,
                       rq_params *g) {
    RQ_ASSERT(!c->block);
    const rq_model *m = c->model;
    const rq_model_config *cf = &m->cfg;
    int64_t n = c->n, e = cf->n_embd;
    /* lm_head: hidden = norm(x_final) (recomputed), logits = hidden·W_outᵀ */
    rmsnorm_fwd(c, c->acts.x_final, m->output_norm, e, c->xn);
    rq_train_linear_backward(m->output.w, c->xn, dlogits, n, cf->n_vocab, e, c->dxn, false,
                             grad_of(p, g, m->output.w));
    rq_train_rmsnorm_backward(c->acts.x_final, m->output_norm, c->dxn, n, e, cf->rms_eps, c->dx, false,
                              grad_of(p, g, m->output_norm));
    for (int64_t l = cf->n_layer - 1; l >= 0; l--) {
        if (c->checkpoint_act) recompute_layer(c, l);
        layer_backward(c, l, p, g);
    }
    float *dE = grad_of(p, g, m->tok_embd);
    if (dE) rq_train_embed_backward(c->dx, tokens, n, e, cf->embd_scale, dE);
}

rq_status rq_train_block_forward(rq_train_ctx *c, int64_t l, const float *x_in, float *y) {
    const rq_model_config *cf = &c->model->cfg;
    if (l < 0 || l >= cf->n_layer)
        return rq_errorf(RQ_EINVAL, "training: block %lld out of range [0, %lld)", (long long)l,
                         (long long)cf->n_layer);
    rq_state *st = c->st;
    int64_t ne = c->n * cf->n_embd;
    if (st->x != x_in) memcpy(st->x, x_in, (size_t)ne * sizeof(float));
    st->acts = &c->acts;
    rq_state_reset(st);
    c->block_l = -1;
    rq_status s = rq_model_forward_layers_segments(st, l, l + 1, c->seg, c->pos, c->n);
    st->acts = NULL;
    if (s != RQ_OK) return s;
    c->block_l = l;
    if (y != st->x) memmove(y, st->x, (size_t)ne * sizeof(float));
    return RQ_OK;
}

void rq_train_block_backward(rq_train_ctx *c, int64_t l, const float *dy, const rq_params *p, rq_params *g,
                             float *dx_in) {
    const rq_model_config *cf = &c->model->cfg;
    RQ_ASSERT(l >= 0 && l < cf->n_layer && (!(c->block || c->checkpoint_act) || c->block_l == l));
    int64_t ne = c->n * cf->n_embd;
    memmove(c->dx, dy, (size_t)ne * sizeof(float));
    layer_backward(c, l, p, g);
    if (dx_in) memmove(dx_in, c->dx, (size_t)ne * sizeof(float));
}

double rq_train_loss(rq_train_ctx *c, const int32_t *tokens, const float *teacher, double gamma) {
    RQ_ASSERT(!c->block);
    int64_t n = c->n, V = c->model->cfg.n_vocab;
    float *z = c->st->logits;
    if (teacher) return rq_train_kl(z, teacher, n, V, gamma, 1.0f / (float)n, z) / (double)n;
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        c->target[i] = c->pos[i] == c->T - 1 ? -1 : tokens[i + 1];
        count += c->target[i] >= 0;
    }
    if (count == 0) return 0;
    return rq_train_xent(z, c->target, n, V, 1.0f / (float)count, z) / (double)count;
}
