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
    int64_t n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, n_vocab;
    bool tied;
} hf_dims;

/* LLaMA's config.json -> llama.* keys. */
static rq_status llama_config(const cfg_ctx *c, rq_gguf_writer *w, hf_dims *d) {
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
    RQ_TRY(cfg_bool(c, "tie_word_embeddings", false, &d->tied)); /* LlamaConfig's default */
    bool bias;
    RQ_TRY(cfg_bool(c, "attention_bias", false, &bias));
    if (bias) return rq_errorf(RQ_EUNSUPPORTED, "%s: attention_bias is not supported", c->path);
    RQ_TRY(cfg_bool(c, "mlp_bias", false, &bias));
    if (bias) return rq_errorf(RQ_EUNSUPPORTED, "%s: mlp_bias is not supported", c->path);
    const rq_json *act = rq_json_get(c->root, "hidden_act");
    if (act && !str_is(act, "silu"))
        return rq_errorf(RQ_EUNSUPPORTED, "%s: hidden_act '%.32s' is not supported (silu)", c->path,
                         act->type == RQ_JSON_STRING ? act->str : "?");

    rq_gguf_writer_set_str(w, "general.architecture", "llama");
    rq_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)d->n_layer);
    rq_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)d->n_embd);
    rq_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)d->n_ff);
    rq_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)d->n_head);
    rq_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)d->n_head_kv);
    if (n_ctx) rq_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)n_ctx);
    if (d->head_dim != dflt_hd) {
        rq_gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)d->head_dim);
        rq_gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)d->head_dim);
    }
    rq_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)d->head_dim);
    rq_gguf_writer_set_f32(w, "llama.rope.freq_base", (float)theta);
    rq_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", (float)eps);
    rq_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)d->n_vocab);

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
        rq_gguf_writer_set_str(w, "llama.rope.scaling.type", "linear");
        rq_gguf_writer_set_f32(w, "llama.rope.scaling.factor", (float)f->number);
    }
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

/* Add HF tensor `hf` as GGUF tensor `gg`, checking its shape [rows, cols] (cols 0: a
 * vector [rows]). permute_heads > 0: q/k rows permuted for that many heads. */
static rq_status add_tensor(tensor_ctx *t, const char *hf, const char *gg, int64_t rows, int64_t cols,
                            int64_t permute_heads, const char *what) {
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
    if (permute_heads > 0) {
        const int64_t d = rows / permute_heads, half = d / 2, rb = cols * rq_st_dtype_size(x->dtype);
        RQ_ASSERT(d * permute_heads == rows && d % 2 == 0);
        uint8_t *p = rq_alloc(x->n_bytes);
        if (!p) return rq_error_prefix(RQ_ENOMEM, hf);
        keep(t, p);
        const uint8_t *src = x->data;
        for (int64_t h = 0; h < permute_heads; h++)
            for (int64_t i = 0; i < half; i++)
                for (int64_t j = 0; j < 2; j++)
                    memcpy(p + (h * d + 2 * i + j) * rb, src + (h * d + j * half + i) * rb, (size_t)rb);
        data = p;
    }
    int64_t ne[2] = {cols ? cols : rows, cols ? rows : 1};
    return rq_gguf_writer_add_tensor(t->w, gg, type, cols ? 2 : 1, ne, data, x->n_bytes);
}

