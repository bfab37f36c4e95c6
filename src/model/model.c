/* Model configuration from GGUF metadata and loading of the float weights. */
#include "model/model.h"
#include "model/hf.h"
#include "model/qinfo.h"

#include "format/abits.h"
#include "format/format.h"
#include "format/qpacked.h"
#include "format/lowbit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sanity bounds on sizes read from a file (far above any real model, low enough that
 * products of two of them cannot overflow int64). */
#define MAX_DIM (INT64_C(1) << 24)
#define MAX_LAYERS 4096

static const char *arch_names[RQ_ARCH_COUNT] = {"llama", "gemma3"};

static rq_status get_int(const rq_gguf *g, const char *arch, const char *key, bool required, int64_t dflt,
                         int64_t lo, int64_t hi, int64_t *out) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    if (!rq_gguf_find(g, full)) {
        if (required) return rq_errorf(RQ_EFORMAT, "%s: missing metadata key '%s'", rq_gguf_path(g), full);
        *out = dflt;
        return RQ_OK;
    }
    RQ_TRY(rq_gguf_get_i64(g, full, out));
    if (*out < lo || *out > hi)
        return rq_errorf(RQ_EFORMAT, "%s: metadata '%s' = %lld is out of range [%lld, %lld]", rq_gguf_path(g), full,
                         (long long)*out, (long long)lo, (long long)hi);
    return RQ_OK;
}

static rq_status get_float(const rq_gguf *g, const char *arch, const char *key, bool required, float dflt,
                           float *out) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    if (!rq_gguf_find(g, full)) {
        if (required) return rq_errorf(RQ_EFORMAT, "%s: missing metadata key '%s'", rq_gguf_path(g), full);
        *out = dflt;
        return RQ_OK;
    }
    RQ_TRY(rq_gguf_get_f32(g, full, out));
    if (!isfinite(*out)) return rq_errorf(RQ_EFORMAT, "%s: metadata '%s' is not finite", rq_gguf_path(g), full);
    return RQ_OK;
}

/* Gemma-3's switches (the facts as llama.cpp's gemma3 model implements them). */
static rq_status gemma3_config(const rq_gguf *g, const char *an, rq_model_config *cfg) {
    const char *path = rq_gguf_path(g);
    /* llama.cpp scales the f32 embedding rows by sqrtf(n_embd) */
    cfg->embd_scale = sqrtf((float)cfg->n_embd);
    /* query_pre_attn_scalar: head_dim, except the 27B model (62 layers): n_embd / n_head */
    if (cfg->n_layer == 62) cfg->attn_scale = (float)(1.0 / sqrt((double)(cfg->n_embd / cfg->n_head)));
    cfg->rope_neox = true;
    cfg->qk_norm = true;
    cfg->post_norms = true;
    cfg->ffn_gelu = true;
    RQ_TRY(get_int(g, an, "attention.sliding_window", false, 0, 0, INT64_C(1) << 31, &cfg->sliding_window));
    RQ_TRY(get_int(g, an, "attention.sliding_window_pattern", false, 6, 1, MAX_LAYERS, &cfg->swa_pattern));
    RQ_TRY(get_float(g, an, "rope.freq_base_swa", false, 10000.0f, &cfg->rope_theta_swa));
    if (!(cfg->rope_theta_swa > 1.0f))
        return rq_errorf(RQ_EFORMAT, "%s: rope.freq_base_swa %g must be > 1", path, cfg->rope_theta_swa);
    float cap;
    RQ_TRY(get_float(g, an, "final_logit_softcapping", false, 0.0f, &cap));
    if (cap != 0.0f)
        return rq_errorf(RQ_EUNSUPPORTED, "%s: final_logit_softcapping %g is not supported", path, cap);
    if (cfg->has_rope_freqs)
        return rq_errorf(RQ_EUNSUPPORTED, "%s: rope_freqs.weight is not supported for gemma3", path);
    return RQ_OK;
}

