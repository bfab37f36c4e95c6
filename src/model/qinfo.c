#include "model/qinfo.h"

#include "format/abits.h"
#include "format/format.h"
#include "rotate/learned.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void copy_str(const rq_gguf *g, const char *key, char *dst, size_t n, const char *dflt) {
    rq_gguf_str s;
    if (rq_gguf_get_str(g, key, &s) == RQ_OK) {
        rq_escape(s.ptr, s.len, dst, n); /* shown by info, ppl: no raw control characters */
    } else {
        snprintf(dst, n, "%s", dflt);
    }
}

static bool needs_v2(const rq_qinfo *q);
static bool needs_v3(const rq_qinfo *q);

/* An optional u32 key: absent leaves *dst alone; present with a bad type or value fails. */
static rq_status opt_u32(const rq_gguf *g, const char *key, uint32_t *dst) {
    return rq_gguf_find(g, key) ? rq_gguf_get_u32(g, key, dst) : RQ_OK;
}

static rq_status read_rot(const rq_gguf *g, const char *prefix, rq_rotation *r) {
    char key[96], kind[32];
    snprintf(key, sizeof key, "rotquant.%s.kind", prefix);
    copy_str(g, key, kind, sizeof kind, "none");
    if (rq_rot_kind_parse(kind, &r->kind) != RQ_OK)
        return rq_errorf(RQ_EFORMAT, "%s: %s = '%s' is not a rotation kind", rq_gguf_path(g), key, kind);
    int64_t v = 0;
    snprintf(key, sizeof key, "rotquant.%s.n", prefix);
    r->n = rq_gguf_get_i64(g, key, &v) == RQ_OK ? v : 0;
    snprintf(key, sizeof key, "rotquant.%s.block", prefix);
    r->block = rq_gguf_get_i64(g, key, &v) == RQ_OK ? v : 0;
    snprintf(key, sizeof key, "rotquant.%s.seed", prefix);
    r->seed = rq_gguf_get_i64(g, key, &v) == RQ_OK ? (uint64_t)v : 0;
    snprintf(key, sizeof key, "rotquant.%s.random_signs", prefix);
    bool b = false;
    r->random_signs = rq_gguf_get_bool(g, key, &b) == RQ_OK && b;
    return RQ_OK;
}

