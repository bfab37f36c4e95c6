/* The public C API (include/rotquant.h): thin wrappers over the library's modules. The top
 * layer: it may use every module (DESIGN.md), and nothing uses it but programs.
 *
 * Each entry point checks its handles and parameter structs, takes the process-wide API lock
 * when it computes (the thread pool of base/pool.h serves one caller at a time), and calls the
 * same functions as the CLI command it stands for (tools/cmd_run.c, cmd_ppl.c,
 * cmd_quantize.c, cmd_export.c), so that both give the same results. */
#include "rotquant.h"

#include "base/pool.h"
#include "base/status.h"
#include "base/timer.h"
#include "eval/ppl.h"
#include "format/abits.h"
#include "io/gguf.h"
#include "model/blas.h"
#include "model/hf.h"
#include "model/model.h"
#include "model/qinfo.h"
#include "model/sampler.h"
#include "quant/ggexport.h"
#include "quant/ggquant.h"
#include "quant/pipeline.h"
#include "text/chat.h"
#include "text/tokenizer.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* the public status codes are the library's */
_Static_assert((int)ROTQUANT_OK == (int)RQ_OK && (int)ROTQUANT_EIO == (int)RQ_EIO &&
                   (int)ROTQUANT_EFORMAT == (int)RQ_EFORMAT && (int)ROTQUANT_EINVAL == (int)RQ_EINVAL &&
                   (int)ROTQUANT_ENOMEM == (int)RQ_ENOMEM && (int)ROTQUANT_EUNSUPPORTED == (int)RQ_EUNSUPPORTED,
               "rotquant_status must match rq_status");
_Static_assert(sizeof(rotquant_chat_message) == sizeof(rq_chat_message), "chat message layouts differ");

/* Context defaults (rotquant_context_params): the cap of the default context, which keeps
 * the KV cache of long-context models (Gemma-3: 32768) from taking gigabytes unasked, and the
 * prompt tokens per forward call (as `rotquant run`). */
#define API_CTX_DEFAULT_MAX 4096
#define API_BATCH_DEFAULT 512
/* A parameter struct's size beyond this is a caller's bug (an uninitialized size). */
#define API_STRUCT_MAX ((size_t)1 << 16)
/* The longest repetition-penalty history (as `rotquant run --repeat-last-n`). */
#define API_REPEAT_LAST_N_MAX (1 << 20)
/* Threads rotquant_set_threads accepts. */
#define API_THREADS_MAX 1024

#define API_STR_(x) #x
#define API_STR(x) API_STR_(x)
#define API_VERSION_STRING                                                                                             \
    API_STR(ROTQUANT_API_VERSION_MAJOR) "." API_STR(ROTQUANT_API_VERSION_MINOR) "." API_STR(ROTQUANT_API_VERSION_PATCH)

/* ---- process-wide set-up and the lock ----------------------------------------------------- */

static pthread_once_t api_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t api_mu;

static void api_init(void) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    /* recursive: a generate callback may call back into the library */
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&api_mu, &a);
    pthread_mutexattr_destroy(&a);
    /* as the CLI does at start-up (tools/cli_common.c): BLAS kernels for this CPU, and
     * OpenBLAS's threads matching the pool */
    rq_blas_select_kernels();
    openblas_set_num_threads(rq_threads_get());
}

static void api_lock(void) {
    pthread_once(&api_once, api_init);
    pthread_mutex_lock(&api_mu);
}
static void api_unlock(void) { pthread_mutex_unlock(&api_mu); }

/* ---- parameter structs ------------------------------------------------------------------- */

/* Copy the caller's struct p (p->size bytes; NULL: all defaults) into ours (n bytes, zeroed
 * first: 0 = default). Bytes past ours must be 0 (fields of a newer header). */
static rq_status params_in(const void *p, void *ours, size_t n, const char *what) {
    memset(ours, 0, n);
    *(size_t *)ours = n;
    if (!p) return RQ_OK;
    size_t size = *(const size_t *)p;
    if (size < sizeof(size_t) || size > API_STRUCT_MAX)
        return rq_errorf(RQ_EINVAL, "%s: size %zu is not the struct's size (set it to sizeof the struct)", what,
                         size);
    memcpy(ours, p, size < n ? size : n);
    for (size_t i = n; i < size; i++)
        if (((const unsigned char *)p)[i])
            return rq_errorf(RQ_EUNSUPPORTED,
                             "%s: a field at byte %zu is set that this library (API %s, struct of %zu bytes) does "
                             "not know: the program was built against a newer rotquant.h",
                             what, i, API_VERSION_STRING, n);
    *(size_t *)ours = n;
    return RQ_OK;
}

/* Write our filled struct (n bytes) into the caller's (out->size bytes; the part we do not
 * know zeroed; size kept). */