rq_status rq_model_config_read(const rq_gguf *g, rq_model_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    const char *path = rq_gguf_path(g);
    rq_gguf_str a;
    if (!rq_gguf_find(g, "general.architecture"))
        return rq_errorf(RQ_EFORMAT, "%s: missing metadata key 'general.architecture'", path);
    RQ_TRY(rq_gguf_get_str(g, "general.architecture", &a));
    int arch = -1;
    for (int i = 0; i < RQ_ARCH_COUNT; i++)
        if (rq_gguf_str_eq(a, arch_names[i])) arch = i;
    if (arch < 0)
        return rq_errorf(RQ_EUNSUPPORTED, "%s: unsupported architecture '%.*s'", path, (int)(a.len > 64 ? 64 : a.len),
                         a.ptr);
    cfg->arch = (rq_arch)arch;
    const char *an = arch_names[arch];

    RQ_TRY(get_int(g, an, "block_count", true, 0, 1, MAX_LAYERS, &cfg->n_layer));
    RQ_TRY(get_int(g, an, "embedding_length", true, 0, 1, MAX_DIM, &cfg->n_embd));
    RQ_TRY(get_int(g, an, "feed_forward_length", true, 0, 1, MAX_DIM, &cfg->n_ff));
    RQ_TRY(get_int(g, an, "attention.head_count", true, 0, 1, MAX_DIM, &cfg->n_head));
    RQ_TRY(get_int(g, an, "attention.head_count_kv", false, cfg->n_head, 1, MAX_DIM, &cfg->n_head_kv));
    RQ_TRY(get_int(g, an, "context_length", false, 0, 0, INT64_C(1) << 31, &cfg->n_ctx_train));
    if (cfg->n_head % cfg->n_head_kv)
        return rq_errorf(RQ_EFORMAT, "%s: head_count %lld is not a multiple of head_count_kv %lld", path,
                         (long long)cfg->n_head, (long long)cfg->n_head_kv);
    int64_t dflt_hd = cfg->n_embd % cfg->n_head ? 0 : cfg->n_embd / cfg->n_head;
    int64_t kl, vl;
    RQ_TRY(get_int(g, an, "attention.key_length", dflt_hd == 0, dflt_hd, 1, MAX_DIM, &kl));
    RQ_TRY(get_int(g, an, "attention.value_length", false, kl, 1, MAX_DIM, &vl));
    if (kl != vl)
        return rq_errorf(RQ_EUNSUPPORTED, "%s: key_length %lld != value_length %lld is not supported", path,
                         (long long)kl, (long long)vl);
    cfg->head_dim = kl;
    if (cfg->n_head * cfg->head_dim > MAX_DIM)
        return rq_errorf(RQ_EFORMAT, "%s: head_count × key_length is too large", path);
    RQ_TRY(get_int(g, an, "rope.dimension_count", false, cfg->head_dim, 2, cfg->head_dim, &cfg->rope_dim));
    if (cfg->rope_dim % 2)
        return rq_errorf(RQ_EFORMAT, "%s: rope.dimension_count %lld is odd", path, (long long)cfg->rope_dim);
    RQ_TRY(get_float(g, an, "rope.freq_base", false, 10000.0f, &cfg->rope_theta));
    if (!(cfg->rope_theta > 1.0f))
        return rq_errorf(RQ_EFORMAT, "%s: rope.freq_base %g must be > 1", path, cfg->rope_theta);
    RQ_TRY(get_float(g, an, "attention.layer_norm_rms_epsilon", true, 0, &cfg->rms_eps));
    if (!(cfg->rms_eps >= 0 && cfg->rms_eps < 1))
        return rq_errorf(RQ_EFORMAT, "%s: layer_norm_rms_epsilon %g out of range", path, cfg->rms_eps);

    /* RoPE scaling: "none" or "linear"; anything else (yarn, longrope, ...) is refused
     * rather than silently computed wrong. */
    cfg->rope_scaling = RQ_ROPE_SCALING_NONE;
    cfg->rope_freq_scale = 1.0f;
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", an);
    float factor = 0;
    if (rq_gguf_find(g, key)) {
        rq_gguf_str st;
        RQ_TRY(rq_gguf_get_str(g, key, &st));
        if (rq_gguf_str_eq(st, "linear")) {
            cfg->rope_scaling = RQ_ROPE_SCALING_LINEAR;
            RQ_TRY(get_float(g, an, "rope.scaling.factor", true, 0, &factor));
        } else if (!rq_gguf_str_eq(st, "none")) {
            return rq_errorf(RQ_EUNSUPPORTED, "%s: rope scaling type '%.*s' is not supported", path,
                             (int)(st.len > 32 ? 32 : st.len), st.ptr);
        }
    } else {
        RQ_TRY(get_float(g, an, "rope.scale_linear", false, 0, &factor)); /* older key */
        if (factor != 0) cfg->rope_scaling = RQ_ROPE_SCALING_LINEAR;
    }
    if (cfg->rope_scaling == RQ_ROPE_SCALING_LINEAR) {
        if (!(factor > 0)) return rq_errorf(RQ_EFORMAT, "%s: rope scaling factor %g must be > 0", path, factor);
        cfg->rope_freq_scale = 1.0f / factor;
    }

    const rq_gguf_tensor *emb = rq_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return rq_errorf(RQ_EFORMAT, "%s: missing tensor 'token_embd.weight'", path);
    RQ_TRY(get_int(g, an, "vocab_size", false, emb->ne[1], 1, MAX_DIM, &cfg->n_vocab));
    cfg->tied_embeddings = rq_gguf_find_tensor(g, "output.weight") == NULL;
    cfg->has_rope_freqs = rq_gguf_find_tensor(g, "rope_freqs.weight") != NULL;

    cfg->embd_scale = 1.0f;
    cfg->attn_scale = (float)(1.0 / sqrt((double)cfg->head_dim));
    if (cfg->arch == RQ_ARCH_GEMMA3) RQ_TRY(gemma3_config(g, an, cfg));
    return RQ_OK;
}