rq_status rq_qinfo_read(const rq_gguf *g, rq_qinfo *q) {
    memset(q, 0, sizeof *q);
    if (!rq_gguf_find(g, "rotquant.format_version")) return RQ_OK;
    q->present = true;
    const char *p = rq_gguf_path(g);
    RQ_TRY(rq_gguf_get_u32(g, "rotquant.format_version", &q->version));
    if (q->version > RQ_QFORMAT_VERSION)
        return rq_errorf(RQ_EUNSUPPORTED, "%s: rotquant format version %u is newer than this build reads (%d)", p,
                         q->version, RQ_QFORMAT_VERSION);
    if (q->version < 1) return rq_errorf(RQ_EFORMAT, "%s: rotquant.format_version = %u (1 to 3 expected)", p, q->version);
    RQ_TRY(rq_gguf_get_u32(g, "rotquant.wbits", &q->wbits));
    RQ_TRY(rq_gguf_get_u32(g, "rotquant.group", &q->group));
    if (!rq_qpacked_bits_ok((int)q->wbits) && q->wbits != 16)
        return rq_errorf(RQ_EFORMAT, "%s: rotquant.wbits = %u (2, 3, 4, 8 or 16 expected)", p, q->wbits);
    if (q->group == 0 || q->group > (1u << 20))
        return rq_errorf(RQ_EFORMAT, "%s: rotquant.group = %u is out of range", p, q->group);
    char quant[16];
    copy_str(g, "rotquant.quantizer", quant, sizeof quant, "uniform");
    if (!strcmp(quant, "uniform")) q->quantizer = RQ_QPARAM_UNIFORM;
    else if (!strcmp(quant, "lut") && q->wbits == 2) q->quantizer = RQ_QPARAM_LUT;
    else return rq_errorf(RQ_EFORMAT, "%s: rotquant.quantizer = '%s' with %u bits is not supported", p, quant, q->wbits);
    copy_str(g, "rotquant.method", q->method, sizeof q->method, "?");
    copy_str(g, "rotquant.embd_type", q->embd_type, sizeof q->embd_type, "?");
    copy_str(g, "rotquant.calib", q->calib, sizeof q->calib, "");
    copy_str(g, "rotquant.weight_fit", q->weight_fit, sizeof q->weight_fit, "");
    copy_str(g, "rotquant.rotation_file", q->rotation_file, sizeof q->rotation_file, "");
    copy_str(g, "rotquant.rotation_init", q->rotation_init, sizeof q->rotation_init, "");
    copy_str(g, "rotquant.rotation_compose", q->rotation_compose, sizeof q->rotation_compose, "");
    RQ_TRY(read_rot(g, "r1", &q->r1));
    RQ_TRY(read_rot(g, "r2", &q->r2));
    RQ_TRY(read_rot(g, "r3", &q->r3));
    RQ_TRY(read_rot(g, "r4", &q->r4));
    RQ_TRY(read_rot(g, "ri", &q->ri));
    RQ_TRY(read_rot(g, "ro", &q->ro));
    bool online = false;
    if (rq_gguf_find(g, "rotquant.r1.online")) RQ_TRY(rq_gguf_get_bool(g, "rotquant.r1.online", &online));
    q->r1_online = online;
    if (q->r1_online && q->r1.kind == RQ_ROT_NONE)
        return rq_errorf(RQ_EFORMAT, "%s: rotquant.r1.online is set but rotquant.r1.kind is none", p);
    q->abits = q->kvbits = 16;
    uint32_t u;
    if (rq_gguf_find(g, "rotquant.abits")) {
        RQ_TRY(rq_gguf_get_u32(g, "rotquant.abits", &u));
        if (rq_abits_check(u, "rotquant.abits") != RQ_OK) return rq_error_prefix(RQ_EFORMAT, p);
        q->abits = u;
    }
    if (rq_gguf_find(g, "rotquant.kvbits")) {
        RQ_TRY(rq_gguf_get_u32(g, "rotquant.kvbits", &u));
        if (rq_kvbits_check(u, "rotquant.kvbits") != RQ_OK) return rq_error_prefix(RQ_EFORMAT, p);
        q->kvbits = u;
    }
    if (rq_gguf_find(g, "rotquant.kv_group")) RQ_TRY(rq_gguf_get_u32(g, "rotquant.kv_group", &q->kv_group));
    q->aclip = q->kv_clip = 1.0f;
    if (rq_gguf_find(g, "rotquant.aclip")) RQ_TRY(rq_gguf_get_f32(g, "rotquant.aclip", &q->aclip));
    if (rq_gguf_find(g, "rotquant.kv_clip")) RQ_TRY(rq_gguf_get_f32(g, "rotquant.kv_clip", &q->kv_clip));
    if (!(q->aclip > 0 && q->aclip <= 1) || !(q->kv_clip > 0 && q->kv_clip <= 1))
        return rq_errorf(RQ_EFORMAT, "%s: rotquant.aclip / kv_clip must be in (0, 1]", p);
    bool asym;
    if (rq_gguf_get_bool(g, "rotquant.asym", &asym) == RQ_OK) q->asym = asym;
    RQ_TRY(opt_u32(g, "rotquant.calib_n", &q->calib_n));
    RQ_TRY(opt_u32(g, "rotquant.calib_len", &q->calib_len));
    int64_t v;
    if (rq_gguf_get_i64(g, "rotquant.seed", &v) == RQ_OK) q->seed = (uint64_t)v;
    bool b;
    if (rq_gguf_get_bool(g, "rotquant.act_order", &b) == RQ_OK) q->act_order = b;
    if (rq_gguf_get_bool(g, "rotquant.fit_importance", &b) == RQ_OK) q->fit_importance = b;
    float f;
    if (rq_gguf_get_f32(g, "rotquant.damp", &f) == RQ_OK) q->damp = f;
    if (!(q->damp >= 0 && q->damp <= 1e6f)) return rq_errorf(RQ_EFORMAT, "%s: rotquant.damp = %g is not a dampening", p, q->damp);
    q->bits_per_weight = -1; /* absent: not checked against the tensors */
    if (rq_gguf_find(g, "rotquant.bits_per_weight")) {
        RQ_TRY(rq_gguf_get_f32(g, "rotquant.bits_per_weight", &f));
        if (!(f > 0 && f <= 32))
            return rq_errorf(RQ_EFORMAT, "%s: rotquant.bits_per_weight = %g is not in (0, 32]", p, (double)f);
        q->bits_per_weight = f;
    }
    if (q->version < 2 && needs_v2(q))
        return rq_errorf(RQ_EFORMAT, "%s: rotquant.format_version = 1, but its keys (W16, A/KV quantizers or R3/R4) "
                         "need version 2", p);
    if (q->version < 3 && needs_v3(q))
        return rq_errorf(RQ_EFORMAT, "%s: rotquant.format_version = %u, but its keys (R1 online, Ri, Ro) need "
                         "version 3", p, q->version);
    return RQ_OK;
}

