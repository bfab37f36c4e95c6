/* Hugging Face checkpoint directory -> in-memory GGUF (model/hf.h). */
#include "model/hf.h"

#include "format/format.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "text/tokenizer_hf.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Sanity bounds on config.json's sizes (those of model.c's GGUF reader). */
#define HF_MAX_DIM (INT64_C(1) << 24)
#define HF_MAX_LAYERS 4096

bool rq_hf_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

rq_status rq_model_open(const char *path, rq_gguf **out) {
    return rq_hf_is_dir(path) ? rq_hf_open(path, out) : rq_gguf_open(path, out);
}

/* ---- config.json ------------------------------------------------------------------- */

typedef struct {
    const char *path; /* config.json, for messages */
    const rq_json *root;
} cfg_ctx;

/* An integer key: required, or dflt when absent (or null). */
static rq_status cfg_int(const cfg_ctx *c, const char *key, bool required, int64_t dflt, int64_t lo, int64_t hi,
                         int64_t *out) {
    const rq_json *v = rq_json_get(c->root, key);
    if (!v || v->type == RQ_JSON_NULL) {
        if (required) return rq_errorf(RQ_EFORMAT, "%s: missing \"%s\"", c->path, key);
        *out = dflt;
        return RQ_OK;
    }
    if (v->type != RQ_JSON_NUMBER || v->number != floor(v->number) || v->number < (double)lo || v->number > (double)hi)
        return rq_errorf(RQ_EFORMAT, "%s: \"%s\" must be an integer in [%lld, %lld]", c->path, key, (long long)lo,
                         (long long)hi);
    *out = (int64_t)v->number;
    return RQ_OK;
}

static rq_status cfg_float(const cfg_ctx *c, const char *key, bool required, double dflt, double *out) {
    const rq_json *v = rq_json_get(c->root, key);
    if (!v || v->type == RQ_JSON_NULL) {
        if (required) return rq_errorf(RQ_EFORMAT, "%s: missing \"%s\"", c->path, key);
        *out = dflt;
        return RQ_OK;
    }
    if (v->type != RQ_JSON_NUMBER) return rq_errorf(RQ_EFORMAT, "%s: \"%s\" must be a number", c->path, key);
    *out = v->number;
    return RQ_OK;
}

static rq_status cfg_bool(const cfg_ctx *c, const char *key, bool dflt, bool *out) {
    const rq_json *v = rq_json_get(c->root, key);
    if (!v || v->type == RQ_JSON_NULL) *out = dflt;
    else if (v->type == RQ_JSON_TRUE || v->type == RQ_JSON_FALSE) *out = v->type == RQ_JSON_TRUE;
    else return rq_errorf(RQ_EFORMAT, "%s: \"%s\" must be true or false", c->path, key);
    return RQ_OK;
}

static bool str_is(const rq_json *v, const char *s) {
    return v && v->type == RQ_JSON_STRING && (size_t)v->len == strlen(s) && !memcmp(v->str, s, (size_t)v->len);
}

/* What the tensors are checked against. */
typedef struct {
    const char *arch; /* "llama" or "gemma3" (general.architecture) */
    int64_t n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, n_vocab;
    bool tied;
} hf_dims;

/* Set "ARCH.key" to an u32 / f32. */
static void set_u32(rq_gguf_writer *w, const hf_dims *d, const char *key, int64_t v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", d->arch, key);
    rq_gguf_writer_set_u32(w, k, (uint32_t)v);
}
static void set_f32(rq_gguf_writer *w, const hf_dims *d, const char *key, double v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", d->arch, key);
    rq_gguf_writer_set_f32(w, k, (float)v);
}