const char *rq_model_config_describe(const rq_model_config *c, char *buf, size_t n) {
    int p = snprintf(buf, n, "%s: %lld layers, n_embd %lld, %lld heads (%lld KV) x %lld, n_ff %lld %s, vocab %lld%s, "
                     "RoPE %s base %g%s, rms eps %g", arch_names[c->arch], (long long)c->n_layer, (long long)c->n_embd,
                     (long long)c->n_head, (long long)c->n_head_kv, (long long)c->head_dim, (long long)c->n_ff,
                     c->ffn_gelu ? "GELU" : "SiLU", (long long)c->n_vocab, c->tied_embeddings ? " tied" : "",
                     c->rope_neox ? "neox" : "adjacent", (double)c->rope_theta,
                     c->rope_scaling == RQ_ROPE_SCALING_LINEAR ? " linear-scaled" : "", (double)c->rms_eps);
    if (p < (int)n && c->sliding_window > 0)
        p += snprintf(buf + p, n - (size_t)p, ", sliding window %lld on %lld of every %lld layers (RoPE base %g)",
                      (long long)c->sliding_window, (long long)(c->swa_pattern - 1), (long long)c->swa_pattern,
                      (double)c->rope_theta_swa);
    if (p < (int)n && c->qk_norm) p += snprintf(buf + p, n - (size_t)p, ", q/k norms");
    if (p < (int)n && c->post_norms) p += snprintf(buf + p, n - (size_t)p, ", post norms");
    if (p < (int)n && c->embd_scale != 1.0f)
        p += snprintf(buf + p, n - (size_t)p, ", embedding x %.4g", (double)c->embd_scale);
    return buf;
}

