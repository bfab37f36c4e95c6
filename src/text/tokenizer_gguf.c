/* rq_tokenizer_load: read the tokenizer.ggml.* keys of a GGUF file into a spec. */
#include "io/gguf.h"
#include "text/tokenizer_impl.h"

#include <string.h>

/* Optional token id key: -1 if absent; RQ_EFORMAT if present but not an integer. Values
 * out of range are passed on and replaced by the default at creation, as llama.cpp. */
static rq_status get_id(const rq_gguf *g, const char *key, int32_t *out) {
    *out = -1;
    const rq_gguf_kv *kv = rq_gguf_find(g, key);
    if (!kv) return RQ_OK;
    switch (kv->type) {
    case RQ_GGUF_U8: case RQ_GGUF_U16: case RQ_GGUF_U32: case RQ_GGUF_U64:
        *out = kv->u > (uint64_t)INT32_MAX ? INT32_MAX : (int32_t)kv->u;
        return RQ_OK;
    case RQ_GGUF_I8: case RQ_GGUF_I16: case RQ_GGUF_I32: case RQ_GGUF_I64:
        *out = kv->i < 0 ? -1 : kv->i > INT32_MAX ? INT32_MAX : (int32_t)kv->i;
        return RQ_OK;
    default:
        return rq_errorf(RQ_EFORMAT, "%s: expected an integer, found %s", key, rq_gguf_vtype_name(kv->type));
    }
}

static rq_status get_flag(const rq_gguf *g, const char *key, int *out) {
    *out = -1;
    const rq_gguf_kv *kv = rq_gguf_find(g, key);
    if (!kv) return RQ_OK;
    if (kv->type != RQ_GGUF_BOOL) return rq_errorf(RQ_EFORMAT, "%s: expected a bool, found %s", key, rq_gguf_vtype_name(kv->type));
    *out = kv->u != 0;
    return RQ_OK;
}

/* A required/optional array key of the given element type. */
static rq_status get_array(const rq_gguf *g, const char *key, rq_gguf_vtype elem, bool required, const rq_gguf_kv **out) {
    *out = NULL;
    const rq_gguf_kv *kv = rq_gguf_find(g, key);
    if (!kv) return required ? rq_errorf(RQ_EFORMAT, "%s: missing", key) : RQ_OK;
    if (kv->type != RQ_GGUF_ARR) return rq_errorf(RQ_EFORMAT, "%s: expected an array, found %s", key, rq_gguf_vtype_name(kv->type));
    if (elem != RQ_GGUF_VTYPE_COUNT && kv->arr_type != elem)
        return rq_errorf(RQ_EFORMAT, "%s: expected an array of %s, found %s", key, rq_gguf_vtype_name(elem),
                         rq_gguf_vtype_name(kv->arr_type));
    *out = kv;
    return RQ_OK;
}