/* The keys LLaMA and Gemma-3 share -> ARCH.* keys. */
static rq_status common_config(const cfg_ctx *c, rq_gguf_writer *w, hf_dims *d, bool tied_default) {
    RQ_TRY(cfg_int(c, "hidden_size", true, 0, 1, HF_MAX_DIM, &d->n_embd));
    RQ_TRY(cfg_int(c, "intermediate_size", true, 0, 1, HF_MAX_DIM, &d->n_ff));
    RQ_TRY(cfg_int(c, "num_hidden_layers", true, 0, 1, HF_MAX_LAYERS, &d->n_layer));
    RQ_TRY(cfg_int(c, "num_attention_heads", true, 0, 1, HF_MAX_DIM, &d->n_head));
    RQ_TRY(cfg_int(c, "num_key_value_heads", false, d->n_head, 1, HF_MAX_DIM, &d->n_head_kv));
    RQ_TRY(cfg_int(c, "vocab_size", true, 0, 1, HF_MAX_DIM, &d->n_vocab));
    if (d->n_head % d->n_head_kv)
        return rq_errorf(RQ_EFORMAT, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
                         c->path, (long long)d->n_head, (long long)d->n_head_kv);
    int64_t dflt_hd = d->n_embd % d->n_head ? 0 : d->n_embd / d->n_head;
    RQ_TRY(cfg_int(c, "head_dim", dflt_hd == 0, dflt_hd, 2, HF_MAX_DIM, &d->head_dim));
    if (d->head_dim % 2) return rq_errorf(RQ_EFORMAT, "%s: head_dim %lld is odd", c->path, (long long)d->head_dim);
    if (d->n_head * d->head_dim > HF_MAX_DIM) return rq_errorf(RQ_EFORMAT, "%s: heads × head_dim is too large", c->path);
    int64_t n_ctx;
    RQ_TRY(cfg_int(c, "max_position_embeddings", false, 0, 0, INT64_C(1) << 31, &n_ctx));
    double eps, theta;
    RQ_TRY(cfg_float(c, "rms_norm_eps", true, 0, &eps));
    RQ_TRY(cfg_float(c, "rope_theta", false, 10000.0, &theta));
    if (!(eps >= 0 && eps < 1)) return rq_errorf(RQ_EFORMAT, "%s: rms_norm_eps %g out of range", c->path, eps);
    if (!(theta > 1 && theta < 1e30)) return rq_errorf(RQ_EFORMAT, "%s: rope_theta %g must be > 1", c->path, theta);
    RQ_TRY(cfg_bool(c, "tie_word_embeddings", tied_default, &d->tied));
    bool bias;
    RQ_TRY(cfg_bool(c, "attention_bias", false, &bias));
    if (bias) return rq_errorf(RQ_EUNSUPPORTED, "%s: attention_bias is not supported", c->path);
    RQ_TRY(cfg_bool(c, "mlp_bias", false, &bias));
    if (bias) return rq_errorf(RQ_EUNSUPPORTED, "%s: mlp_bias is not supported", c->path);

    rq_gguf_writer_set_str(w, "general.architecture", d->arch);
    set_u32(w, d, "block_count", d->n_layer);
    set_u32(w, d, "embedding_length", d->n_embd);
    set_u32(w, d, "feed_forward_length", d->n_ff);
    set_u32(w, d, "attention.head_count", d->n_head);
    set_u32(w, d, "attention.head_count_kv", d->n_head_kv);
    if (n_ctx) set_u32(w, d, "context_length", n_ctx);
    if (d->head_dim != dflt_hd) {
        set_u32(w, d, "attention.key_length", d->head_dim);
        set_u32(w, d, "attention.value_length", d->head_dim);
    }
    set_f32(w, d, "rope.freq_base", theta);
    set_f32(w, d, "attention.layer_norm_rms_epsilon", eps);
    set_u32(w, d, "vocab_size", d->n_vocab);

    const rq_json *rs = rq_json_get(c->root, "rope_scaling");
    if (rs && rs->type != RQ_JSON_NULL) {
        const rq_json *ty = rq_json_get(rs, "rope_type");
        if (!ty) ty = rq_json_get(rs, "type");
        const rq_json *f = rq_json_get(rs, "factor");
        if (!str_is(ty, "linear"))
            return rq_errorf(RQ_EUNSUPPORTED, "%s: rope_scaling type '%.32s' is not supported (linear)", c->path,
                             ty && ty->type == RQ_JSON_STRING ? ty->str : "?");
        if (!f || f->type != RQ_JSON_NUMBER || !(f->number > 0))
            return rq_errorf(RQ_EFORMAT, "%s: rope_scaling.factor must be a number > 0", c->path);
        char k[128];
        snprintf(k, sizeof k, "%s.rope.scaling.type", d->arch);
        rq_gguf_writer_set_str(w, k, "linear");
        set_f32(w, d, "rope.scaling.factor", f->number);
    }
    return RQ_OK;
}