/* Find a tensor and check its shape [ne0, ne1] (ne1 = 1 for vectors). */
static rq_status find_tensor(const rq_gguf *g, const char *name, int64_t ne0, int64_t ne1,
                             const rq_gguf_tensor **out) {
    const rq_gguf_tensor *t = rq_gguf_find_tensor(g, name);
    if (!t) return rq_errorf(RQ_EFORMAT, "%s: missing tensor '%s'", rq_gguf_path(g), name);
    bool ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok) {
        char have[128];
        int p = snprintf(have, sizeof have, "[%lld", (long long)t->ne[0]);
        for (int i = 1; i < t->n_dims && p < (int)sizeof have; i++)
            p += snprintf(have + p, sizeof have - (size_t)p, ", %lld", (long long)t->ne[i]);
        if (p < (int)sizeof have) snprintf(have + p, sizeof have - (size_t)p, "]");
        if (ne1 == 1)
            return rq_errorf(RQ_EFORMAT, "%s: tensor '%s' has shape %s, expected [%lld]", rq_gguf_path(g), name,
                             have, (long long)ne0);
        return rq_errorf(RQ_EFORMAT, "%s: tensor '%s' has shape %s, expected [%lld, %lld]", rq_gguf_path(g), name,
                         have, (long long)ne0, (long long)ne1);
    }
    *out = t;
    return RQ_OK;
}

/* Find a tensor, check its shape, dequantize it into a new float buffer. */
static rq_status load_tensor(const rq_gguf *g, const char *name, int64_t ne0, int64_t ne1, float **dst) {
    const rq_gguf_tensor *t;
    RQ_TRY(find_tensor(g, name, ne0, ne1, &t));
    float *buf = rq_alloc(t->n_elements * (int64_t)sizeof(float));
    if (!buf) return rq_error_prefix(RQ_ENOMEM, name);
    rq_status s = rq_gguf_tensor_to_f32(t, buf);
    rq_gguf_release_tensor(g, t);
    if (s != RQ_OK) {
        rq_free(buf);
        return rq_error_prefix(s, rq_gguf_path(g));
    }
    *dst = buf;
    return RQ_OK;
}

/* What the loader does with a rotquant file's weights. */
typedef struct {
    rq_qinfo qi;
    bool packed; /* the fast path: keep quantized weights packed (not the reference path) */
    int64_t q_bytes, q_weights; /* codes + params bytes and weights of the quantized linears */
} load_ctx;

/* A matrix [n_out, n_in] kept in its stored GGUF type (kind GGUF): a copy of the rows. */
static rq_status load_gguf_rows(const rq_gguf *g, const char *name, int64_t n_out, int64_t n_in, rq_linear *l) {
    const rq_gguf_tensor *t;
    RQ_TRY(find_tensor(g, name, n_in, n_out, &t));
    if (!rq_type_can_dequantize(t->type))
        return rq_errorf(RQ_EUNSUPPORTED, "%s: tensor '%s': type %s cannot be dequantized by rotquant",
                         rq_gguf_path(g), name, rq_type_name(t->type));
    int64_t rb;
    if (!rq_type_row_bytes(t->type, n_in, &rb) || rb * n_out != t->n_bytes)
        return rq_errorf(RQ_EFORMAT, "%s: tensor '%s' of type %s cannot be read as rows of %lld", rq_gguf_path(g),
                         name, rq_type_name(t->type), (long long)n_in);
    void *data = rq_alloc(t->n_bytes);
    if (!data) return rq_error_prefix(RQ_ENOMEM, name);
    memcpy(data, t->data, (size_t)t->n_bytes);
    rq_gguf_release_tensor(g, t);
    *l = (rq_linear){.kind = RQ_LINEAR_GGUF, .n_out = n_out, .n_in = n_in, .owns_w = true, .type = t->type,
                     .data = data, .row_bytes = rb};
    return RQ_OK;
}

/* A 2-bit or 4-bit uniform quantized linear repacked from N.codes / N.params into
 * W2U/W2L/W4U blocks (format/lowbit.h). *done = false (and nothing allocated) when the layer
 * has no such layout (3 or 8 bits, or a group other than 32/64/128): the caller
 * dequantizes it. */
