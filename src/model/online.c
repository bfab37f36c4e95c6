/* Run-time quantizers and online rotations of a model (model.h, rq_model_set_online). */
#include "model/model.h"

#include "format/abits.h"
#include "format/kv.h"

#include <stdio.h>
#include <string.h>

static rq_status check_rot(const rq_rotation *r, const char *name, int64_t n, const char *what, bool dense_ok) {
    if (r->kind == RQ_ROT_NONE) return RQ_OK;
    if (r->kind == RQ_ROT_ORTHOGONAL || (r->kind == RQ_ROT_LEARNED && !dense_ok))
        return rq_errorf(RQ_EUNSUPPORTED, "%s: kind %s is a dense matrix; online rotations must be "
                         "hadamard, walsh, gh or gsr", name, rq_rot_kind_name(r->kind));
    if (r->n != n)
        return rq_errorf(RQ_EINVAL, "%s has size %lld but the model's %s is %lld", name, (long long)r->n, what,
                         (long long)n);
    rq_status s = rq_rot_validate(r);
    if (s != RQ_OK) return rq_error_prefix(s, name);
    return RQ_OK;
}

static void free_plans(rq_online *o) {
    rq_rot_plan *ps[5] = {o->p3, o->p4, o->p1, o->pi, o->po};
    for (int i = 0; i < 5; i++) rq_rot_plan_free(ps[i]);
    o->p3 = o->p4 = o->p1 = o->pi = o->po = NULL;
}

rq_status rq_model_set_online(rq_model *m, const rq_online_cfg *cfg_in) {
    const rq_model_config *c = &m->cfg;
    rq_online_cfg cfg = *cfg_in;
    /* run-time encoding, 0 = off (format/abits.h); a setting's 16 is taken as off too */
    int abits = rq_bits_from_runtime(cfg.act.bits), kvbits = rq_bits_from_runtime(cfg.kv_bits);
    RQ_TRY(rq_abits_check(abits, "activation bits"));
    RQ_TRY(rq_kvbits_check(kvbits, "KV cache bits"));
    cfg.act.bits = rq_bits_to_runtime(abits);
    cfg.kv_bits = rq_bits_to_runtime(kvbits);
    if (cfg.act.bits == 0) cfg.act = (rq_actq){0};
    else if (!(cfg.act.clip > 0.0f && cfg.act.clip <= 1.0f))
        return rq_errorf(RQ_EINVAL, "activation clip ratio %g is not in (0, 1]", (double)cfg.act.clip);
    if (cfg.kv_bits == 0) {
        cfg.kv_group = 0;
        cfg.kv_clip = 0;
    } else {
        if (cfg.kv_group == 0) cfg.kv_group = c->head_dim;
        if (!rq_kv4_group_ok(cfg.kv_group, c->head_dim))
            return rq_errorf(RQ_EINVAL, "KV group %lld: must divide head_dim %lld and be a multiple of %d",
                             (long long)cfg.kv_group, (long long)c->head_dim, RQ_KV4_GROUP_ALIGN);
        if (cfg.kv_clip == 0) cfg.kv_clip = 1.0f;
        if (!(cfg.kv_clip > 0.0f && cfg.kv_clip <= 1.0f))
            return rq_errorf(RQ_EINVAL, "KV clip ratio %g is not in (0, 1]", (double)cfg.kv_clip);
    }
    RQ_TRY(check_rot(&cfg.r3, "R3", c->head_dim, "head_dim", false));
    RQ_TRY(check_rot(&cfg.r4, "R4", c->n_ff, "feed-forward size", false));
    if (cfg.r1.kind != RQ_ROT_NONE && !c->post_norms)
        return rq_errorf(RQ_EINVAL, "R1 online (route (a), on the post-norms' outputs) needs a model with post-norms; "
                         "this one's R1 folds entirely");
    RQ_TRY(check_rot(&cfg.r1, "R1 (online, after the post-norms)", c->n_embd, "hidden size", false));
    RQ_TRY(check_rot(&cfg.ri, "Ri (online, q/k/v and gate/up inputs)", c->n_embd, "hidden size", true));
    RQ_TRY(check_rot(&cfg.ro, "Ro (online, o's input)", c->n_head * c->head_dim, "attention width", false));
    /* a learned Ri: its matrix given, or the one the model applies now (a re-set) */
    const float *ri_q = NULL;
    if (cfg.ri.kind == RQ_ROT_LEARNED) {
        ri_q = cfg.ri_matrix ? cfg.ri_matrix : m->online.pi ? rq_rot_plan_q(m->online.pi) : NULL;
        if (!ri_q)
            return rq_errorf(RQ_EINVAL, "Ri (online) is learned but its matrix is not given (rotquant.ri.matrix)");
    }
    cfg.ri_matrix = NULL; /* the plan holds the copy */
    /* plans: p3, p4, p1, pi, po */
    const rq_rotation *rs[5] = {&cfg.r3, &cfg.r4, &cfg.r1, &cfg.ri, &cfg.ro};
    rq_rot_plan *ps[5] = {NULL};
    for (int i = 0; i < 5; i++) {
        if (rs[i]->kind == RQ_ROT_NONE) continue;
        rq_status s = i == 3 && ri_q ? rq_rot_plan_matrix(rs[i], ri_q, &ps[i]) : rq_rot_plan_build(rs[i], &ps[i]);
        if (s != RQ_OK) {
            for (int k = 0; k < i; k++) rq_rot_plan_free(ps[k]);
            return s;
        }
    }
    free_plans(&m->online);
    m->online.cfg = cfg;
    m->online.p3 = ps[0];
    m->online.p4 = ps[1];
    m->online.p1 = ps[2];
    m->online.pi = ps[3];
    m->online.po = ps[4];
    /* Packed W2U/W2L/W4U linears quantize their own inputs in the integer kernels (format/act.h)
     * when the quantizer is theirs: symmetric, no clipping. The forward pass then skips its
     * fake quantization of those inputs; every other case (float weights, asymmetric or
     * clipped activations) is fake-quantized by the forward pass with rq_actq_row. */
    bool kern = cfg.act.bits != 0 && !cfg.act.asym && cfg.act.clip == 1.0f;
    for (int64_t i = 0; i < c->n_layer; i++) {
        rq_layer *L = &m->layers[i];
        /* linears sharing an input: all on integer kernels, or none */
        rq_linear *sets[4][3] = {{&L->wq, &L->wk, &L->wv}, {&L->wo}, {&L->w_gate, &L->w_up}, {&L->w_down}};
        for (int s = 0; s < 4; s++) {
            bool all = kern;
            for (int k = 0; k < 3 && sets[s][k]; k++)
                all = all && rq_linear_kind_lowbit(sets[s][k]->kind);
            for (int k = 0; k < 3 && sets[s][k]; k++) sets[s][k]->act_bits = all ? cfg.act.bits : 0;
        }
    }
    return RQ_OK;
}