rq_status rq_qinfo_check_model(const rq_gguf *g, const rq_qinfo *q, const rq_model_config *c, int64_t q_bytes,
                               int64_t q_weights) {
    if (!q->present) return RQ_OK;
    const char *p = rq_gguf_path(g);
    const struct { const char *name; const rq_rotation *r; int64_t n; const char *what; } rots[] = {
        {"r1", &q->r1, c->n_embd, "hidden size"}, {"r2", &q->r2, c->head_dim, "head size"},
        {"r3", &q->r3, c->head_dim, "head size"}, {"r4", &q->r4, c->n_ff, "feed-forward size"},
        {"ri", &q->ri, c->n_embd, "hidden size"}, {"ro", &q->ro, c->n_head * c->head_dim, "attention width"}};
    if (q->r1_online && !c->post_norms)
        return rq_errorf(RQ_EFORMAT, "%s: rotquant.r1.online is set, but the model has no post-norms", p);
    for (int i = 0; i < 6; i++)
        if (rots[i].r->kind != RQ_ROT_NONE && rots[i].r->n != rots[i].n)
            return rq_errorf(RQ_EFORMAT, "%s: rotquant.%s.n = %lld, the model's %s is %lld", p, rots[i].name,
                             (long long)rots[i].r->n, rots[i].what, (long long)rots[i].n);
    if (q->wbits == 16 && q_weights > 0)
        return rq_errorf(RQ_EFORMAT, "%s: rotquant.wbits = 16 (float linears), but the file has quantized linears", p);
    if (q->wbits != 16 && q_weights == 0)
        return rq_errorf(RQ_EFORMAT, "%s: rotquant.wbits = %u, but no linear layer is quantized", p, q->wbits);
    double bpw = q->wbits == 16 ? 32.0 : 8.0 * (double)q_bytes / (double)q_weights;
    /* stored as float32: 1e-4 relative is far above its rounding, far below any real change */
    if (q->bits_per_weight >= 0 && !(fabs(q->bits_per_weight - bpw) <= 1e-4 * bpw))
        return rq_errorf(RQ_EFORMAT, "%s: rotquant.bits_per_weight = %g, but the tensors hold %.4f", p,
                         q->bits_per_weight, bpw);
    return RQ_OK;
}

/* abits / kvbits as settings (format/abits.h); 0 in a zero-initialized rq_qinfo: not set, off */
static uint32_t bits_setting(uint32_t bits) { return bits ? bits : RQ_BITS_OFF; }

static bool needs_v2(const rq_qinfo *q) {
    return q->wbits == 16 || bits_setting(q->abits) != RQ_BITS_OFF || bits_setting(q->kvbits) != RQ_BITS_OFF ||
           q->r3.kind != RQ_ROT_NONE || q->r4.kind != RQ_ROT_NONE;
}

static bool needs_v3(const rq_qinfo *q) {
    return q->r1_online || q->ri.kind != RQ_ROT_NONE || q->ro.kind != RQ_ROT_NONE;
}

