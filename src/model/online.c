/* Run-time quantizers and online rotations of a model (model.h, rq_model_set_online). */
#include "model/model.h"

#include "format/abits.h"
#include "format/kv.h"

#include <stdio.h>
#include <string.h>

static rq_status check_rot(const rq_rotation *r, const char *name, int64_t n, const char *what) {
    if (r->kind == RQ_ROT_NONE) return RQ_OK;
    if (r->kind == RQ_ROT_ORTHOGONAL || r->kind == RQ_ROT_LEARNED)
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
    rq_rot_plan_free(o->p3);
    rq_rot_plan_free(o->p4);
    o->p3 = o->p4 = NULL;
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
    RQ_TRY(check_rot(&cfg.r3, "R3", c->head_dim, "head_dim"));
    RQ_TRY(check_rot(&cfg.r4, "R4", c->n_ff, "feed-forward size"));
    rq_rot_plan *p3 = NULL, *p4 = NULL;
    if (cfg.r3.kind != RQ_ROT_NONE) RQ_TRY(rq_rot_plan_build(&cfg.r3, &p3));
    if (cfg.r4.kind != RQ_ROT_NONE) {
        rq_status s = rq_rot_plan_build(&cfg.r4, &p4);
        if (s != RQ_OK) {
            rq_rot_plan_free(p3);
            return s;
        }
    }
    free_plans(&m->online);
    m->online.cfg = cfg;
    m->online.p3 = p3;
    m->online.p4 = p4;
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
    snprintf(buf, n, "%s, %s, R3 %s, R4 %s", a, kv, c->r3.kind ? rq_rot_describe(&c->r3, r3, sizeof r3) : "none",
             c->r4.kind ? rq_rot_describe(&c->r4, r4, sizeof r4) : "none");
    return buf;
}