static rq_status llama_tensors(tensor_ctx *t, const hf_dims *d) {
    const int64_t q_dim = d->n_head * d->head_dim, kv_dim = d->n_head_kv * d->head_dim;
    RQ_TRY(add_tensor(t, "model.embed_tokens.weight", "token_embd.weight", d->n_vocab, d->n_embd, 0,
                      "vocab_size, hidden_size"));
    RQ_TRY(add_tensor(t, "model.norm.weight", "output_norm.weight", d->n_embd, 0, 0, "hidden_size"));
    const rq_st_tensor *lm = rq_safetensors_find(t->st, "lm_head.weight");
    if (!d->tied) RQ_TRY(add_tensor(t, "lm_head.weight", "output.weight", d->n_vocab, d->n_embd, 0, "vocab_size, hidden_size"));
    else if (lm) t->used[lm - rq_safetensors_tensor_at(t->st, 0)] = true; /* tied: the embedding serves */
    static const struct {
        const char *hf, *gg;
        int rows, cols; /* 0 n_embd, 1 n_ff, 2 q_dim, 3 kv_dim; cols -1: a vector */
        int permute;    /* 0 none, 1 query heads, 2 KV heads */
        const char *what;
    } lt[] = {
        {"input_layernorm.weight", "attn_norm.weight", 0, -1, 0, "hidden_size"},
        {"self_attn.q_proj.weight", "attn_q.weight", 2, 0, 1, "num_attention_heads × head_dim, hidden_size"},
        {"self_attn.k_proj.weight", "attn_k.weight", 3, 0, 2, "num_key_value_heads × head_dim, hidden_size"},
        {"self_attn.v_proj.weight", "attn_v.weight", 3, 0, 0, "num_key_value_heads × head_dim, hidden_size"},
        {"self_attn.o_proj.weight", "attn_output.weight", 0, 2, 0, "hidden_size, num_attention_heads × head_dim"},
        {"post_attention_layernorm.weight", "ffn_norm.weight", 0, -1, 0, "hidden_size"},
        {"mlp.gate_proj.weight", "ffn_gate.weight", 1, 0, 0, "intermediate_size, hidden_size"},
        {"mlp.up_proj.weight", "ffn_up.weight", 1, 0, 0, "intermediate_size, hidden_size"},
        {"mlp.down_proj.weight", "ffn_down.weight", 0, 1, 0, "hidden_size, intermediate_size"},
    };
    const int64_t dims[4] = {d->n_embd, d->n_ff, q_dim, kv_dim};
    for (int64_t l = 0; l < d->n_layer; l++)
        for (size_t k = 0; k < sizeof lt / sizeof lt[0]; k++) {
            char hf[128], gg[128];
            snprintf(hf, sizeof hf, "model.layers.%lld.%s", (long long)l, lt[k].hf);
            snprintf(gg, sizeof gg, "blk.%lld.%s", (long long)l, lt[k].gg);
            int64_t heads = lt[k].permute == 1 ? d->n_head : lt[k].permute == 2 ? d->n_head_kv : 0;
            RQ_TRY(add_tensor(t, hf, gg, dims[lt[k].rows], lt[k].cols < 0 ? 0 : dims[lt[k].cols], heads, lt[k].what));
        }
    /* anything left unread would be silently dropped: refuse it (but RoPE's cached
     * frequencies, which older checkpoints store) */
    for (int64_t i = 0; i < rq_safetensors_n_tensors(t->st); i++) {
        const rq_st_tensor *x = rq_safetensors_tensor_at(t->st, i);
        const char *suffix = "rotary_emb.inv_freq";
        size_t nl = strlen(x->name), sl = strlen(suffix);
        if (!t->used[i] && !(nl >= sl && !strcmp(x->name + nl - sl, suffix)))
            return rq_errorf(RQ_EUNSUPPORTED,
                             "%s: tensor '%.96s' is not used by the llama model config.json describes",
                             rq_safetensors_path(t->st), x->name);
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
    if (!str_is(mt, "llama")) {
        s = rq_errorf(RQ_EUNSUPPORTED, "%s: model_type '%.32s' is not supported (llama)", cfg_path,
                      mt && mt->type == RQ_JSON_STRING ? mt->str : "?");
        goto done;
    }
    if ((s = llama_config(&c, w, &d)) != RQ_OK) goto done;
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
    if ((s = llama_tensors(&tc, &d)) != RQ_OK) goto done;
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