static rq_status struct_out(void *out, const void *ours, size_t n, const char *what) {
    if (!out) return rq_errorf(RQ_EINVAL, "%s: NULL", what);
    size_t size = *(const size_t *)out;
    if (size < sizeof(size_t) || size > API_STRUCT_MAX)
        return rq_errorf(RQ_EINVAL, "%s: size %zu is not the struct's size (set it to sizeof the struct)", what,
                         size);
    memcpy((char *)out + sizeof(size_t), (const char *)ours + sizeof(size_t), (size < n ? size : n) - sizeof(size_t));
    if (size > n) memset((char *)out + n, 0, size - n);
    return RQ_OK;
}

/* Propagate a library status from a public function. */
#define API_TRY(expr)                                                                                                  \
    do {                                                                                                               \
        rq_status api_s_ = (expr);                                                                                     \
        if (api_s_ != RQ_OK) return (rotquant_status)api_s_;                                                           \
    } while (0)

static rq_status null_arg(const char *fn, const char *arg) { return rq_errorf(RQ_EINVAL, "%s: %s is NULL", fn, arg); }

/* ---- version, errors, memory, threads ------------------------------------------------------ */

int rotquant_version(void) { return ROTQUANT_API_VERSION; }
const char *rotquant_version_string(void) { return API_VERSION_STRING; }
const char *rotquant_last_error(void) { return rq_last_error(); }
const char *rotquant_status_name(rotquant_status s) { return rq_status_name((rq_status)s); }
void rotquant_free(void *p) { rq_free(p); }

rotquant_status rotquant_set_threads(int n) {
    if (n < 0 || n > API_THREADS_MAX)
        return (rotquant_status)rq_errorf(RQ_EINVAL, "rotquant_set_threads: %d is not in [0, %d]", n,
                                          API_THREADS_MAX);
    api_lock();
    rq_threads_set(n);
    openblas_set_num_threads(rq_threads_get());
    api_unlock();
    return ROTQUANT_OK;
}

int rotquant_get_threads(void) {
    api_lock();
    int n = rq_threads_get();
    api_unlock();
    return n;
}

/* ---- model --------------------------------------------------------------------------------- */

struct rotquant_model {
    rq_model *m;
    rq_tokenizer *tok;  /* NULL: the file has none */
    rq_chat_template chat;
    rq_status chat_status; /* of reading the template; its message in chat_error */
    char *chat_error;
    rq_qinfo qi;
    char path[256];     /* for messages (shortened) */
};

void rotquant_model_close(rotquant_model *am) {
    if (!am) return;
    api_lock();
    rq_model_free(am->m);
    api_unlock();
    rq_tokenizer_free(am->tok);
    rq_chat_template_clear(&am->chat);
    rq_free(am->chat_error);
    rq_free(am);
}

static rq_status model_load(const char *path, const rotquant_model_params *p, rotquant_model *am) {
    rq_gguf *g = NULL;
    rq_status s = rq_model_open(path, &g);
    if (s == RQ_OK) s = rq_qinfo_read(g, &am->qi);
    if (s == RQ_OK) s = rq_model_load_ex(g, &(rq_model_load_opts){.ref_linear = p->ref_linear != 0}, &am->m);
    if (s == RQ_OK && p->abits) s = rq_model_set_act_bits(am->m, p->abits);
    if (s == RQ_OK && rq_gguf_find(g, "tokenizer.ggml.model")) {
        s = rq_tokenizer_load(g, &am->tok);
        if (s != RQ_OK) s = rq_error_prefix(s, path);
    }
    if (s == RQ_OK) {
        am->chat_status = rq_chat_template_from_gguf(g, &am->chat);
        if (am->chat_status != RQ_OK) am->chat_error = rq_strdup(rq_last_error());
    }
    rq_gguf_close(g);
    return s;
}

rotquant_status rotquant_model_open(const char *path, const rotquant_model_params *params, rotquant_model **out) {
    if (!out) return (rotquant_status)null_arg("rotquant_model_open", "out");
    *out = NULL;
    if (!path) return (rotquant_status)null_arg("rotquant_model_open", "path");
    rotquant_model_params p;
    API_TRY(params_in(params, &p, sizeof p, "rotquant_model_params"));
    if (p.abits && rq_abits_check(p.abits, "rotquant_model_params.abits") != RQ_OK) return ROTQUANT_EINVAL;
    rotquant_model *am = rq_calloc(sizeof *am);
    if (!am) return ROTQUANT_ENOMEM;
    snprintf(am->path, sizeof am->path, "%s", path);
    api_lock();
    rq_status s = model_load(path, &p, am);
    api_unlock();
    if (s != RQ_OK) {
        rotquant_model_close(am);
        return (rotquant_status)s;
    }
    *out = am;
    return ROTQUANT_OK;
}

int64_t rotquant_model_n_vocab(const rotquant_model *am) { return am ? am->m->cfg.n_vocab : 0; }