static rq_status load_lowbit(const rq_gguf *g, const rq_qinfo *qi, const char *name, int64_t n_out, int64_t n_in,
                         rq_linear *l, bool *done) {
    *done = false;
    const rq_gguf_tensor *tc, *tp;
    int64_t group;
    RQ_TRY(rq_qinfo_linear_tensors(g, qi, name, n_out, n_in, &tc, &tp, &group));
    const bool lut = qi->quantizer == RQ_QPARAM_LUT;
    const int bits = (int)qi->wbits;
    const int type = bits == 2 ? rq_lowbit_type(lut, group)
                     : bits == 4 && !lut ? rq_lowbit_kind_type(RQ_LOWBIT_KIND_W4U, group)
                                         : -1;
    if (type < 0) return RQ_OK;
    int64_t rb;
    RQ_ASSERT(rq_type_row_bytes(type, n_in, &rb));
    uint8_t *data = rq_alloc(n_out * rb);
    if (!data) return rq_error_prefix(RQ_ENOMEM, name);
    const int np = rq_qparam_count(qi->quantizer);
    const int64_t ng = n_in / group, crb = rq_qpacked_row_bytes(bits, n_in);
    uint8_t *codes = rq_alloc(n_in);
    float *params = rq_alloc(ng * np * (int64_t)sizeof(float));
    if (!codes || !params) {
        rq_free(codes), rq_free(params), rq_free(data);
        return rq_error_prefix(RQ_ENOMEM, name);
    }
    const uint8_t *c = tc->data;
    const rq_half *p = tp->data;
    for (int64_t r = 0; r < n_out; r++) {
        rq_qpacked_unpack_row(bits, c + r * crb, n_in, codes);
        rq_fp16_to_fp32_array(p + r * ng * np, params, ng * np);
        rq_lowbit_pack(type, 1, n_in, codes, params, data + r * rb);
    }
    rq_free(params);
    rq_free(codes);
    rq_gguf_release_tensor(g, tc);
    rq_gguf_release_tensor(g, tp);
    const rq_linear_kind kind = bits == 4 ? RQ_LINEAR_W4U : lut ? RQ_LINEAR_W2L : RQ_LINEAR_W2U;
    *l = (rq_linear){.kind = kind, .n_out = n_out, .n_in = n_in, .owns_w = true,
                     .type = type, .data = data, .row_bytes = rb};
    *done = true;
    return RQ_OK;
}

/* A linear layer: a plain GGUF tensor (float; in a rotquant file on the fast path, kept in
 * its stored type unless F32), or a rotquant-quantized one (N.codes/N.params,
 * model/qinfo.h): packed W2U/W2L/W4U on the fast path, else dequantized to float. */
static rq_status load_linear(const rq_gguf *g, load_ctx *lc, const char *name, int64_t n_out, int64_t n_in,
                             rq_linear *l) {
    *l = (rq_linear){.kind = RQ_LINEAR_F32, .n_out = n_out, .n_in = n_in, .owns_w = true};
    if (lc->qi.present && !rq_gguf_find_tensor(g, name)) {
        const rq_gguf_tensor *tc, *tp;
        int64_t group;
        RQ_TRY(rq_qinfo_linear_tensors(g, &lc->qi, name, n_out, n_in, &tc, &tp, &group));
        lc->q_bytes += tc->n_bytes + tp->n_bytes;
        lc->q_weights += n_out * n_in;
        if (lc->packed) {
            bool done;
            RQ_TRY(load_lowbit(g, &lc->qi, name, n_out, n_in, l, &done));
            if (done) return RQ_OK;
        }
        return rq_qinfo_load_linear(g, &lc->qi, name, n_out, n_in, &l->w);
    }
    if (lc->packed) {
        const rq_gguf_tensor *t = rq_gguf_find_tensor(g, name);
        if (t && t->type != RQ_TYPE_F32) return load_gguf_rows(g, name, n_out, n_in, l);
    }
    return load_tensor(g, name, n_in, n_out, &l->w);
}

static void free_linear(rq_linear *l) {
    if (l->owns_w) {
        rq_free(l->w);
        rq_free(l->data);
    }
    rq_free(l->q8r16);
    l->w = NULL;
    l->data = NULL;
    l->q8r16 = NULL;
}