/* The activation key (hidden_act or hidden_activation) must be `want`. */
static rq_status check_act(const cfg_ctx *c, const char *key, const char *want) {
    const rq_json *act = rq_json_get(c->root, key);
    if (act && !str_is(act, want))
        return rq_errorf(RQ_EUNSUPPORTED, "%s: %s '%.32s' is not supported (%s)", c->path, key,
                         act->type == RQ_JSON_STRING ? act->str : "?", want);
    return RQ_OK;
}

/* LLaMA's config.json -> llama.* keys (LlamaConfig's defaults: untied). */
static rq_status llama_config(const cfg_ctx *c, rq_gguf_writer *w, hf_dims *d) {
    d->arch = "llama";
    RQ_TRY(common_config(c, w, d, false));
    RQ_TRY(check_act(c, "hidden_act", "silu"));
    set_u32(w, d, "rope.dimension_count", d->head_dim);
    return RQ_OK;
}

/* Gemma-3's (text model) config.json -> gemma3.* keys, what model.c's gemma3 reader
 * needs (Gemma3TextConfig's defaults: tied, sliding window every layer but each 6th). */
static rq_status gemma3_config(const cfg_ctx *c, rq_gguf_writer *w, hf_dims *d) {
    d->arch = "gemma3";
    RQ_TRY(common_config(c, w, d, true));
    RQ_TRY(check_act(c, "hidden_activation", "gelu_pytorch_tanh"));
    RQ_TRY(check_act(c, "hidden_act", "gelu_pytorch_tanh"));
    double cap;
    RQ_TRY(cfg_float(c, "final_logit_softcapping", false, 0, &cap));
    if (cap != 0) return rq_errorf(RQ_EUNSUPPORTED, "%s: final_logit_softcapping is not supported", c->path);
    RQ_TRY(cfg_float(c, "attn_logit_softcapping", false, 0, &cap));
    if (cap != 0) return rq_errorf(RQ_EUNSUPPORTED, "%s: attn_logit_softcapping is not supported", c->path);
    /* attention scale 1/sqrt(query_pre_attn_scalar): model.c uses head_dim, or n_embd/n_head
     * for the 62-layer model */
    int64_t qs, want = d->n_layer == 62 ? d->n_embd / d->n_head : d->head_dim;
    RQ_TRY(cfg_int(c, "query_pre_attn_scalar", false, want, 1, HF_MAX_DIM, &qs));
    if (qs != want)
        return rq_errorf(RQ_EUNSUPPORTED, "%s: query_pre_attn_scalar %lld is not supported (%lld)", c->path,
                         (long long)qs, (long long)want);
    int64_t window, pattern;
    RQ_TRY(cfg_int(c, "sliding_window", false, 0, 0, INT64_C(1) << 31, &window));
    RQ_TRY(cfg_int(c, "sliding_window_pattern", false, 6, 1, HF_MAX_LAYERS, &pattern));
    const rq_json *lt = rq_json_get(c->root, "layer_types");
    if (lt && lt->type != RQ_JSON_NULL) { /* newer configs list each layer: find the period */
        if (lt->type != RQ_JSON_ARRAY || lt->len != d->n_layer)
            return rq_errorf(RQ_EFORMAT, "%s: layer_types must list num_hidden_layers entries", c->path);
        pattern = 0;
        for (int64_t l = 0; l < lt->len && !pattern; l++)
            if (str_is(lt->items[l], "full_attention")) pattern = l + 1;
        if (!pattern) pattern = d->n_layer + 1; /* all local */
        for (int64_t l = 0; l < lt->len; l++) {
            bool local = l % pattern < pattern - 1;
            if (!str_is(lt->items[l], local ? "sliding_attention" : "full_attention"))
                return rq_errorf(RQ_EUNSUPPORTED, "%s: layer_types[%lld] breaks the pattern of one full-attention "
                                 "layer every %lld", c->path, (long long)l, (long long)pattern);
        }
    }
    double theta_swa;
    RQ_TRY(cfg_float(c, "rope_local_base_freq", false, 10000.0, &theta_swa));
    if (!(theta_swa > 1 && theta_swa < 1e30))
        return rq_errorf(RQ_EFORMAT, "%s: rope_local_base_freq %g must be > 1", c->path, theta_swa);
    if (window) {
        set_u32(w, d, "attention.sliding_window", window);
        set_u32(w, d, "attention.sliding_window_pattern", pattern);
    }
    set_f32(w, d, "rope.freq_base_swa", theta_swa);
    return RQ_OK;
}