rotquant_status rotquant_model_get_info(const rotquant_model *am, rotquant_model_info *info) {
    if (!am) return (rotquant_status)null_arg("rotquant_model_get_info", "model");
    if (!info) return (rotquant_status)null_arg("rotquant_model_get_info", "info");
    const rq_model *m = am->m;
    const rq_model_config *c = &m->cfg;
    rotquant_model_info r = {.size = sizeof r};
    snprintf(r.arch, sizeof r.arch, "%s", c->arch == RQ_ARCH_GEMMA3 ? "gemma3" : "llama");
    r.n_vocab = c->n_vocab, r.n_ctx_train = c->n_ctx_train, r.n_embd = c->n_embd, r.n_layer = c->n_layer;
    r.n_head = c->n_head, r.n_head_kv = c->n_head_kv, r.head_dim = c->head_dim, r.n_ff = c->n_ff;
    r.n_params = rq_model_n_params(m);
    r.weight_bytes = rq_model_weight_bytes(m);
    /* the run-time quantizers in force (rotquant_model_params.abits may override the file's) */
    rq_qinfo qi = am->qi;
    qi.abits = (uint32_t)rq_bits_from_runtime(m->online.cfg.act.bits);
    qi.kvbits = (uint32_t)rq_bits_from_runtime(m->online.cfg.kv_bits);
    r.quantized = qi.present;
    r.wbits = qi.present ? (int)qi.wbits : 16;
    r.group = qi.present && qi.wbits != 16 ? (int)qi.group : 0;
    r.abits = (int)qi.abits;
    r.kvbits = (int)qi.kvbits;
    r.bits_per_weight = qi.present ? qi.bits_per_weight : 0;
    if (qi.present && qi.wbits != 16) snprintf(r.method, sizeof r.method, "%s", qi.method);
    rq_qinfo_short(&qi, r.scheme, sizeof r.scheme);
    char a[256], b[256], q[512];
    rq_model_config_describe(c, a, sizeof a);
    rq_model_describe(m, b, sizeof b);
    if (qi.present) rq_qinfo_describe(&am->qi, q, sizeof q);
    snprintf(r.description, sizeof r.description, "%s\n%s%s%s", a, b, qi.present ? "\n" : "", qi.present ? q : "");
    return (rotquant_status)struct_out(info, &r, sizeof r, "rotquant_model_info");
}

/* ---- tokenizer and chat ---------------------------------------------------------------------- */

static rq_status need_tok(const rotquant_model *am, const char *fn) {
    if (!am) return null_arg(fn, "model");
    if (!am->tok) return rq_errorf(RQ_EUNSUPPORTED, "%s: %s has no tokenizer", fn, am->path);
    return RQ_OK;
}

rotquant_status rotquant_tokenize(const rotquant_model *am, const char *text, int64_t len, int add_bos,
                                  int parse_special, int32_t **ids, int64_t *n_ids) {
    if (!ids || !n_ids) return (rotquant_status)null_arg("rotquant_tokenize", "ids or n_ids");
    *ids = NULL;
    *n_ids = 0;
    API_TRY(need_tok(am, "rotquant_tokenize"));
    if (!text && len != 0) return (rotquant_status)null_arg("rotquant_tokenize", "text");
    if (len < 0) len = (int64_t)strlen(text);
    if (add_bos < ROTQUANT_BOS_DEFAULT || add_bos > ROTQUANT_BOS_YES)
        return (rotquant_status)rq_errorf(RQ_EINVAL, "rotquant_tokenize: add_bos %d is not -1, 0 or 1", add_bos);
    bool bos = add_bos == ROTQUANT_BOS_DEFAULT ? rq_tokenizer_add_bos_default(am->tok) : add_bos == ROTQUANT_BOS_YES;
    return (rotquant_status)rq_tokenizer_encode(am->tok, text ? text : "", len, bos, parse_special != 0, ids, n_ids);
}

rotquant_status rotquant_detokenize(const rotquant_model *am, const int32_t *ids, int64_t n, int skip_special,
                                    char **text, int64_t *len) {
    if (!text) return (rotquant_status)null_arg("rotquant_detokenize", "text");
    *text = NULL;
    if (len) *len = 0;
    API_TRY(need_tok(am, "rotquant_detokenize"));
    if (n < 0 || (n > 0 && !ids))
        return (rotquant_status)rq_errorf(RQ_EINVAL, "rotquant_detokenize: bad id list (%lld ids at %p)", (long long)n,
                                          (const void *)ids);
    int64_t l = 0;
    rq_status s = rq_tokenizer_decode(am->tok, ids, n, skip_special != 0, text, &l);
    if (s == RQ_OK && len) *len = l;
    return (rotquant_status)s;
}

const char *rotquant_token_piece(const rotquant_model *am, int32_t id, int64_t *len) {
    int64_t l = 0;
    const char *p = am && am->tok ? rq_tokenizer_token_bytes(am->tok, id, &l) : NULL;
    if (len) *len = p ? l : 0;
    return p;
}

int32_t rotquant_token_bos(const rotquant_model *am) { return am && am->tok ? rq_tokenizer_bos(am->tok) : -1; }
int32_t rotquant_token_eos(const rotquant_model *am) { return am && am->tok ? rq_tokenizer_eos(am->tok) : -1; }
int rotquant_token_is_eog(const rotquant_model *am, int32_t id) {
    return am && am->tok && rq_tokenizer_is_eog(am->tok, id);
}