void rq_qinfo_write(const rq_qinfo *q, rq_gguf_writer *w) {
    bool v3 = needs_v3(q), v2 = v3 || needs_v2(q);
    rq_gguf_writer_set_u32(w, "rotquant.format_version", v3 ? 3 : v2 ? 2 : 1);
    rq_gguf_writer_set_u32(w, "rotquant.wbits", q->wbits);
    rq_gguf_writer_set_u32(w, "rotquant.group", q->group);
    rq_gguf_writer_set_str(w, "rotquant.quantizer", q->quantizer == RQ_QPARAM_LUT ? "lut" : "uniform");
    rq_gguf_writer_set_str(w, "rotquant.method", q->method);
    rq_gguf_writer_set_str(w, "rotquant.embd_type", q->embd_type);
    rq_rot_write_keys(w, "rotquant.r1", &q->r1);
    rq_rot_write_keys(w, "rotquant.r2", &q->r2);
    if (v2) {
        rq_rot_write_keys(w, "rotquant.r3", &q->r3);
        rq_rot_write_keys(w, "rotquant.r4", &q->r4);
        rq_gguf_writer_set_u32(w, "rotquant.abits", bits_setting(q->abits));
        rq_gguf_writer_set_bool(w, "rotquant.asym", q->asym);
        rq_gguf_writer_set_f32(w, "rotquant.aclip", q->aclip > 0 ? q->aclip : 1.0f);
        rq_gguf_writer_set_u32(w, "rotquant.kvbits", bits_setting(q->kvbits));
        rq_gguf_writer_set_u32(w, "rotquant.kv_group", q->kv_group);
        rq_gguf_writer_set_f32(w, "rotquant.kv_clip", q->kv_clip > 0 ? q->kv_clip : 1.0f);
    }
    if (v3) {
        rq_gguf_writer_set_bool(w, "rotquant.r1.online", q->r1_online);
        rq_rot_write_keys(w, "rotquant.ri", &q->ri);
        rq_rot_write_keys(w, "rotquant.ro", &q->ro);
    }
    rq_gguf_writer_set_str(w, "rotquant.calib", q->calib);
    rq_gguf_writer_set_u32(w, "rotquant.calib_n", q->calib_n);
    rq_gguf_writer_set_u32(w, "rotquant.calib_len", q->calib_len);
    rq_gguf_writer_set_u64(w, "rotquant.seed", q->seed);
    rq_gguf_writer_set_bool(w, "rotquant.act_order", q->act_order);
    if (q->fit_importance) rq_gguf_writer_set_bool(w, "rotquant.fit_importance", true); /* older files: absent */
    if (q->weight_fit[0]) rq_gguf_writer_set_str(w, "rotquant.weight_fit", q->weight_fit); /* older files: absent */
    rq_gguf_writer_set_f32(w, "rotquant.damp", q->damp);
    if (q->rotation_file[0]) rq_gguf_writer_set_str(w, "rotquant.rotation_file", q->rotation_file);
    if (q->rotation_init[0]) rq_gguf_writer_set_str(w, "rotquant.rotation_init", q->rotation_init);
    if (q->rotation_compose[0]) rq_gguf_writer_set_str(w, "rotquant.rotation_compose", q->rotation_compose);
    rq_gguf_writer_set_f32(w, "rotquant.bits_per_weight", (float)q->bits_per_weight);
}

void rq_qinfo_online_cfg(const rq_qinfo *q, rq_online_cfg *c) {
    memset(c, 0, sizeof *c);
    int abits = rq_bits_to_runtime(bits_setting(q->abits)), kvbits = rq_bits_to_runtime(bits_setting(q->kvbits));
    if (abits) c->act = (rq_actq){.bits = abits, .asym = q->asym, .clip = q->aclip};
    if (kvbits) {
        c->kv_bits = kvbits;
        c->kv_group = q->kv_group;
        c->kv_clip = q->kv_clip;
    }
    c->r3 = q->r3;
    c->r4 = q->r4;
    if (q->r1_online) c->r1 = q->r1;
    c->ri = q->ri;
    c->ro = q->ro;
}

const char *rq_qinfo_describe(const rq_qinfo *q, char *buf, size_t n) {
    char w[64], a[96], b[96], on[480];
    if (q->wbits == 16) snprintf(w, sizeof w, "W16 (float linears)");
    else snprintf(w, sizeof w, "W%u g%u %s %s", q->wbits, q->group, q->method,
                  q->quantizer == RQ_QPARAM_LUT ? "lut" : "uniform");
    rq_online_cfg oc;
    rq_qinfo_online_cfg(q, &oc);
    rq_online_describe(&oc, on, sizeof on);
    int k = snprintf(buf, n, "%s, %s, R1 %s, R2 %s, %.4f bits/weight (linear layers), embeddings %s", w, on,
                     rq_rot_describe(&q->r1, a, sizeof a), rq_rot_describe(&q->r2, b, sizeof b), q->bits_per_weight,
                     q->embd_type);
    if (q->rotation_file[0] && k >= 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, "; %s learned from %s (%s)%s%s", q->ri.kind == RQ_ROT_LEARNED ? "Ri" : "R1",
                 q->rotation_init[0] ? q->rotation_init : "?",
                 q->rotation_file, q->rotation_compose[0] ? ", composed with " : "", q->rotation_compose);
    return buf;
}

const char *rq_qinfo_short(const rq_qinfo *q, char *buf, size_t n) {
    snprintf(buf, n, "W%uA%uKV%u", q->present ? q->wbits : 16, bits_setting(q->abits), bits_setting(q->kvbits));
    return buf;
}