void rq_model_free(rq_model *m) {
    if (!m) return;
    if (m->layers) {
        for (int64_t i = 0; i < m->cfg.n_layer; i++) {
            rq_layer *L = &m->layers[i];
            rq_free(L->attn_norm);
            rq_free(L->ffn_norm);
            free_linear(&L->wq);
            free_linear(&L->wk);
            free_linear(&L->wv);
            free_linear(&L->wo);
            free_linear(&L->w_gate);
            free_linear(&L->w_up);
            free_linear(&L->w_down);
            rq_free(L->q_norm);
            rq_free(L->k_norm);
            rq_free(L->post_attn_norm);
            rq_free(L->post_ffn_norm);
        }
        rq_free(m->layers);
    }
    free_linear(&m->output);
    free_linear(&m->embd);
    rq_free(m->tok_embd);
    rq_free(m->output_norm);
    rq_free(m->rope_freqs);
    rq_online_free(&m->online);
    rq_free(m);
}

static rq_status load_weights(const rq_gguf *g, load_ctx *lc, rq_model *m) {
    const rq_model_config *c = &m->cfg;
    int64_t q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    const rq_gguf_tensor *te = rq_gguf_find_tensor(g, "token_embd.weight");
    if (lc->packed && te && te->type != RQ_TYPE_F32)
        RQ_TRY(load_gguf_rows(g, "token_embd.weight", c->n_vocab, c->n_embd, &m->embd));
    else
        RQ_TRY(load_tensor(g, "token_embd.weight", c->n_embd, c->n_vocab, &m->tok_embd));
    RQ_TRY(load_tensor(g, "output_norm.weight", c->n_embd, 1, &m->output_norm));
    if (c->tied_embeddings) {
        m->output = m->tok_embd ? (rq_linear){.kind = RQ_LINEAR_F32, .n_out = c->n_vocab, .n_in = c->n_embd,
                                              .w = m->tok_embd, .owns_w = false}
                                : m->embd;
        m->output.owns_w = false;
    } else {
        RQ_TRY(load_linear(g, lc, "output.weight", c->n_vocab, c->n_embd, &m->output));
    }
    if (c->has_rope_freqs) {
        RQ_TRY(load_tensor(g, "rope_freqs.weight", c->rope_dim / 2, 1, &m->rope_freqs));
        for (int64_t i = 0; i < c->rope_dim / 2; i++)
            if (!(m->rope_freqs[i] > 0) || !isfinite(m->rope_freqs[i]))
                return rq_errorf(RQ_EFORMAT, "%s: rope_freqs.weight[%lld] = %g must be > 0", rq_gguf_path(g),
                                 (long long)i, m->rope_freqs[i]);
    }
    m->layers = rq_calloc(c->n_layer * (int64_t)sizeof(rq_layer));
    if (!m->layers) return RQ_ENOMEM;
    char name[96];
#define LAYER_NAME(suffix) (snprintf(name, sizeof name, "blk.%lld." suffix, (long long)i), name)
    for (int64_t i = 0; i < c->n_layer; i++) {
        rq_layer *L = &m->layers[i];
        RQ_TRY(load_tensor(g, LAYER_NAME("attn_norm.weight"), c->n_embd, 1, &L->attn_norm));
        RQ_TRY(load_linear(g, lc, LAYER_NAME("attn_q.weight"), q_dim, c->n_embd, &L->wq));
        RQ_TRY(load_linear(g, lc, LAYER_NAME("attn_k.weight"), kv_dim, c->n_embd, &L->wk));
        RQ_TRY(load_linear(g, lc, LAYER_NAME("attn_v.weight"), kv_dim, c->n_embd, &L->wv));
        RQ_TRY(load_linear(g, lc, LAYER_NAME("attn_output.weight"), c->n_embd, q_dim, &L->wo));
        RQ_TRY(load_tensor(g, LAYER_NAME("ffn_norm.weight"), c->n_embd, 1, &L->ffn_norm));
        RQ_TRY(load_linear(g, lc, LAYER_NAME("ffn_gate.weight"), c->n_ff, c->n_embd, &L->w_gate));
        RQ_TRY(load_linear(g, lc, LAYER_NAME("ffn_up.weight"), c->n_ff, c->n_embd, &L->w_up));
        RQ_TRY(load_linear(g, lc, LAYER_NAME("ffn_down.weight"), c->n_embd, c->n_ff, &L->w_down));
        if (c->qk_norm) {
            RQ_TRY(load_tensor(g, LAYER_NAME("attn_q_norm.weight"), c->head_dim, 1, &L->q_norm));
            RQ_TRY(load_tensor(g, LAYER_NAME("attn_k_norm.weight"), c->head_dim, 1, &L->k_norm));
        }
        if (c->post_norms) {
            RQ_TRY(load_tensor(g, LAYER_NAME("post_attention_norm.weight"), c->n_embd, 1, &L->post_attn_norm));
            RQ_TRY(load_tensor(g, LAYER_NAME("post_ffw_norm.weight"), c->n_embd, 1, &L->post_ffn_norm));
        }
    }
#undef LAYER_NAME
    return RQ_OK;
}