rq_status rq_tokenizer_load(const rq_gguf *g, rq_tokenizer **out) {
    *out = NULL;
    rq_tokenizer_spec spec;
    rq_tokenizer_spec_init(&spec);

    const rq_gguf_kv *model = rq_gguf_find(g, "tokenizer.ggml.model");
    if (!model) return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.model: missing");
    if (model->type != RQ_GGUF_STR) return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.model: expected a string");
    if (rq_gguf_str_eq(model->s, "gpt2")) spec.kind = RQ_TOKENIZER_BPE;
    else if (rq_gguf_str_eq(model->s, "llama")) spec.kind = RQ_TOKENIZER_SPM;
    else
        return rq_errorf(RQ_EUNSUPPORTED, "tokenizer.ggml.model = \"%.*s\": only \"gpt2\" (BPE) and \"llama\" (SentencePiece) are implemented",
                         (int)(model->s.len > 64 ? 64 : model->s.len), model->s.ptr);

    char pre[128] = {0};
    const rq_gguf_kv *pre_kv = rq_gguf_find(g, "tokenizer.ggml.pre");
    if (pre_kv) {
        if (pre_kv->type != RQ_GGUF_STR) return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.pre: expected a string");
        if (pre_kv->s.len >= sizeof(pre) || memchr(pre_kv->s.ptr, 0, pre_kv->s.len))
            return rq_errorf(RQ_EUNSUPPORTED, "tokenizer.ggml.pre: unknown pre-tokenizer");
        memcpy(pre, pre_kv->s.ptr, pre_kv->s.len);
        spec.pre = pre;
    }

    const rq_gguf_kv *tokens, *scores, *types, *merges = NULL;
    RQ_TRY(get_array(g, "tokenizer.ggml.tokens", RQ_GGUF_STR, true, &tokens));
    RQ_TRY(get_array(g, "tokenizer.ggml.scores", RQ_GGUF_VTYPE_COUNT, false, &scores));
    RQ_TRY(get_array(g, "tokenizer.ggml.token_type", RQ_GGUF_I32, false, &types));
    if (spec.kind == RQ_TOKENIZER_BPE) RQ_TRY(get_array(g, "tokenizer.ggml.merges", RQ_GGUF_STR, true, &merges));
    if (tokens->arr_n == 0 || tokens->arr_n >= INT32_MAX) return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.tokens: bad count %llu", (unsigned long long)tokens->arr_n);
    int64_t n = (int64_t)tokens->arr_n;
    if (scores) {
        if (scores->arr_type != RQ_GGUF_F32 && scores->arr_type != RQ_GGUF_I32)
            return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.scores: expected an array of f32 or i32, found %s", rq_gguf_vtype_name(scores->arr_type));
        if ((int64_t)scores->arr_n < n)
            return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.scores: %llu entries for %lld tokens", (unsigned long long)scores->arr_n, (long long)n);
    }
    if (types && (int64_t)types->arr_n < n)
        return rq_errorf(RQ_EFORMAT, "tokenizer.ggml.token_type: %llu entries for %lld tokens", (unsigned long long)types->arr_n, (long long)n);

    RQ_TRY(get_id(g, "tokenizer.ggml.bos_token_id", &spec.bos_id));
    RQ_TRY(get_id(g, "tokenizer.ggml.eos_token_id", &spec.eos_id));
    RQ_TRY(get_id(g, "tokenizer.ggml.eot_token_id", &spec.eot_id));
    RQ_TRY(get_id(g, "tokenizer.ggml.eom_token_id", &spec.eom_id));
    RQ_TRY(get_id(g, "tokenizer.ggml.unknown_token_id", &spec.unk_id));
    RQ_TRY(get_flag(g, "tokenizer.ggml.add_bos_token", &spec.add_bos));
    RQ_TRY(get_flag(g, "tokenizer.ggml.add_space_prefix", &spec.add_space_prefix));

    rq_status s = RQ_ENOMEM;
    int64_t n_merges = merges ? (int64_t)merges->arr_n : 0;
    const char **tok_ptr = (const char **)rq_alloc(n * (int64_t)sizeof(char *));
    int64_t *tok_len = (int64_t *)rq_alloc(n * (int64_t)sizeof(int64_t));
    float *sc = scores ? (float *)rq_alloc(n * (int64_t)sizeof(float)) : NULL;
    int32_t *ty = types ? (int32_t *)rq_alloc(n * (int64_t)sizeof(int32_t)) : NULL;
    const char **mer_ptr = n_merges ? (const char **)rq_alloc(n_merges * (int64_t)sizeof(char *)) : NULL;
    int64_t *mer_len = n_merges ? (int64_t *)rq_alloc(n_merges * (int64_t)sizeof(int64_t)) : NULL;
    if (!tok_ptr || !tok_len || (scores && !sc) || (types && !ty) || (n_merges && (!mer_ptr || !mer_len))) goto done;
    for (int64_t i = 0; i < n; i++) {
        tok_ptr[i] = tokens->arr_strs[i].ptr;
        tok_len[i] = (int64_t)tokens->arr_strs[i].len;
        if (sc) sc[i] = scores->arr_type == RQ_GGUF_F32 ? (float)rq_gguf_arr_float(scores, (uint64_t)i) : (float)rq_gguf_arr_int(scores, (uint64_t)i);
        if (ty) ty[i] = (int32_t)rq_gguf_arr_int(types, (uint64_t)i);
    }
    for (int64_t i = 0; i < n_merges; i++) {
        mer_ptr[i] = merges->arr_strs[i].ptr;
        mer_len[i] = (int64_t)merges->arr_strs[i].len;
    }
    spec.n_vocab = n;
    spec.tokens = tok_ptr;
    spec.token_lens = tok_len;
    spec.scores = sc;
    spec.token_types = ty;
    spec.n_merges = n_merges;
    spec.merges = mer_ptr;
    spec.merge_lens = mer_len;
    s = rq_tokenizer_create(&spec, out);
done:
    rq_free(tok_ptr);
    rq_free(tok_len);
    rq_free(sc);
    rq_free(ty);
    rq_free(mer_ptr);
    rq_free(mer_len);
    return s;
}