rq_status rq_qinfo_online_cfg_file(const rq_gguf *g, const rq_qinfo *q, rq_online_cfg *c, float **ri_buf) {
    *ri_buf = NULL;
    rq_qinfo_online_cfg(q, c);
    if (q->ri.kind != RQ_ROT_LEARNED) return RQ_OK;
    const char *p = rq_gguf_path(g);
    const rq_gguf_tensor *t = rq_gguf_find_tensor(g, "rotquant.ri.matrix");
    int64_t n = q->ri.n;
    if (!t) return rq_errorf(RQ_EFORMAT, "%s: Ri is learned but the file has no rotquant.ri.matrix", p);
    if (t->type != RQ_TYPE_F32 || t->n_dims != 2 || t->ne[0] != n || t->ne[1] != n)
        return rq_errorf(RQ_EFORMAT, "%s: rotquant.ri.matrix must be F32 [%lld, %lld]", p, (long long)n, (long long)n);
    float *r = rq_alloc(t->n_elements * (int64_t)sizeof(float));
    if (!r) return RQ_ENOMEM;
    rq_status s = rq_gguf_tensor_to_f32(t, r);
    for (int64_t i = 0; s == RQ_OK && i < t->n_elements; i++)
        if (!isfinite(r[i])) s = rq_errorf(RQ_EFORMAT, "%s: rotquant.ri.matrix holds a non-finite value", p);
    if (s != RQ_OK) {
        rq_free(r);
        return s;
    }
    *ri_buf = r;
    c->ri_matrix = r;
    return RQ_OK;
}

rq_status rq_qinfo_apply_online(const rq_gguf *g, rq_model *m) {
    rq_qinfo q;
    RQ_TRY(rq_qinfo_read(g, &q));
    if (!q.present) return RQ_OK;
    rq_online_cfg c;
    float *ri = NULL;
    RQ_TRY(rq_qinfo_online_cfg_file(g, &q, &c, &ri)); /* its errors name the file */
    rq_status s = rq_model_set_online(m, &c);
    rq_free(ri);
    return s == RQ_OK ? s : rq_error_prefix(s, rq_gguf_path(g));
}

rq_status rq_qinfo_linear_tensors(const rq_gguf *g, const rq_qinfo *q, const char *name, int64_t n_out,
                                  int64_t n_in, const rq_gguf_tensor **codes, const rq_gguf_tensor **params,
                                  int64_t *group) {
    char cn[256], pn[256];
    snprintf(cn, sizeof cn, "%s.codes", name);
    snprintf(pn, sizeof pn, "%s.params", name);
    const rq_gguf_tensor *tc = rq_gguf_find_tensor(g, cn), *tp = rq_gguf_find_tensor(g, pn);
    const char *p = rq_gguf_path(g);
    if (!tc || !tp) return rq_errorf(RQ_EFORMAT, "%s: missing tensor '%s'", p, tc ? pn : cn);
    int np = rq_qparam_count(q->quantizer);
    int64_t rb = rq_qpacked_row_bytes((int)q->wbits, n_in);
    if (tc->type != RQ_TYPE_I8 || tc->n_dims != 2 || tc->ne[0] != rb || tc->ne[1] != n_out)
        return rq_errorf(RQ_EFORMAT, "%s: tensor '%s' must be I8 [%lld, %lld]", p, cn, (long long)rb, (long long)n_out);
    /* the group of this tensor follows from its parameter count (rotquant.group is the
     * requested one; layers it does not divide use a smaller one) */
    int64_t ng = tp->ne[1];
    if (tp->type != RQ_TYPE_F16 || tp->n_dims != 3 || tp->ne[0] != np || ng < 1 || n_in % ng || tp->ne[2] != n_out)
        return rq_errorf(RQ_EFORMAT, "%s: tensor '%s' must be F16 [%d, groups dividing %lld, %lld]", p, pn, np,
                         (long long)n_in, (long long)n_out);
    int64_t want = rq_qpacked_group_for(q->group, n_in);
    if (n_in / ng != want)
        return rq_errorf(RQ_EFORMAT, "%s: tensor '%s' has groups of %lld; rotquant.group = %u gives %lld for an input of %lld",
                         p, pn, (long long)(n_in / ng), q->group, (long long)want, (long long)n_in);
    *codes = tc;
    *params = tp;
    *group = n_in / ng;
    return RQ_OK;
}

rq_status rq_qinfo_load_linear(const rq_gguf *g, const rq_qinfo *q, const char *name, int64_t n_out, int64_t n_in,
                               float **dst) {
    const rq_gguf_tensor *tc, *tp;
    int64_t group;
    RQ_TRY(rq_qinfo_linear_tensors(g, q, name, n_out, n_in, &tc, &tp, &group));
    float *w = rq_alloc(n_out * n_in * (int64_t)sizeof(float));
    if (!w) return rq_error_prefix(RQ_ENOMEM, name);
    rq_qpacked_dequant(q->quantizer, (int)q->wbits, group, tc->data, tp->data, n_out, n_in, w);
    *dst = w;
    return RQ_OK;
}