static bool env_ref_linear(void) {
    const char *e = getenv("RQ_REF_LINEAR");
    return e && *e && strcmp(e, "0") != 0;
}

rq_status rq_model_load_ex(const rq_gguf *g, const rq_model_load_opts *opts, rq_model **out) {
    *out = NULL;
    load_ctx lc = {0};
    RQ_TRY(rq_qinfo_read(g, &lc.qi));
    lc.packed = lc.qi.present && !(opts && opts->ref_linear) && !env_ref_linear();
    rq_model *m = rq_calloc(sizeof *m);
    if (!m) return RQ_ENOMEM;
    m->file_bytes = rq_gguf_file_size(g);
    rq_status s = rq_model_config_read(g, &m->cfg);
    if (s == RQ_OK) s = load_weights(g, &lc, m);
    if (s == RQ_OK) s = rq_qinfo_check_model(g, &lc.qi, &m->cfg, lc.q_bytes, lc.q_weights);
    if (s == RQ_OK) s = rq_qinfo_apply_online(g, m); /* quantizers and online rotations of a rotquant file */
    if (s == RQ_OK) s = rq_linear_prepare_q8(&m->output); /* the Q8_0 lm_head's int8 layout under --a16 q8 */
    rq_gguf_release_pages(g);
    if (s != RQ_OK) {
        rq_model_free(m);
        return s;
    }
    *out = m;
    return RQ_OK;
}

rq_status rq_model_load(const rq_gguf *g, rq_model **out) { return rq_model_load_ex(g, NULL, out); }

rq_status rq_model_load_file(const char *path, rq_model **out) {
    *out = NULL;
    rq_gguf *g;
    RQ_TRY(rq_model_open(path, &g)); /* a GGUF file or a Hugging Face checkpoint directory */
    rq_status s = rq_model_load(g, out);
    rq_gguf_close(g);
    return s;
}

int64_t rq_model_n_params(const rq_model *m) {
    const rq_model_config *c = &m->cfg;
    int64_t q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    int64_t per_layer = 2 * c->n_embd + 2 * q_dim * c->n_embd + 2 * kv_dim * c->n_embd + 3 * c->n_ff * c->n_embd;
    if (c->qk_norm) per_layer += 2 * c->head_dim;
    if (c->post_norms) per_layer += 2 * c->n_embd;
    int64_t n = c->n_layer * per_layer + c->n_vocab * c->n_embd + c->n_embd;
    if (!c->tied_embeddings) n += c->n_vocab * c->n_embd;
    return n;
}

static int64_t linear_bytes(const rq_linear *l) {
    if (l->kind == RQ_LINEAR_F32) return l->w ? l->n_out * l->n_in * (int64_t)sizeof(float) : 0;
    return l->data ? l->n_out * l->row_bytes : 0;
}