/* ---- tensors ----------------------------------------------------------------------- */

typedef struct {
    const rq_safetensors *st;
    rq_gguf_writer *w;
    bool *used;      /* [n_tensors] */
    void **keep;     /* buffers the writer references until the image is built */
    int64_t n_keep, cap_keep;
} tensor_ctx;

static void keep(tensor_ctx *t, void *p) {
    if (t->n_keep == t->cap_keep) {
        int64_t nc = t->cap_keep ? 2 * t->cap_keep : 64;
        void **n = rq_xalloc(nc * (int64_t)sizeof(void *));
        if (t->n_keep) memcpy(n, t->keep, (size_t)t->n_keep * sizeof(void *));
        rq_free(t->keep);
        t->keep = n;
        t->cap_keep = nc;
    }
    t->keep[t->n_keep++] = p;
}

static int ggml_type_of(rq_st_dtype d) {
    switch (d) {
    case RQ_ST_F32: return RQ_TYPE_F32;
    case RQ_ST_F16: return RQ_TYPE_F16;
    case RQ_ST_BF16: return RQ_TYPE_BF16;
    default: return -1;
    }
}

/* How a tensor is carried over. */
enum {
    TX_AS_IS = 0,
    TX_PERMUTE_Q = 1, /* rows permuted per query head (LLaMA q_proj) */
    TX_PERMUTE_K = 2, /* rows permuted per KV head (LLaMA k_proj) */
    TX_SHIFT = 3,     /* float32 w + 1 (Gemma's norm scales: the GGUF holds 1 + w) */
};

/* Add HF tensor `hf` as GGUF tensor `gg`, checking its shape [rows, cols] (cols 0: a
 * vector [rows]); `tx` as above. */
