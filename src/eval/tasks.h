/* Zero-shot multiple-choice and cloze tasks, scored by log-likelihood exactly as
 * EleutherAI's lm-evaluation-harness (v0.4) scores them; docs/tasks.md gives each task's
 * prompt template, target and metric, and where our choices come from.
 *
 *   arc_easy, arc_challenge  ctx "Question: {stem}\nAnswer:", choices " {text}"; acc, acc_norm
 *   piqa                     ctx "Question: {goal}\nAnswer:", choices " {sol1}", " {sol2}"; acc, acc_norm
 *   winogrande               partial scoring: ctx_i = sentence[:blank] + option_i,
 *                            continuation " " + strip(sentence[blank+1:]) (the same for both); acc
 *   lambada (OpenAI)         ctx = text up to its last ' ', continuation = ' ' + last word;
 *                            acc = every continuation token is the argmax; perplexity
 *   boolq                    ctx "{passage}\nQuestion: {question}?\nAnswer:", choices " no", " yes"; acc
 *
 * A task file is read whole (and checked whole) before --limit keeps its first items. A
 * malformed file (bad JSON, a missing or mistyped field, a label out of range, a label
 * file whose length differs from the item file's) gives RQ_EFORMAT with the message
 * "FILE:LINE: what".
 *
 * Evaluation (rq_task_eval): each request (context, continuation) is tokenized as the
 * harness's HF model does (trailing whitespace of the context moved to the continuation;
 * continuation tokens = tokens(context + continuation) after the first len(tokens(context));
 * BOS only where the tokenizer adds one (tokenizer.ggml.add_bos_token; false for
 * SmolLM2); an empty context becomes [BOS] (else [EOS]) and the continuation is then
 * tokenized alone, without BOS). Special-token text in the data is tokenized as text.
 * The requests of an item form a token trie (a shared context is evaluated once, shared
 * WinoGrande prefixes too), tries of several items are packed into one tree batch
 * (rq_model_forward_tree), and logits are computed only for the rows that score a
 * continuation token. */
#ifndef RQ_EVAL_TASKS_H
#define RQ_EVAL_TASKS_H

#include "base/status.h"
#include "model/model.h"
#include "text/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum rq_task_id {
    RQ_TASK_ARC_EASY = 0,
    RQ_TASK_ARC_CHALLENGE = 1,
    RQ_TASK_PIQA = 2,
    RQ_TASK_WINOGRANDE = 3,
    RQ_TASK_LAMBADA = 4,
    RQ_TASK_BOOLQ = 5,
    RQ_TASK_COUNT
} rq_task_id;

/* "arc_easy", "arc_challenge", "piqa", "winogrande", "lambada", "boolq". */
const char *rq_task_name(rq_task_id id);
/* Accepts the names above (and "lambada_openai"); RQ_EINVAL naming the known tasks. */
rq_status rq_task_from_name(const char *name, rq_task_id *out);
/* Files of a task relative to the data directory; *labels is NULL when the labels are
 * inside the item file. */
void rq_task_files(rq_task_id id, const char **items, const char **labels);
/* Whether the harness reports acc_norm for the task (ARC-E, ARC-C, PIQA). */
bool rq_task_has_acc_norm(rq_task_id id);

/* One (context, continuation) pair scored by its log-likelihood. Strings are UTF-8,
 * NUL-terminated (lengths exclude the NUL). */
typedef struct rq_task_request {
    char *context;
    int64_t context_len;
    char *continuation;
    int64_t continuation_len;
} rq_task_request;

typedef struct rq_task_item {
    int64_t line;         /* 1-based line of the item in its file */
    int n_req;            /* choices; 1 for LAMBADA */
    rq_task_request *req; /* [n_req] */
    double *norm_len;     /* [n_req] the harness's acc_norm divisor: len() of the choice string
                           * (Unicode code points, without the leading space) */
    int gold;             /* index of the correct request (0 for LAMBADA) */
} rq_task_item;

typedef struct rq_task {
    rq_task_id id;
    int64_t n_items;
    rq_task_item *items; /* [n_items] */
    int64_t n_file_items; /* items in the file before --limit */
} rq_task;