int64_t rq_model_weight_bytes(const rq_model *m) {
    const rq_model_config *c = &m->cfg;
    int64_t n = linear_bytes(&m->embd) + c->n_embd * (int64_t)sizeof(float); /* + output_norm */
    if (m->tok_embd) n += c->n_vocab * c->n_embd * (int64_t)sizeof(float);
    if (m->output.owns_w) n += linear_bytes(&m->output);
    if (m->output.q8r16) n += m->output.n_out * m->output.row_bytes; /* its int8 layout, as many bytes */
    if (m->rope_freqs) n += c->rope_dim / 2 * (int64_t)sizeof(float);
    for (int64_t i = 0; i < c->n_layer; i++) {
        const rq_layer *L = &m->layers[i];
        n += 2 * c->n_embd * (int64_t)sizeof(float);
        if (c->qk_norm) n += 2 * c->head_dim * (int64_t)sizeof(float);
        if (c->post_norms) n += 2 * c->n_embd * (int64_t)sizeof(float);
        n += linear_bytes(&L->wq) + linear_bytes(&L->wk) + linear_bytes(&L->wv) + linear_bytes(&L->wo);
        n += linear_bytes(&L->w_gate) + linear_bytes(&L->w_up) + linear_bytes(&L->w_down);
    }
    return n;
}

rq_status rq_model_set_act_bits(rq_model *m, int abits) {
    RQ_TRY(rq_abits_check(abits, "activation bits"));
    rq_online_cfg c = m->online.cfg;
    c.act = (rq_actq){.bits = rq_bits_to_runtime(abits), .asym = false, .clip = 1.0f};
    return rq_model_set_online(m, &c);
}

void rq_model_embed(const rq_model *m, const int32_t *tokens, int64_t n, float *x) {
    const int64_t d = m->cfg.n_embd;
    for (int64_t i = 0; i < n; i++) {
        RQ_ASSERT(tokens[i] >= 0 && tokens[i] < m->cfg.n_vocab);
        if (m->tok_embd) {
            memcpy(x + i * d, m->tok_embd + (int64_t)tokens[i] * d, (size_t)d * sizeof(float));
        } else {
            const rq_type_traits *tr = rq_type_traits_get(m->embd.type);
            tr->to_float((const uint8_t *)m->embd.data + (int64_t)tokens[i] * m->embd.row_bytes, x + i * d, d);
        }
        if (m->cfg.embd_scale != 1.0f)
            for (int64_t k = 0; k < d; k++) x[i * d + k] *= m->cfg.embd_scale;
    }
}

static const char *linear_type_name(const rq_linear *l) {
    return l->kind == RQ_LINEAR_F32 ? "F32" : rq_type_name(l->type);
}

const char *rq_model_describe(const rq_model *m, char *buf, size_t n) {
    /* count the block linears per storage type (at most a few distinct ones) */
    const char *names[8];
    int counts[8], nn = 0, int_kernels = 0;
    for (int64_t i = 0; i < m->cfg.n_layer; i++) {
        const rq_layer *L = &m->layers[i];
        const rq_linear *ls[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < 7; k++) {
            const char *t = linear_type_name(ls[k]);
            int j = 0;
            while (j < nn && strcmp(names[j], t)) j++;
            if (j == nn && nn < 8) names[nn] = t, counts[nn++] = 0;
            if (j < nn) counts[j]++;
            if (ls[k]->act_bits) int_kernels++;
        }
    }
    int p = snprintf(buf, n, "blocks:");
    for (int j = 0; j < nn && p < (int)n; j++)
        p += snprintf(buf + p, n - (size_t)p, "%s %d %s", j ? "," : "", counts[j], names[j]);
    if (p < (int)n)
        p += snprintf(buf + p, n - (size_t)p, "; lm_head %s; embedding %s; %.1f MiB of weights",
                      linear_type_name(&m->output), m->tok_embd ? "F32" : rq_type_name(m->embd.type),
                      (double)rq_model_weight_bytes(m) / 1048576.0);
    const rq_actq *aq = &m->online.cfg.act;
    if (p < (int)n && aq->bits == 0) p += snprintf(buf + p, n - (size_t)p, "; activations float");
    else if (p < (int)n)
        p += snprintf(buf + p, n - (size_t)p, "; activations A%d %s clip %.2f (%d linears on integer kernels)",
                      aq->bits, aq->asym ? "asym" : "sym", (double)aq->clip, int_kernels);
    return buf;
}