rotquant_status rotquant_chat_apply(const rotquant_model *am, const rotquant_chat_message *msgs, int64_t n_msgs,
                                    int add_generation_prompt, char **text) {
    if (!text) return (rotquant_status)null_arg("rotquant_chat_apply", "text");
    *text = NULL;
    if (!am) return (rotquant_status)null_arg("rotquant_chat_apply", "model");
    if (am->chat_status != RQ_OK)
        return (rotquant_status)rq_errorf(am->chat_status, "%s: %s", am->path, am->chat_error ? am->chat_error : "");
    /* same layout (asserted above) */
    return (rotquant_status)rq_chat_render(&am->chat, (const rq_chat_message *)msgs, n_msgs, add_generation_prompt != 0,
                                           text);
}

/* ---- contexts --------------------------------------------------------------------------------- */

struct rotquant_context {
    const rotquant_model *am;
    rq_state *st;
    bool all_logits;
    int64_t n_past;   /* positions the cache holds */
    int64_t n_logits; /* rows of st->logits from the last evaluation (0: none) */
};

rotquant_status rotquant_context_new(const rotquant_model *am, const rotquant_context_params *params,
                                     rotquant_context **out) {
    if (!out) return (rotquant_status)null_arg("rotquant_context_new", "out");
    *out = NULL;
    if (!am) return (rotquant_status)null_arg("rotquant_context_new", "model");
    rotquant_context_params p;
    API_TRY(params_in(params, &p, sizeof p, "rotquant_context_params"));
    if (p.n_ctx < 0 || p.n_batch < 0)
        return (rotquant_status)rq_errorf(RQ_EINVAL, "rotquant_context_params: n_ctx %lld, n_batch %lld (not >= 0)",
                                          (long long)p.n_ctx, (long long)p.n_batch);
    int64_t n_ctx = p.n_ctx, n_batch = p.n_batch;
    if (!n_ctx) {
        int64_t t = am->m->cfg.n_ctx_train;
        n_ctx = t > 0 && t < API_CTX_DEFAULT_MAX ? t : API_CTX_DEFAULT_MAX;
    }
    if (!n_batch) n_batch = n_ctx < API_BATCH_DEFAULT ? n_ctx : API_BATCH_DEFAULT;
    rotquant_context *c = rq_calloc(sizeof *c);
    if (!c) return ROTQUANT_ENOMEM;
    c->am = am;
    c->all_logits = p.all_logits != 0;
    api_lock();
    rq_status s = rq_state_new(am->m, n_ctx, n_batch, c->all_logits, &c->st);
    api_unlock();
    if (s != RQ_OK) {
        rq_free(c);
        return (rotquant_status)s;
    }
    *out = c;
    return ROTQUANT_OK;
}

void rotquant_context_free(rotquant_context *c) {
    if (!c) return;
    rq_state_free(c->st);
    rq_free(c);
}

int64_t rotquant_context_n_past(const rotquant_context *c) { return c ? c->n_past : 0; }
int64_t rotquant_context_n_ctx(const rotquant_context *c) { return c ? c->st->n_ctx : 0; }

rotquant_status rotquant_context_truncate(rotquant_context *c, int64_t n_past) {
    if (!c) return (rotquant_status)null_arg("rotquant_context_truncate", "context");
    if (n_past < 0 || n_past > c->n_past)
        return (rotquant_status)rq_errorf(RQ_EINVAL, "rotquant_context_truncate: %lld is not in [0, %lld]",
                                          (long long)n_past, (long long)c->n_past);
    c->n_past = n_past;
    c->n_logits = 0;
    return ROTQUANT_OK;
}

