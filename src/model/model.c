/* Model configuration from GGUF metadata and loading of the float weights. */
#include "model/model.h"
#include "model/qinfo.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Sanity bounds on sizes read from a file (far above any real model, low enough that
 * products of two of them cannot overflow int64). */
#define MAX_DIM (INT64_C(1) << 24)
#define MAX_LAYERS 4096

static const char *arch_names[RQ_ARCH_COUNT] = {"llama"};

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
    return RQ_OK;
}

/* Find a tensor, check its shape [ne0, ne1] (ne1 = 1 for vectors), dequantize it into a
 * new float buffer. */
static rq_status load_tensor(const rq_gguf *g, const char *name, int64_t ne0, int64_t ne1, float **dst) {
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
    float *buf = rq_alloc(t->n_elements * (int64_t)sizeof(float));
    if (!buf) return rq_error_prefix(RQ_ENOMEM, name);
    rq_status s = rq_gguf_tensor_to_f32(t, buf);
    if (s != RQ_OK) {
        rq_free(buf);
        return rq_error_prefix(s, rq_gguf_path(g));
    }
    *dst = buf;
    return RQ_OK;
}

/* A linear layer: a plain GGUF tensor, or a rotquant-quantized one (N.codes/N.params,
 * model/qinfo.h), dequantized to float (the reference path). */
static rq_status load_linear(const rq_gguf *g, const char *name, int64_t n_out, int64_t n_in, rq_linear *l) {
    l->kind = RQ_LINEAR_F32;
    l->n_out = n_out;
    l->n_in = n_in;
    l->owns_w = true;
    rq_qinfo qi;
    RQ_TRY(rq_qinfo_read(g, &qi));
    if (qi.present && !rq_gguf_find_tensor(g, name)) return rq_qinfo_load_linear(g, &qi, name, n_out, n_in, &l->w);
    return load_tensor(g, name, n_in, n_out, &l->w);
}

static void free_linear(rq_linear *l) {
    if (l->owns_w) rq_free(l->w);
    l->w = NULL;
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
        }
        rq_free(m->layers);
    }
    free_linear(&m->output);
    rq_free(m->tok_embd);
    rq_free(m->output_norm);
    rq_free(m->rope_freqs);
    rq_online_free(&m->online);
    rq_free(m);
}

static rq_status load_weights(const rq_gguf *g, rq_model *m) {
    const rq_model_config *c = &m->cfg;
    int64_t q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    RQ_TRY(load_tensor(g, "token_embd.weight", c->n_embd, c->n_vocab, &m->tok_embd));
    RQ_TRY(load_tensor(g, "output_norm.weight", c->n_embd, 1, &m->output_norm));
    if (c->tied_embeddings) {
        m->output = (rq_linear){.kind = RQ_LINEAR_F32, .n_out = c->n_vocab, .n_in = c->n_embd, .w = m->tok_embd,
                                .owns_w = false};
    } else {
        RQ_TRY(load_linear(g, "output.weight", c->n_vocab, c->n_embd, &m->output));
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
        RQ_TRY(load_linear(g, LAYER_NAME("attn_q.weight"), q_dim, c->n_embd, &L->wq));
        RQ_TRY(load_linear(g, LAYER_NAME("attn_k.weight"), kv_dim, c->n_embd, &L->wk));
        RQ_TRY(load_linear(g, LAYER_NAME("attn_v.weight"), kv_dim, c->n_embd, &L->wv));
        RQ_TRY(load_linear(g, LAYER_NAME("attn_output.weight"), c->n_embd, q_dim, &L->wo));
        RQ_TRY(load_tensor(g, LAYER_NAME("ffn_norm.weight"), c->n_embd, 1, &L->ffn_norm));
        RQ_TRY(load_linear(g, LAYER_NAME("ffn_gate.weight"), c->n_ff, c->n_embd, &L->w_gate));
        RQ_TRY(load_linear(g, LAYER_NAME("ffn_up.weight"), c->n_ff, c->n_embd, &L->w_up));
        RQ_TRY(load_linear(g, LAYER_NAME("ffn_down.weight"), c->n_embd, c->n_ff, &L->w_down));
    }
#undef LAYER_NAME
    return RQ_OK;
}

rq_status rq_model_load(const rq_gguf *g, rq_model **out) {
    *out = NULL;
    rq_model *m = rq_calloc(sizeof *m);
    if (!m) return RQ_ENOMEM;
    rq_status s = rq_model_config_read(g, &m->cfg);
    if (s == RQ_OK) s = load_weights(g, m);
    if (s == RQ_OK) s = rq_qinfo_apply_online(g, m); /* quantizers and online rotations of a rotquant file */
    if (s != RQ_OK) {
        rq_model_free(m);
        return s;
    }
    *out = m;
    return RQ_OK;
}

rq_status rq_model_load_file(const char *path, rq_model **out) {
    *out = NULL;
    rq_gguf *g;
    RQ_TRY(rq_gguf_open(path, &g));
    rq_status s = rq_model_load(g, out);
    rq_gguf_close(g);
    return s;
}

int64_t rq_model_n_params(const rq_model *m) {
    const rq_model_config *c = &m->cfg;
    int64_t q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    int64_t per_layer = 2 * c->n_embd + 2 * q_dim * c->n_embd + 2 * kv_dim * c->n_embd + 3 * c->n_ff * c->n_embd;
    int64_t n = c->n_layer * per_layer + c->n_vocab * c->n_embd + c->n_embd;
    if (!c->tied_embeddings) n += c->n_vocab * c->n_embd;
    return n;
}