static rq_status add_tensor(tensor_ctx *t, const hf_dims *dm, const char *hf, const char *gg, int64_t rows,
                            int64_t cols, int tx, const char *what) {
    const rq_st_tensor *x = rq_safetensors_find(t->st, hf);
    const char *dir = rq_safetensors_path(t->st);
    if (!x) return rq_errorf(RQ_EFORMAT, "%s: missing tensor '%s'", dir, hf);
    t->used[x - rq_safetensors_tensor_at(t->st, 0)] = true;
    bool ok = cols ? x->n_dims == 2 && x->shape[0] == rows && x->shape[1] == cols : x->n_dims == 1 && x->shape[0] == rows;
    if (!ok) {
        char have[160];
        int p = snprintf(have, sizeof have, "[");
        for (int i = 0; i < x->n_dims && p < (int)sizeof have; i++)
            p += snprintf(have + p, sizeof have - (size_t)p, "%s%lld", i ? ", " : "", (long long)x->shape[i]);
        if (p < (int)sizeof have) snprintf(have + p, sizeof have - (size_t)p, "]");
        if (cols)
            return rq_errorf(RQ_EFORMAT, "%s: tensor '%s' has shape %s, config.json says [%lld, %lld] (%s)", dir, hf,
                             have, (long long)rows, (long long)cols, what);
        return rq_errorf(RQ_EFORMAT, "%s: tensor '%s' has shape %s, config.json says [%lld] (%s)", dir, hf, have,
                         (long long)rows, what);
    }
    int type = ggml_type_of(x->dtype);
    if (type < 0)
        return rq_errorf(RQ_EUNSUPPORTED, "%s: tensor '%s' has dtype %s (F32, F16 and BF16 are read)", dir, hf,
                         rq_st_dtype_name(x->dtype));
    const void *data = x->data;
    int64_t n_bytes = x->n_bytes;
    if (tx == TX_PERMUTE_Q || tx == TX_PERMUTE_K) {
        const int64_t heads = tx == TX_PERMUTE_Q ? dm->n_head : dm->n_head_kv;
        const int64_t d = rows / heads, half = d / 2, rb = cols * rq_st_dtype_size(x->dtype);
        RQ_ASSERT(d * heads == rows && d % 2 == 0);
        uint8_t *p = rq_alloc(x->n_bytes);
        if (!p) return rq_error_prefix(RQ_ENOMEM, hf);
        keep(t, p);
        const uint8_t *src = x->data;
        /* GGUF row h·d + 2i + j is HF row h·d + j·d/2 + i */
        for (int64_t h = 0; h < heads; h++)
            for (int64_t i = 0; i < half; i++)
                for (int64_t j = 0; j < 2; j++)
                    memcpy(p + (h * d + 2 * i + j) * rb, src + (h * d + j * half + i) * rb, (size_t)rb);
        data = p;
    } else if (tx == TX_SHIFT) {
        float *f = rq_alloc(x->n_elements * (int64_t)sizeof(float));
        if (!f) return rq_error_prefix(RQ_ENOMEM, hf);
        keep(t, f);
        RQ_TRY(rq_safetensors_to_f32(x, f));
        for (int64_t i = 0; i < x->n_elements; i++) f[i] += 1.0f;
        data = f;
        type = RQ_TYPE_F32;
        n_bytes = x->n_elements * (int64_t)sizeof(float);
    }
    int64_t ne[2] = {cols ? cols : rows, cols ? rows : 1};
    return rq_gguf_writer_add_tensor(t->w, gg, type, cols ? 2 : 1, ne, data, n_bytes);
}

/* One tensor of every layer: HF name after "model.layers.N.", GGUF name after "blk.N.",
 * shape (0 n_embd, 1 n_ff, 2 q_dim, 3 kv_dim, 4 head_dim; cols -1: a vector), transform. */
typedef struct {
    const char *hf, *gg;
    int rows, cols, tx;
    const char *what;
} layer_tensor;