/* Evaluate with the lock held. */
static rq_status eval_locked(rotquant_context *c, const int32_t *tokens, int64_t n) {
    rq_state *st = c->st;
    int64_t n_vocab = c->am->m->cfg.n_vocab;
    if (n < 1 || !tokens) return rq_errorf(RQ_EINVAL, "rotquant_eval: no tokens (n = %lld)", (long long)n);
    if (n > st->n_ctx - c->n_past)
        return rq_errorf(RQ_EINVAL, "rotquant_eval: %lld tokens after %lld do not fit the context of %lld",
                         (long long)n, (long long)c->n_past, (long long)st->n_ctx);
    if (c->all_logits && n > st->n_batch)
        return rq_errorf(RQ_EINVAL, "rotquant_eval: all_logits takes at most n_batch = %lld tokens, not %lld",
                         (long long)st->n_batch, (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return rq_errorf(RQ_EINVAL, "rotquant_eval: token %lld is %d, not in [0, %lld)", (long long)i, tokens[i],
                             (long long)n_vocab);
    /* checked: nothing below can fail on the input; the cache beyond n_past is overwritten */
    c->n_logits = 0;
    for (int64_t p = 0; p < n; p += st->n_batch) {
        int64_t k = n - p < st->n_batch ? n - p : st->n_batch;
        rq_logits_mode mode = p + k < n ? RQ_LOGITS_NONE : c->all_logits ? RQ_LOGITS_ALL : RQ_LOGITS_LAST;
        RQ_TRY(rq_model_forward(st, tokens + p, k, c->n_past + p, mode));
    }
    c->n_past += n;
    c->n_logits = c->all_logits ? n : 1;
    return RQ_OK;
}

rotquant_status rotquant_eval(rotquant_context *c, const int32_t *tokens, int64_t n) {
    if (!c) return (rotquant_status)null_arg("rotquant_eval", "context");
    api_lock();
    rq_status s = eval_locked(c, tokens, n);
    api_unlock();
    return (rotquant_status)s;
}

rotquant_status rotquant_decode(rotquant_context *c, int32_t token) { return rotquant_eval(c, &token, 1); }

const float *rotquant_get_logits(const rotquant_context *c, int64_t *n_rows) {
    if (n_rows) *n_rows = c ? c->n_logits : 0;
    return c && c->n_logits ? c->st->logits : NULL;
}

/* ---- sampling and generation --------------------------------------------------------------------- */

struct rotquant_sampler {
    rq_sampler *s;
    int64_t n_vocab;
};

rotquant_status rotquant_sampler_new(const rotquant_model *am, const rotquant_sampler_params *params,
                                     rotquant_sampler **out) {
    if (!out) return (rotquant_status)null_arg("rotquant_sampler_new", "out");
    *out = NULL;
    if (!am) return (rotquant_status)null_arg("rotquant_sampler_new", "model");
    rotquant_sampler_params p;
    API_TRY(params_in(params, &p, sizeof p, "rotquant_sampler_params"));
    if (p.repeat_last_n > API_REPEAT_LAST_N_MAX)
        return (rotquant_status)rq_errorf(RQ_EINVAL, "rotquant_sampler_params: repeat_last_n %d is above %d",
                                          p.repeat_last_n, API_REPEAT_LAST_N_MAX);
    rq_sampler_params sp = {.temperature = p.temperature, .top_k = p.top_k, .top_p = p.top_p, .seed = p.seed,
                            .repeat_penalty = p.repeat_penalty, .repeat_last_n = p.repeat_last_n};
    rotquant_sampler *as = rq_calloc(sizeof *as);
    if (!as) return ROTQUANT_ENOMEM;
    as->n_vocab = am->m->cfg.n_vocab;
    rq_status s = rq_sampler_new(&sp, as->n_vocab, &as->s);
    if (s != RQ_OK) {
        rq_free(as);
        return (rotquant_status)rq_error_prefix(s, "rotquant_sampler_params");
    }
    *out = as;
    return ROTQUANT_OK;
}

void rotquant_sampler_free(rotquant_sampler *as) {
    if (!as) return;
    rq_sampler_free(as->s);
    rq_free(as);
}

int32_t rotquant_sample_logits(rotquant_sampler *as, const float *logits) {
    if (!as || !logits) {
        null_arg("rotquant_sample_logits", !as ? "sampler" : "logits");
        return -1;
    }
    return rq_sampler_sample(as->s, logits);
}

rotquant_status rotquant_sampler_accept(rotquant_sampler *as, int32_t token) {
    if (!as) return (rotquant_status)null_arg("rotquant_sampler_accept", "sampler");
    if (token < 0 || token >= as->n_vocab)
        return (rotquant_status)rq_errorf(RQ_EINVAL, "rotquant_sampler_accept: token %d is not in [0, %lld)", token,
                                          (long long)as->n_vocab);
    rq_sampler_accept(as->s, token);
    return ROTQUANT_OK;
}

static rq_status sample_check(const rotquant_sampler *as, const rotquant_context *c, const char *fn) {
    if (!as) return null_arg(fn, "sampler");
    if (!c) return null_arg(fn, "context");
    if (as->n_vocab != c->am->m->cfg.n_vocab)
        return rq_errorf(RQ_EINVAL, "%s: the sampler is for a vocabulary of %lld, the context's model has %lld", fn,
                         (long long)as->n_vocab, (long long)c->am->m->cfg.n_vocab);
    return RQ_OK;
}

rotquant_status rotquant_sample(rotquant_sampler *as, const rotquant_context *c, int32_t *token) {
    if (!token) return (rotquant_status)null_arg("rotquant_sample", "token");
    API_TRY(sample_check(as, c, "rotquant_sample"));
    if (!c->n_logits) return (rotquant_status)rq_errorf(RQ_EINVAL, "rotquant_sample: the context has no logits yet");
    *token = rq_sampler_sample(as->s, c->st->logits + (c->n_logits - 1) * as->n_vocab);
    return ROTQUANT_OK;
}

/* The loop of model/generate.c (rq_generate), continuing the context instead of starting
 * afresh, with the end-of-generation stop of `rotquant run` (tools/cmd_run.c). */
static rq_status generate_locked(rotquant_context *c, rotquant_sampler *as, const int32_t *prompt, int64_t n_prompt,
                                 int64_t n_predict, unsigned flags, rotquant_token_callback on_token, void *user,
                                 int64_t *n_generated) {
    if (n_prompt > 0) RQ_TRY(eval_locked(c, prompt, n_prompt));
    if (!c->n_logits) return rq_errorf(RQ_EINVAL, "rotquant_generate: no prompt and no logits to continue from");
    const rotquant_model *am = c->am;
    const float *last = c->st->logits + (c->n_logits - 1) * as->n_vocab;
    for (int64_t i = 0; i < n_prompt; i++) rq_sampler_accept(as->s, prompt[i]);
    int32_t tok = rq_sampler_sample(as->s, last);
    rq_sampler_accept(as->s, tok);
    for (int64_t i = 0; i < n_predict; i++) {
        if (!(flags & ROTQUANT_GENERATE_IGNORE_EOG) && rotquant_token_is_eog(am, tok)) break;
        int64_t len = 0;
        const char *piece = rotquant_token_piece(am, tok, &len);
        ++*n_generated;
        if ((on_token && !on_token(user, tok, piece, len)) || i + 1 == n_predict || c->n_past >= c->st->n_ctx) break;
        RQ_TRY(eval_locked(c, &tok, 1));
        tok = rq_sampler_sample(as->s, c->st->logits);
        rq_sampler_accept(as->s, tok);
    }
    return RQ_OK;
}

rotquant_status rotquant_generate(rotquant_context *c, rotquant_sampler *as, const int32_t *prompt, int64_t n_prompt,
                                  int64_t n_predict, unsigned flags, rotquant_token_callback on_token, void *user,
                                  int64_t *n_generated) {
    int64_t dummy;
    if (!n_generated) n_generated = &dummy;
    *n_generated = 0;
    API_TRY(sample_check(as, c, "rotquant_generate"));
    if (n_prompt < 0 || (n_prompt > 0 && !prompt))
        return (rotquant_status)rq_errorf(RQ_EINVAL, "rotquant_generate: bad prompt (%lld tokens at %p)",
                                          (long long)n_prompt, (const void *)prompt);
    if (n_predict < 0)
        return (rotquant_status)rq_errorf(RQ_EINVAL, "rotquant_generate: n_predict %lld is negative",
                                          (long long)n_predict);
    if (flags & ~(unsigned)ROTQUANT_GENERATE_IGNORE_EOG)
        return (rotquant_status)rq_errorf(RQ_EUNSUPPORTED, "rotquant_generate: unknown flags 0x%x", flags);
    api_lock();
    rq_status s = generate_locked(c, as, prompt, n_prompt, n_predict, flags, on_token, user, n_generated);
    api_unlock();
    return (rotquant_status)s;
}

/* ---- perplexity ---------------------------------------------------------------------------------- */

static rq_status ppl_params(const rotquant_model *am, const rotquant_ppl_params *params, rotquant_ppl_params *p,
                            rq_ppl_params *rp) {
    RQ_TRY(params_in(params, p, sizeof *p, "rotquant_ppl_params"));
    if (p->protocol != ROTQUANT_PPL_LLAMACPP && p->protocol != ROTQUANT_PPL_FULL)
        return rq_errorf(RQ_EINVAL, "rotquant_ppl_params: protocol %d is not llamacpp (0) or full (1)", p->protocol);
    if (p->ctx < 0 || p->max_chunks < 0)
        return rq_errorf(RQ_EINVAL, "rotquant_ppl_params: ctx %lld, max_chunks %lld (not >= 0)", (long long)p->ctx,
                         (long long)p->max_chunks);
    bool llamacpp = p->protocol == ROTQUANT_PPL_LLAMACPP;
    /* as `rotquant ppl`: BOS first in each window when the model adds one */
    bool add_bos = am->tok && rq_tokenizer_add_bos_default(am->tok);
    *rp = (rq_ppl_params){.protocol = llamacpp ? RQ_PPL_LLAMACPP : RQ_PPL_FULL,
                          .ctx = p->ctx ? p->ctx : llamacpp ? 512 : 2048,
                          .max_chunks = p->max_chunks,
                          .bos = llamacpp && add_bos ? rq_tokenizer_bos(am->tok) : -1,
                          .progress = p->progress != 0};
    return RQ_OK;
}

static rq_status ppl_run(const rotquant_model *am, const int32_t *ids, int64_t n, const rq_ppl_params *rp,
                         rotquant_ppl_result *result) {
    rq_ppl_result r;
    api_lock();
    rq_status s = rq_ppl_eval(am->m, ids, n, rp, &r);
    api_unlock();
    RQ_TRY(s);
    rotquant_ppl_result o = {.size = sizeof o, .ppl = r.ppl, .ppl_stderr = r.ppl_stderr, .nll = r.nll,
                             .n_chunks = r.n_chunks, .n_scored = r.n_scored, .n_tokens = n, .seconds = r.seconds};
    return struct_out(result, &o, sizeof o, "rotquant_ppl_result");
}

rotquant_status rotquant_perplexity_tokens(const rotquant_model *am, const int32_t *ids, int64_t n,
                                           const rotquant_ppl_params *params, rotquant_ppl_result *result) {
    if (!am) return (rotquant_status)null_arg("rotquant_perplexity_tokens", "model");
    if (!result) return (rotquant_status)null_arg("rotquant_perplexity_tokens", "result");
    if (n < 0 || (n > 0 && !ids))
        return (rotquant_status)rq_errorf(RQ_EINVAL, "rotquant_perplexity_tokens: bad id list (%lld ids at %p)",
                                          (long long)n, (const void *)ids);
    rotquant_ppl_params p;
    rq_ppl_params rp;
    API_TRY(ppl_params(am, params, &p, &rp));
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= am->m->cfg.n_vocab)
            return (rotquant_status)rq_errorf(RQ_EINVAL, "rotquant_perplexity_tokens: id %lld is %d, not in [0, %lld)",
                                              (long long)i, ids[i], (long long)am->m->cfg.n_vocab);
    return (rotquant_status)ppl_run(am, ids, n, &rp, result);
}

rotquant_status rotquant_perplexity(const rotquant_model *am, const char *text, int64_t len,
                                    const rotquant_ppl_params *params, rotquant_ppl_result *result) {
    if (!result) return (rotquant_status)null_arg("rotquant_perplexity", "result");
    API_TRY(need_tok(am, "rotquant_perplexity"));
    if (!text) return (rotquant_status)null_arg("rotquant_perplexity", "text");
    if (len < 0) len = (int64_t)strlen(text);
    rotquant_ppl_params p;
    rq_ppl_params rp;
    API_TRY(ppl_params(am, params, &p, &rp));
    /* as `rotquant ppl -f` (tools/cmd_ppl.c): llama-perplexity drops one trailing newline */
    if (rp.protocol == RQ_PPL_LLAMACPP && len > 0 && text[len - 1] == '\n') len--;
    int32_t *ids = NULL;
    int64_t n = 0;
    API_TRY(rq_tokenizer_encode(am->tok, text, len, rq_tokenizer_add_bos_default(am->tok), false,
                                                &ids, &n));
    rq_status s = ppl_run(am, ids, n, &rp, result);
    rq_free(ids);
    return (rotquant_status)s;
}

/* ---- quantize ------------------------------------------------------------------------------------ */

static rq_status rotation_kind(rotquant_rotation r, rq_rot_kind def, const char *opt, rq_rot_kind *out) {
    switch (r) {
    case ROTQUANT_ROT_DEFAULT: *out = def; return RQ_OK;
    case ROTQUANT_ROT_NONE: *out = RQ_ROT_NONE; return RQ_OK;
    case ROTQUANT_ROT_HADAMARD: *out = RQ_ROT_HADAMARD; return RQ_OK;
    case ROTQUANT_ROT_WALSH: *out = RQ_ROT_WALSH; return RQ_OK;
    case ROTQUANT_ROT_GH: *out = RQ_ROT_GH; return RQ_OK;
    case ROTQUANT_ROT_GSR: *out = RQ_ROT_GSR; return RQ_OK;
    case ROTQUANT_ROT_ORTHOGONAL: *out = RQ_ROT_ORTHOGONAL; return RQ_OK;
    }
    return rq_errorf(RQ_EINVAL, "%s: %d is not a rotquant_rotation", opt, (int)r);
}

static rq_status method_of(rotquant_method m, rq_ptq_method *out) {
    switch (m) {
    case ROTQUANT_METHOD_DEFAULT: return RQ_OK;
    case ROTQUANT_METHOD_RTN: *out = RQ_PTQ_RTN; return RQ_OK;
    case ROTQUANT_METHOD_GPTQ: *out = RQ_PTQ_GPTQ; return RQ_OK;
    }
    return rq_errorf(RQ_EINVAL, "--method: %d is not a rotquant_method", (int)m);
}

/* The fields quantize and export share, onto o (holding the command's defaults). */
static rq_status common_opts(rotquant_method method, rotquant_rotation rotation, int64_t rotation_block,
                             rotquant_rotation rotation2, const char *calib, const char *calib_ids, int64_t calib_n,
                             int64_t calib_len, uint64_t seed, int progress, rq_quant_opts *o) {
    RQ_TRY(method_of(method, &o->method));
    RQ_TRY(rotation_kind(rotation, o->rotate, "--rotate", &o->rotate));
    rq_rot_kind k2 = RQ_ROT_NONE;
    if (rotation2 != ROTQUANT_ROT_DEFAULT) {
        RQ_TRY(rotation_kind(rotation2, RQ_ROT_NONE, "--rotate2", &k2));
        o->rotate2 = (int)k2;
    }
    o->block = rotation_block;
    if (calib) o->calib = calib;
    o->calib_ids = calib_ids;
    o->calib_n = calib_n;
    o->calib_len = calib_len;
    o->seed = seed;
    o->progress = progress != 0;
    if (calib_n < 0 || calib_len < 0)
        return rq_errorf(RQ_EINVAL, "--calib-n/--calib-len: %lld/%lld is negative", (long long)calib_n,
                         (long long)calib_len);
    return RQ_OK;
}

/* The pipeline's options from the public parameters (0 = the CLI's default). */
static rq_status quant_opts(const rotquant_quantize_params *p, rq_quant_opts *o) {
    *o = rq_quant_opts_default();
    if (p->wbits) o->wbits = p->wbits;
    if (p->group) o->group = p->group;
    switch (p->quantizer) {
    case ROTQUANT_QUANTIZER_DEFAULT: break;
    case ROTQUANT_QUANTIZER_UNIFORM: o->quantizer = RQ_QPARAM_UNIFORM; break;
    case ROTQUANT_QUANTIZER_LUT: o->quantizer = RQ_QPARAM_LUT; break;
    default: return rq_errorf(RQ_EINVAL, "--quantizer: %d is not a rotquant_quantizer", (int)p->quantizer);
    }
    if (p->abits) o->abits = p->abits;
    if (p->kvbits) o->kvbits = p->kvbits;
    if (p->embd_type) o->embd_type = p->embd_type;
    RQ_TRY(common_opts(p->method, p->rotation, p->rotation_block, p->rotation2, p->calib, p->calib_ids, p->calib_n,
                       p->calib_len, p->seed, p->progress, o));
    return rq_quant_opts_check(o);
}

/* A caller's result struct checked before the work (its size: struct_out's check). */
static rq_status result_size_ok(const void *result, const char *what) {
    if (!result) return RQ_OK;
    size_t size = *(const size_t *)result;
    if (size < sizeof(size_t) || size > API_STRUCT_MAX)
        return rq_errorf(RQ_EINVAL, "%s: size %zu is not the struct's size", what, size);
    return RQ_OK;
}

rotquant_status rotquant_quantize(const char *in, const char *out, const rotquant_quantize_params *params,
                                  rotquant_quantize_result *result) {
    if (!in || !out) return (rotquant_status)null_arg("rotquant_quantize", !in ? "in" : "out");
    rotquant_quantize_params p;
    API_TRY(params_in(params, &p, sizeof p, "rotquant_quantize_params"));
    rq_quant_opts o;
    API_TRY(quant_opts(&p, &o));
    API_TRY(result_size_ok(result, "rotquant_quantize_result"));
    rq_quant_result r;
    api_lock();
    rq_status s = rq_quant_run(in, out, &o, &r);
    api_unlock();
    API_TRY(s);
    if (!result) return ROTQUANT_OK;
    rotquant_quantize_result q = {.size = sizeof q, .bits_per_weight = r.qi.bits_per_weight, .calib_n = r.calib_n,
                                  .calib_len = r.calib_len, .seconds = r.t_total};
    rq_qinfo qi = r.qi;
    qi.present = true; /* what was written (rq_quant_qinfo leaves the reader's flag unset) */
    rq_qinfo_short(&qi, q.scheme, sizeof q.scheme);
    rq_qinfo_describe(&qi, q.description, sizeof q.description);
    return (rotquant_status)struct_out(result, &q, sizeof q, "rotquant_quantize_result");
}

/* ---- export for llama.cpp ------------------------------------------------------------------ */

static rq_status export_opts(const rotquant_export_params *p, rq_export_opts *o) {
    *o = rq_export_opts_default();
    RQ_TRY(rq_gg_type_parse(p->type ? p->type : rq_gg_type_cli_name(o->type), false, "--type", &o->type));
    RQ_TRY(rq_gg_type_parse(p->embd_type ? p->embd_type : rq_gg_type_cli_name(o->embd_type), true, "--embd-type",
                            &o->embd_type));
    RQ_TRY(common_opts(p->method, p->rotation, p->rotation_block, p->rotation2, p->calib, p->calib_ids, p->calib_n,
                       p->calib_len, p->seed, p->progress, &o->q));
    return rq_quant_opts_check(&o->q);
}

rotquant_status rotquant_export(const char *in, const char *out, const rotquant_export_params *params,
                                rotquant_export_result *result) {
    if (!in || !out) return (rotquant_status)null_arg("rotquant_export", !in ? "in" : "out");
    rotquant_export_params p;
    API_TRY(params_in(params, &p, sizeof p, "rotquant_export_params"));
    rq_export_opts o;
    API_TRY(export_opts(&p, &o));
    API_TRY(result_size_ok(result, "rotquant_export_result"));
    rq_export_result r;
    api_lock();
    rq_status s = rq_export_run(in, out, &o, &r, NULL);
    api_unlock();
    API_TRY(s);
    if (!result) return ROTQUANT_OK;
    rotquant_export_result e = {.size = sizeof e, .bits_per_weight = r.bits_per_weight, .n_linears = r.n_lin,
                                .n_fallback = r.n_fallback, .file_bytes = r.file_bytes, .calib_n = r.calib_n,
                                .calib_len = r.calib_len, .seconds = r.t_total};
    snprintf(e.types, sizeof e.types, "%s", r.types);
    return (rotquant_status)struct_out(result, &e, sizeof e, "rotquant_export_result");
}
