/* The flat parameter list (train/params.h). */
#include "train/params.h"

#include <stdio.h>
#include <string.h>

rq_status rq_params_add(rq_params *p, const char *name, float *data, int64_t ne0, int64_t ne1, rq_param_group group,
                        bool trainable) {
    RQ_ASSERT(strlen(name) < sizeof p->p[0].name && data && ne0 >= 1 && ne1 >= 1);
    rq_param *np = rq_alloc((p->count + 1) * (int64_t)sizeof *np);
    if (!np) return RQ_ENOMEM;
    if (p->count) memcpy(np, p->p, (size_t)p->count * sizeof *np);
    rq_free(p->p);
    p->p = np;
    rq_param *e = &p->p[p->count++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->data = data;
    e->ne[0] = ne0, e->ne[1] = ne1;
    e->n = ne0 * ne1;
    e->offset = p->n_total;
    e->group = group;
    e->trainable = trainable;
    p->n_total += e->n;
    return RQ_OK;
}

static rq_status add_linear(rq_params *p, const char *name, const rq_linear *l, rq_param_group group) {
    if (l->kind != RQ_LINEAR_F32 || !l->w)
        return rq_errorf(RQ_EUNSUPPORTED, "training: tensor '%s' is not held as float32 (load the model with the "
                         "reference path, or a float/llama.cpp-quantized file)", name);
    return rq_params_add(p, name, l->w, l->n_in, l->n_out, group, true);
}

rq_status rq_params_build(rq_model *m, rq_params *out) {
    memset(out, 0, sizeof *out);
    const rq_model_config *c = &m->cfg;
    rq_params p = {0};
    rq_status s = RQ_OK;
    char name[64];
    if (!m->tok_embd)
        s = rq_errorf(RQ_EUNSUPPORTED, "training: the token embedding is not held as float32 (load the model with "
                      "the reference path)");
    if (s == RQ_OK) s = rq_params_add(&p, "token_embd.weight", m->tok_embd, c->n_embd, c->n_vocab, RQ_PGROUP_EMBED, true);
#define NAME(sfx) (snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, sfx), name)
#define NORM(sfx, ptr, d) \
    if (s == RQ_OK) s = rq_params_add(&p, NAME(sfx), ptr, d, 1, RQ_PGROUP_NORM, true)
#define LIN(sfx, lin) \
    if (s == RQ_OK) s = add_linear(&p, NAME(sfx), &L->lin, RQ_PGROUP_LINEAR)
    for (int64_t l = 0; l < c->n_layer && s == RQ_OK; l++) {
        rq_layer *L = &m->layers[l];
        NORM("attn_norm", L->attn_norm, c->n_embd);
        LIN("attn_q", wq);
        LIN("attn_k", wk);
        LIN("attn_v", wv);
        if (c->qk_norm) {
            NORM("attn_q_norm", L->q_norm, c->head_dim);
            NORM("attn_k_norm", L->k_norm, c->head_dim);
        }
        LIN("attn_output", wo);
        if (c->post_norms) NORM("post_attention_norm", L->post_attn_norm, c->n_embd);
        NORM("ffn_norm", L->ffn_norm, c->n_embd);
        LIN("ffn_gate", w_gate);
        LIN("ffn_up", w_up);
        LIN("ffn_down", w_down);
        if (c->post_norms) NORM("post_ffw_norm", L->post_ffn_norm, c->n_embd);
    }
#undef NAME
#undef NORM
#undef LIN
    if (s == RQ_OK) s = rq_params_add(&p, "output_norm.weight", m->output_norm, c->n_embd, 1, RQ_PGROUP_NORM, true);
    if (s == RQ_OK && m->output.w != m->tok_embd) s = add_linear(&p, "output.weight", &m->output, RQ_PGROUP_LINEAR);
    if (s != RQ_OK) {
        rq_params_free(&p);
        return s;
    }
    *out = p;
    return RQ_OK;
}

rq_status rq_params_mirror(const rq_params *src, rq_params *out) {
    memset(out, 0, sizeof *out);
    out->p = rq_alloc(src->count * (int64_t)sizeof *out->p);
    out->buf = rq_calloc(src->n_total * (int64_t)sizeof(float));
    if (!out->p || !out->buf) {
        rq_params_free(out);
        return RQ_ENOMEM;
    }
    memcpy(out->p, src->p, (size_t)src->count * sizeof *out->p);
    out->count = src->count;
    out->n_total = src->n_total;
    for (int64_t i = 0; i < out->count; i++) out->p[i].data = out->buf + out->p[i].offset;
    return RQ_OK;
}

void rq_params_free(rq_params *p) {
    rq_free(p->p);
    rq_free(p->buf);
    memset(p, 0, sizeof *p);
}

int64_t rq_params_find(const rq_params *p, const float *data) {
    for (int64_t i = 0; i < p->count; i++)
        if (p->p[i].data == data) return i;
    return -1;
}

int64_t rq_params_find_name(const rq_params *p, const char *name) {
    for (int64_t i = 0; i < p->count; i++)
        if (!strcmp(p->p[i].name, name)) return i;
    return -1;
}

int64_t rq_params_n_trainable(const rq_params *p) {
    int64_t n = 0;
    for (int64_t i = 0; i < p->count; i++)
        if (p->p[i].trainable) n += p->p[i].n;
    return n;
}