void rq_online_free(rq_online *o) { free_plans(o); }

const char *rq_online_describe(const rq_online_cfg *c, char *buf, size_t n) {
    char a[64], kv[64], r3[96], r4[96];
    if (c->act.bits) snprintf(a, sizeof a, "A%d %s clip %.2f", c->act.bits, c->act.asym ? "asym" : "sym", (double)c->act.clip);
    else snprintf(a, sizeof a, "A16");
    char g[32] = "per head";
    if (c->kv_group > 0) snprintf(g, sizeof g, "g%lld", (long long)c->kv_group);
    if (c->kv_bits) snprintf(kv, sizeof kv, "KV%d asym %s clip %.2f", c->kv_bits, g, (double)(c->kv_clip > 0 ? c->kv_clip : 1.0f));
    else snprintf(kv, sizeof kv, "KV16");
    int w = snprintf(buf, n, "%s, %s, R3 %s, R4 %s", a, kv, c->r3.kind ? rq_rot_describe(&c->r3, r3, sizeof r3) : "none",
                     c->r4.kind ? rq_rot_describe(&c->r4, r4, sizeof r4) : "none");
    /* the post-norm / per-linear rotations only when set (older descriptions unchanged) */
    const struct { const rq_rotation *r; const char *name; } more[3] = {
        {&c->r1, "R1 online"}, {&c->ri, "Ri"}, {&c->ro, "Ro"}};
    for (int i = 0; i < 3; i++) {
        size_t at = w < 0 ? 0 : (size_t)w < n ? (size_t)w : n;
        if (more[i].r->kind == RQ_ROT_NONE || at + 1 >= n) continue;
        int k = snprintf(buf + at, n - at, ", %s %s", more[i].name, rq_rot_describe(more[i].r, r3, sizeof r3));
        w = k < 0 ? w : w + k;
    }
    return buf;
}