static const layer_tensor llama_layer[] = {
    {"input_layernorm.weight", "attn_norm.weight", 0, -1, TX_AS_IS, "hidden_size"},
    {"self_attn.q_proj.weight", "attn_q.weight", 2, 0, TX_PERMUTE_Q, "num_attention_heads × head_dim, hidden_size"},
    {"self_attn.k_proj.weight", "attn_k.weight", 3, 0, TX_PERMUTE_K, "num_key_value_heads × head_dim, hidden_size"},
    {"self_attn.v_proj.weight", "attn_v.weight", 3, 0, TX_AS_IS, "num_key_value_heads × head_dim, hidden_size"},
    {"self_attn.o_proj.weight", "attn_output.weight", 0, 2, TX_AS_IS, "hidden_size, num_attention_heads × head_dim"},
    {"post_attention_layernorm.weight", "ffn_norm.weight", 0, -1, TX_AS_IS, "hidden_size"},
    {"mlp.gate_proj.weight", "ffn_gate.weight", 1, 0, TX_AS_IS, "intermediate_size, hidden_size"},
    {"mlp.up_proj.weight", "ffn_up.weight", 1, 0, TX_AS_IS, "intermediate_size, hidden_size"},
    {"mlp.down_proj.weight", "ffn_down.weight", 0, 1, TX_AS_IS, "hidden_size, intermediate_size"},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* Gemma-3 (llama.cpp's gemma3 names): q/k not permuted (RoPE on the NEOX halves), every
 * norm scale stored as 1 + w. */
static const layer_tensor gemma3_layer[] = {
    {"input_layernorm.weight", "attn_norm.weight", 0, -1, TX_SHIFT, "hidden_size"},
    {"self_attn.q_proj.weight", "attn_q.weight", 2, 0, TX_AS_IS, "num_attention_heads × head_dim, hidden_size"},
    {"self_attn.k_proj.weight", "attn_k.weight", 3, 0, TX_AS_IS, "num_key_value_heads × head_dim, hidden_size"},
    {"self_attn.v_proj.weight", "attn_v.weight", 3, 0, TX_AS_IS, "num_key_value_heads × head_dim, hidden_size"},
    {"self_attn.o_proj.weight", "attn_output.weight", 0, 2, TX_AS_IS, "hidden_size, num_attention_heads × head_dim"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", 4, -1, TX_SHIFT, "head_dim"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", 4, -1, TX_SHIFT, "head_dim"},
    {"post_attention_layernorm.weight", "post_attention_norm.weight", 0, -1, TX_SHIFT, "hidden_size"},
    {"pre_feedforward_layernorm.weight", "ffn_norm.weight", 0, -1, TX_SHIFT, "hidden_size"},
    {"post_feedforward_layernorm.weight", "post_ffw_norm.weight", 0, -1, TX_SHIFT, "hidden_size"},
    {"mlp.gate_proj.weight", "ffn_gate.weight", 1, 0, TX_AS_IS, "intermediate_size, hidden_size"},
    {"mlp.up_proj.weight", "ffn_up.weight", 1, 0, TX_AS_IS, "intermediate_size, hidden_size"},
    {"mlp.down_proj.weight", "ffn_down.weight", 0, 1, TX_AS_IS, "hidden_size, intermediate_size"},
    {NULL, NULL, 0, 0, 0, NULL},
};

static rq_status add_tensors(tensor_ctx *t, const hf_dims *d, const layer_tensor *layer, int norm_tx) {
    const int64_t dims[5] = {d->n_embd, d->n_ff, d->n_head * d->head_dim, d->n_head_kv * d->head_dim, d->head_dim};
    RQ_TRY(add_tensor(t, d, "model.embed_tokens.weight", "token_embd.weight", d->n_vocab, d->n_embd, TX_AS_IS,
                      "vocab_size, hidden_size"));
    RQ_TRY(add_tensor(t, d, "model.norm.weight", "output_norm.weight", d->n_embd, 0, norm_tx, "hidden_size"));
    const rq_st_tensor *lm = rq_safetensors_find(t->st, "lm_head.weight");
    if (!d->tied)
        RQ_TRY(add_tensor(t, d, "lm_head.weight", "output.weight", d->n_vocab, d->n_embd, TX_AS_IS,
                          "vocab_size, hidden_size"));
    else if (lm) t->used[lm - rq_safetensors_tensor_at(t->st, 0)] = true; /* tied: the embedding serves */
    for (int64_t l = 0; l < d->n_layer; l++)
        for (const layer_tensor *k = layer; k->hf; k++) {
            char hf[128], gg[128];
            snprintf(hf, sizeof hf, "model.layers.%lld.%s", (long long)l, k->hf);
            snprintf(gg, sizeof gg, "blk.%lld.%s", (long long)l, k->gg);
            RQ_TRY(add_tensor(t, d, hf, gg, dims[k->rows], k->cols < 0 ? 0 : dims[k->cols], k->tx, k->what));
        }
    /* anything left unread would be silently dropped: refuse it (but RoPE's cached
     * frequencies, which older checkpoints store) */
    for (int64_t i = 0; i < rq_safetensors_n_tensors(t->st); i++) {
        const rq_st_tensor *x = rq_safetensors_tensor_at(t->st, i);
        const char *suffix = "rotary_emb.inv_freq";
        size_t nl = strlen(x->name), sl = strlen(suffix);
        if (!t->used[i] && !(nl >= sl && !strcmp(x->name + nl - sl, suffix)))
            return rq_errorf(RQ_EUNSUPPORTED, "%s: tensor '%.96s' is not used by the %s model config.json describes",
                             rq_safetensors_path(t->st), x->name, d->arch);
    }
    return RQ_OK;
}

/* ---- the checkpoint ---------------------------------------------------------------- */

rq_status rq_hf_open(const char *dir, rq_gguf **out) {
    *out = NULL;
    size_t pl = strlen(dir) + 32;
    char *cfg_path = rq_xalloc((int64_t)pl), *tok_path = rq_xalloc((int64_t)pl);
    snprintf(cfg_path, pl, "%s/config.json", dir);
    snprintf(tok_path, pl, "%s/tokenizer.json", dir);
    char *text = NULL;
    int64_t len;
    rq_json_doc *doc = NULL;
    rq_safetensors *st = NULL;
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    tensor_ctx tc = {.w = w};
    hf_dims d = {0};
    rq_status s = rq_file_read(cfg_path, &text, &len);
    if (s == RQ_OK && (s = rq_json_parse(text, len, NULL, &doc, NULL)) != RQ_OK) s = rq_error_prefix(s, cfg_path);
    if (s != RQ_OK) goto done;
    cfg_ctx c = {cfg_path, rq_json_root(doc)};
    const rq_json *mt = rq_json_get(c.root, "model_type");
    const bool gemma3 = str_is(mt, "gemma3_text");
    if (!str_is(mt, "llama") && !gemma3) {
        s = rq_errorf(RQ_EUNSUPPORTED, "%s: model_type '%.32s' is not supported (llama, gemma3_text)", cfg_path,
                      mt && mt->type == RQ_JSON_STRING ? mt->str : "?");
        goto done;
    }
    if ((s = gemma3 ? gemma3_config(&c, w, &d) : llama_config(&c, w, &d)) != RQ_OK) goto done;
    const rq_json *name = rq_json_get(c.root, "_name_or_path");
    rq_gguf_writer_set_str(w, "general.name", str_is(name, "") || !name || name->type != RQ_JSON_STRING ||
                                                  memchr(name->str, 0, (size_t)name->len) ? dir : name->str);
    if ((s = rq_safetensors_open_dir(dir, &st)) != RQ_OK) goto done;
    tc.st = st;
    tc.used = rq_calloc((rq_safetensors_n_tensors(st) + 1) * (int64_t)sizeof(bool));
    if (!tc.used) {
        s = rq_error_prefix(RQ_ENOMEM, dir);
        goto done;
    }
    if ((s = gemma3 ? add_tensors(&tc, &d, gemma3_layer, TX_SHIFT) : add_tensors(&tc, &d, llama_layer, TX_AS_IS)) !=
        RQ_OK)
        goto done;
    struct stat sb;
    if (stat(tok_path, &sb) == 0 && (s = rq_tokenizer_hf_to_gguf(dir, d.n_vocab, w)) != RQ_OK) goto done;
    s = rq_gguf_writer_open_image(w, dir, out);
done:
    for (int64_t i = 0; i < tc.n_keep; i++) rq_free(tc.keep[i]);
    rq_free(tc.keep);
    rq_free(tc.used);
    rq_gguf_writer_free(w);
    rq_safetensors_close(st);
    rq_json_doc_free(doc);
    rq_free(text);
    rq_free(cfg_path);
    rq_free(tok_path);
    return s;
}