/* Build a task from the text of its item file (and label file, NULL for tasks without
 * one). `name`/`labels_name` are used in error messages ("name:LINE: what"). limit > 0
 * keeps the first `limit` items (after checking the whole file). *out: rq_task_free. */
rq_status rq_task_parse(rq_task_id id, const char *text, int64_t len, const char *name, const char *labels,
                        int64_t labels_len, const char *labels_name, int64_t limit, rq_task **out);
/* Read the task's files under data_dir (see rq_task_files) and parse them. */
rq_status rq_task_load(rq_task_id id, const char *data_dir, int64_t limit, rq_task **out);
void rq_task_free(rq_task *t);

/* ---- scoring arithmetic (exposed for tests) ------------------------------------------- */

/* numpy.argmax over x[n]: the first maximum; the first NaN if there is one. */
int rq_task_argmax(const double *x, int n);
/* Prediction from per-request log-likelihoods ll[n_req]: argmax(ll) and, for acc_norm,
 * argmax(ll / norm_len). */
void rq_task_predict(const rq_task_item *it, const double *ll, int *pred, int *pred_norm);
/* The harness's standard error of a mean of 0/1 values with mean p over n items:
 * sample stddev / sqrt(n) = sqrt(p (1 - p) / (n - 1)); 0 when n < 2. */
double rq_task_stderr(double p, int64_t n);

/* Bytes of trailing whitespace of s[0..n) that Python's str.rstrip() removes (code
 * points with str.isspace(): ASCII \t\n\v\f\r, 0x1C-0x1F, space, U+0085, U+00A0, U+1680,
 * U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000). Bytes that are not well-formed
 * UTF-8 end the whitespace. */
int64_t rq_task_rstrip_len(const char *s, int64_t n);

/* Tokens of a request as the harness builds them (see the file comment): *ctx (n_ctx
 * tokens, >= 1) and *cont (n_cont >= 0 tokens); both rq_free'd by the caller. */
rq_status rq_task_encode_pair(const rq_tokenizer *tok, const rq_task_request *rq, int32_t **ctx, int64_t *n_ctx,
                              int32_t **cont, int64_t *n_cont);

/* ---- evaluation ---------------------------------------------------------------------- */

/* Called once per request, in item order, after the task is scored: its tokens as fed
 * to the model (after any truncation), its log-likelihood and whether every continuation
 * token was the argmax. */
typedef void (*rq_task_request_fn)(void *user, const rq_task *task, int64_t item, int req, const int32_t *ctx,
                                   int64_t n_ctx, const int32_t *cont, int64_t n_cont, double ll, bool greedy);

typedef struct rq_task_eval_params {
    int64_t batch_tokens; /* tokens per forward batch (whole items; an item longer than this
                           * gets a batch of its own); <= 0: 512 */
    int64_t max_len;      /* the harness's max_length: a request longer than max_len + 1
                           * tokens loses context tokens on the left; <= 0: n_ctx_train */
    bool progress;        /* progress lines with ETA on stderr */
    rq_task_request_fn on_request; /* may be NULL */
    void *user;
} rq_task_eval_params;

typedef struct rq_task_result {
    rq_task_id id;
    int64_t n_items;
    double acc, acc_stderr;
    bool has_acc_norm;
    double acc_norm, acc_norm_stderr;
    bool has_ppl;            /* LAMBADA */
    double ppl, ppl_stderr;  /* exp(-mean ll); stderr by the delta method: ppl · stderr(ll) */
    int64_t n_requests;
    int64_t n_tokens;        /* tokens run through the model (trie nodes) */
    int64_t n_tokens_flat;   /* tokens a forward per request would have run */
    int64_t n_truncated;     /* requests shortened to max_len */
    double seconds;          /* wall time: tokenization, forward, scoring */
    double seconds_tokenize;
} rq_task_result;

rq_status rq_task_eval(const rq_model *m, const rq_tokenizer *tok, const rq_task *task,
                       const rq_task_eval_params *p, rq_task_result *out);

#endif
