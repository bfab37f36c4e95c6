/* Task evaluation: harness tokenization of each request, a token trie per item, items
 * packed into tree batches, log-likelihoods from the rows that score continuation tokens. */
#include "eval/tasks.h"

#include "base/hash.h"
#include "base/mpi.h"
#include "base/pool.h"
#include "base/timer.h"
#include "kernels/vmath.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of logits computed at once (LOGIT_ROWS × n_vocab floats). */
#define LOGIT_ROWS 64
#define DEFAULT_BATCH 512

/* ---- tokenization ---------------------------------------------------------------------- */

rq_status rq_task_encode_pair(const rq_tokenizer *tok, const rq_task_request *rq, int32_t **ctx, int64_t *n_ctx,
                              int32_t **cont, int64_t *n_cont) {
    *ctx = *cont = NULL;
    *n_ctx = *n_cont = 0;
    bool add_bos = rq_tokenizer_add_bos_default(tok);
    if (rq->context_len == 0) {
        /* the harness: context_enc = [prefix_token_id] (BOS, else EOS), continuation alone */
        int32_t pre = rq_tokenizer_bos(tok) >= 0 ? rq_tokenizer_bos(tok) : rq_tokenizer_eos(tok);
        if (pre < 0) return rq_errorf(RQ_EINVAL, "empty context and the tokenizer has neither BOS nor EOS");
        RQ_TRY(rq_tokenizer_encode(tok, rq->continuation, rq->continuation_len, false, false, cont, n_cont));
        *ctx = rq_xalloc(sizeof(int32_t));
        (*ctx)[0] = pre;
        *n_ctx = 1;
        return RQ_OK;
    }
    /* move the context's trailing whitespace to the continuation */
    int64_t ws = rq_task_rstrip_len(rq->context, rq->context_len);
    int64_t cl = rq->context_len - ws;
    int64_t wl = rq->context_len + rq->continuation_len;
    char *whole = rq_xalloc(wl + 1);
    memcpy(whole, rq->context, (size_t)rq->context_len);
    memcpy(whole + rq->context_len, rq->continuation, (size_t)rq->continuation_len);
    whole[wl] = 0;
    int32_t *w = NULL, *c = NULL;
    int64_t nw = 0, nc = 0;
    rq_status s = rq_tokenizer_encode(tok, whole, wl, add_bos, false, &w, &nw);
    if (s == RQ_OK) s = rq_tokenizer_encode(tok, whole, cl, add_bos, false, &c, &nc);
    rq_free(whole);
    if (s != RQ_OK) {
        rq_free(w);
        rq_free(c);
        return s;
    }
    if (nc == 0) { /* a context of only whitespace: nothing left to condition on */
        rq_free(w);
        rq_free(c);
        return rq_errorf(RQ_EINVAL, "context '%.40s' has no tokens once its trailing whitespace is moved",
                         rq->context);
    }
    int64_t k = nw > nc ? nw - nc : 0;
    *cont = rq_xalloc((k ? k : 1) * (int64_t)sizeof(int32_t));
    if (k) memcpy(*cont, w + nc, (size_t)k * sizeof(int32_t));
    *n_cont = k;
    *ctx = c;
    *n_ctx = nc;
    rq_free(w);
    return RQ_OK;
}

/* ---- per-item token tries --------------------------------------------------------------- */

typedef struct {
    int32_t *seq;   /* [len] context ++ continuation tokens as fed (after truncation) */
    int64_t len;
    int64_t n_ctx;  /* context tokens in seq; rows n_ctx-1 .. len-2 score the continuation */
    int32_t *slot;  /* [len - 1] trie slot (within the item) of each input token seq[0..len-1) */
    bool truncated;
    double ll;
    bool greedy;
} req_tok;

typedef struct {
    req_tok *r;      /* [n_req] */
    int32_t *tok;    /* [n_nodes] trie tokens in depth-first pre-order */
    int32_t *parent; /* [n_nodes] parent slot within the item, -1 for a root */
    int64_t n_nodes;
} item_tok;

typedef struct {
    const rq_task *task;
    const rq_tokenizer *tok;
    int64_t max_len;
    item_tok *items;
    rq_status *status; /* [n_threads] first error of each thread */
    char (*errmsg)[256];
} tok_job;

static int cmp_inputs(const req_tok *a, const req_tok *b) {
    int64_t na = a->len - 1, nb = b->len - 1, n = na < nb ? na : nb;
    for (int64_t i = 0; i < n; i++)
        if (a->seq[i] != b->seq[i]) return a->seq[i] < b->seq[i] ? -1 : 1;
    return na < nb ? -1 : na > nb;
}

static rq_status tokenize_item(const tok_job *j, int64_t i) {
    const rq_task_item *it = &j->task->items[i];
    item_tok *o = &j->items[i];
    o->r = rq_xcalloc(it->n_req * (int64_t)sizeof(req_tok));
    int64_t total = 0;
    for (int k = 0; k < it->n_req; k++) {
        int32_t *ctx, *cont;
        int64_t nctx, ncont;
        rq_status s = rq_task_encode_pair(j->tok, &it->req[k], &ctx, &nctx, &cont, &ncont);
        if (s != RQ_OK) return s;
        req_tok *r = &o->r[k];
        r->len = nctx + ncont;
        r->seq = rq_xalloc(r->len * (int64_t)sizeof(int32_t));
        memcpy(r->seq, ctx, (size_t)nctx * sizeof(int32_t));
        memcpy(r->seq + nctx, cont, (size_t)ncont * sizeof(int32_t));
        r->n_ctx = nctx;
        rq_free(ctx);
        rq_free(cont);
        /* the harness: (context + continuation)[-(max_length + 1):] */
        if (r->len > j->max_len + 1) {
            if (ncont > j->max_len)
                return rq_errorf(RQ_EINVAL, "continuation of %lld tokens is longer than max_len %lld",
                                 (long long)ncont, (long long)j->max_len);
            int64_t cut = r->len - (j->max_len + 1);
            memmove(r->seq, r->seq + cut, (size_t)(r->len - cut) * sizeof(int32_t));
            r->len -= cut;
            r->n_ctx -= cut;
            r->truncated = true;
        }
        r->slot = rq_xalloc((r->len > 1 ? r->len - 1 : 1) * (int64_t)sizeof(int32_t));
        total += r->len - 1;
    }
    /* trie: requests in lexicographic order of their inputs seq[0..len-1); each shares its
     * longest common prefix with the one before (the longest over all before it), whose
     * path is the current path of the pre-order */
    int order[64];
    RQ_ASSERT(it->n_req <= 64);
    for (int k = 0; k < it->n_req; k++) order[k] = k;
    for (int a = 1; a < it->n_req; a++)
        for (int b = a; b > 0 && cmp_inputs(&o->r[order[b]], &o->r[order[b - 1]]) < 0; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    o->tok = rq_xalloc((total ? total : 1) * (int64_t)sizeof(int32_t));
    o->parent = rq_xalloc((total ? total : 1) * (int64_t)sizeof(int32_t));
    o->n_nodes = 0;
    const req_tok *prev = NULL;
    for (int a = 0; a < it->n_req; a++) {
        req_tok *r = &o->r[order[a]];
        int64_t nin = r->len - 1, lcp = 0;
        if (prev) {
            int64_t np = prev->len - 1;
            while (lcp < nin && lcp < np && r->seq[lcp] == prev->seq[lcp]) lcp++;
            memcpy(r->slot, prev->slot, (size_t)lcp * sizeof(int32_t));
        }
        for (int64_t q = lcp; q < nin; q++) {
            o->tok[o->n_nodes] = r->seq[q];
            o->parent[o->n_nodes] = q ? r->slot[q - 1] : -1;
            r->slot[q] = (int32_t)o->n_nodes++;
        }
        prev = r;
    }
    return RQ_OK;
}

static void tokenize_items(void *ctx, int64_t b, int64_t e, int thread) {
    tok_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        if (j->status[thread] != RQ_OK) return;
        rq_status s = tokenize_item(j, i);
        if (s != RQ_OK) {
            j->status[thread] = s;
            snprintf(j->errmsg[thread], sizeof j->errmsg[thread], "%s:%lld: %s", rq_task_name(j->task->id),
                     (long long)j->task->items[i].line, rq_last_error());
        }
    }
}

static void free_items(item_tok *items, const rq_task *task) {
    if (!items) return;
    for (int64_t i = 0; i < task->n_items; i++) {
        item_tok *o = &items[i];
        if (o->r)
            for (int k = 0; k < task->items[i].n_req; k++) {
                rq_free(o->r[k].seq);
                rq_free(o->r[k].slot);
            }
        rq_free(o->r);
        rq_free(o->tok);
        rq_free(o->parent);
    }
    rq_free(items);
}

/* ---- scoring ------------------------------------------------------------------------------ */

typedef struct {
    int32_t row;    /* index among the batch's scored rows */
    int32_t target; /* token the row must predict */
    req_tok *r;
} score_entry;

static int cmp_entry(const void *a, const void *b) {
    const score_entry *x = a, *y = b;
    return (x->row > y->row) - (x->row < y->row);
}

typedef struct {
    const float *logits; /* [rows, n_vocab] */
    int64_t n_vocab;
    double *lse;  /* [rows] log Σ exp */
    int32_t *amax; /* [rows] first argmax */
    const rq_vmath *vm;
} row_job;

static void row_stats(void *ctx, int64_t b, int64_t e, int thread) {
    const row_job *j = ctx;
    for (int64_t r = b; r < e; r++) {
        const float *x = j->logits + r * j->n_vocab;
        int32_t best = 0;
        for (int64_t v = 1; v < j->n_vocab; v++)
            if (x[v] > x[best]) best = (int32_t)v;
        j->amax[r] = best;
        j->lse[r] = log(j->vm->exp_sum(NULL, x, j->n_vocab, x[best])) + (double)x[best];
    }
}

/* Every rank's requests of items [i0, i1) to every rank: each fills its entries of a
 * zeroed [n_requests, 2] array (ll, greedy) and the arrays are summed; each entry has one
 * non-zero term, so the sum is that term exactly. */
static rq_status gather_requests(item_tok *items, const rq_task *task, int64_t i0, int64_t i1) {
    int64_t n_req = 0;
    for (int64_t i = 0; i < task->n_items; i++) n_req += task->items[i].n_req;
    double *v = rq_calloc(2 * n_req * (int64_t)sizeof(double)); /* [n_req, 2] */
    if (!v) return RQ_ENOMEM;
    for (int64_t i = 0, j = 0; i < task->n_items; i++)
        for (int k = 0; k < task->items[i].n_req; k++, j++)
            if (i >= i0 && i < i1) v[2 * j] = items[i].r[k].ll, v[2 * j + 1] = items[i].r[k].greedy;
    rq_status s = rq_mpi_sum_f64(v, 2 * n_req);
    for (int64_t i = 0, j = 0; i < task->n_items && s == RQ_OK; i++)
        for (int k = 0; k < task->items[i].n_req; k++, j++)
            items[i].r[k].ll = v[2 * j], items[i].r[k].greedy = v[2 * j + 1] != 0;
    rq_free(v);
    return s;
}

rq_status rq_task_eval(const rq_model *m, const rq_tokenizer *tok, const rq_task *task,
                       const rq_task_eval_params *p, rq_task_result *out) {
    memset(out, 0, sizeof *out);
    out->id = task->id;
    out->n_items = task->n_items;
    const int64_t V = m->cfg.n_vocab, D = m->cfg.n_embd;
    if (rq_tokenizer_n_vocab(tok) > V)
        return rq_errorf(RQ_EINVAL, "tokenizer has %d tokens, the model %lld", rq_tokenizer_n_vocab(tok), (long long)V);
    int64_t B = p->batch_tokens > 0 ? p->batch_tokens : DEFAULT_BATCH;
    int64_t max_len = p->max_len > 0 ? p->max_len : m->cfg.n_ctx_train;
    if (max_len < 1) max_len = 1;
    double t0 = rq_time_now();

    /* 1. tokenize every item (in parallel) and build its trie */
    int nt = rq_threads_get();
    tok_job tj = {.task = task, .tok = tok, .max_len = max_len};
    tj.items = rq_xcalloc(task->n_items * (int64_t)sizeof(item_tok));
    tj.status = rq_xcalloc(nt * (int64_t)sizeof(rq_status));
    tj.errmsg = rq_xcalloc(nt * (int64_t)sizeof *tj.errmsg);
    rq_parallel_for(task->n_items, 8, tokenize_items, &tj);
    rq_status s = RQ_OK;
    for (int t = 0; t < nt; t++)
        if (tj.status[t] != RQ_OK && s == RQ_OK) s = rq_errorf(tj.status[t], "%s", tj.errmsg[t]);
    rq_free(tj.status);
    rq_free(tj.errmsg);
    if (s != RQ_OK) {
        free_items(tj.items, task);
        return s;
    }
    item_tok *items = tj.items;
    int64_t max_nodes = 1;
    for (int64_t i = 0; i < task->n_items; i++) {
        max_nodes = items[i].n_nodes > max_nodes ? items[i].n_nodes : max_nodes;
        out->n_tokens += items[i].n_nodes;
        for (int k = 0; k < task->items[i].n_req; k++) {
            out->n_tokens_flat += items[i].r[k].len - 1;
            out->n_truncated += items[i].r[k].truncated;
        }
        out->n_requests += task->items[i].n_req;
    }
    out->seconds_tokenize = rq_time_now() - t0;

    /* 2. batches of whole items: [bstart[b], bstart[b + 1]); under MPI (base/mpi.h) each
     * rank runs its share of the batches, the same batches as one process, so every
     * request's log-likelihood comes out of the same computation whatever the rank count */
    int64_t n_batches = 0;
    int64_t *bstart = rq_xalloc((task->n_items + 1) * (int64_t)sizeof(int64_t));
    for (int64_t i0 = 0; i0 < task->n_items; n_batches++) {
        int64_t n = 0, i1 = i0;
        while (i1 < task->n_items && (i1 == i0 || n + items[i1].n_nodes <= B)) n += items[i1++].n_nodes;
        bstart[n_batches] = i0;
        i0 = i1;
    }
    bstart[n_batches] = task->n_items;
    int64_t b0, b1;
    rq_mpi_share(n_batches, &b0, &b1);
    if (rq_mpi_size() > 1) { /* every rank the same requests */
        uint64_t h = rq_hash64(&B, sizeof B, 0);
        for (int64_t i = 0; i < task->n_items; i++)
            for (int k = 0; k < task->items[i].n_req; k++)
                h = rq_hash64(items[i].r[k].seq, items[i].r[k].len * (int64_t)sizeof(int32_t), h);
        if ((s = rq_mpi_check_same(h, rq_task_name(task->id))) != RQ_OK) {
            rq_free(bstart);
            free_items(items, task);
            return rq_error_prefix(s, "tasks: the requests or options");
        }
    }
    int64_t cap = B > max_nodes ? B : max_nodes;
    rq_state *st = NULL;
    s = rq_state_new(m, cap, cap, false, &st);
    int32_t *btok = rq_alloc(cap * (int64_t)sizeof(int32_t));
    int32_t *bpar = rq_alloc(cap * (int64_t)sizeof(int32_t));
    int32_t *row_of = rq_alloc(cap * (int64_t)sizeof(int32_t)); /* slot -> scored row or -1 */
    int32_t *rows = rq_alloc(cap * (int64_t)sizeof(int32_t));   /* scored row -> slot */
    float *hid = rq_alloc(LOGIT_ROWS * D * (int64_t)sizeof(float));
    float *logits = rq_alloc(LOGIT_ROWS * V * (int64_t)sizeof(float));
    double *lse = rq_alloc(LOGIT_ROWS * (int64_t)sizeof(double));
    int32_t *amax = rq_alloc(LOGIT_ROWS * (int64_t)sizeof(int32_t));
    int64_t ecap = 4 * cap;
    score_entry *ent = rq_alloc(ecap * (int64_t)sizeof(score_entry));
    if (s == RQ_OK && (!btok || !bpar || !row_of || !rows || !hid || !logits || !lse || !amax || !ent)) s = RQ_ENOMEM;
    rq_progress pr;
    char label[64];
    snprintf(label, sizeof label, "%s", rq_task_name(task->id));
    rq_progress_start(&pr, label, bstart[b1] - bstart[b0], p->progress);
    row_job rj = {.logits = logits, .n_vocab = V, .lse = lse, .amax = amax, .vm = rq_vmath_get()};
    for (int64_t bi = b0; bi < b1 && s == RQ_OK; bi++) {
        /* gather items [i0, i1) */
        int64_t n = 0, i0 = bstart[bi], i1 = bstart[bi + 1];
        for (int64_t i = i0; i < i1; i++) {
            item_tok *o = &items[i];
            for (int64_t q = 0; q < o->n_nodes; q++) {
                btok[n + q] = o->tok[q];
                bpar[n + q] = o->parent[q] < 0 ? -1 : o->parent[q] + (int32_t)n;
            }
            n += o->n_nodes;
        }
        /* score entries: row (slot) n_ctx-1+t predicts seq[n_ctx+t] */
        int64_t n_ent = 0, n_rows = 0;
        for (int64_t q = 0; q < n; q++) row_of[q] = -1;
        for (int64_t i = i0, base = 0; i < i1; base += items[i].n_nodes, i++)
            for (int k = 0; k < task->items[i].n_req; k++) {
                req_tok *r = &items[i].r[k];
                r->ll = 0;
                r->greedy = true;
                for (int64_t q = r->n_ctx - 1; q < r->len - 1; q++) {
                    int32_t slot = (int32_t)base + r->slot[q];
                    if (row_of[slot] < 0) rows[n_rows] = slot, row_of[slot] = (int32_t)n_rows++;
                    if (n_ent == ecap) {
                        score_entry *e2 = rq_xalloc(2 * ecap * (int64_t)sizeof(score_entry));
                        memcpy(e2, ent, (size_t)n_ent * sizeof(score_entry));
                        rq_free(ent);
                        ent = e2;
                        ecap *= 2;
                    }
                    ent[n_ent++] = (score_entry){.row = row_of[slot], .target = r->seq[q + 1], .r = r};
                }
            }
        if (n > 0) {
            s = rq_model_forward_tree(st, btok, bpar, n, RQ_LOGITS_NONE);
            if (s != RQ_OK) break;
        }
        /* entries in row order, rows in chunks of LOGIT_ROWS; sums per request in row
         * order, i.e. in the order of its continuation tokens (deterministic) */
        qsort(ent, (size_t)n_ent, sizeof *ent, cmp_entry);
        for (int64_t r0 = 0, e = 0; r0 < n_rows; r0 += LOGIT_ROWS) {
            int64_t nr = n_rows - r0 < LOGIT_ROWS ? n_rows - r0 : LOGIT_ROWS;
            for (int64_t q = 0; q < nr; q++)
                memcpy(hid + q * D, st->hidden + (int64_t)rows[r0 + q] * D, (size_t)D * sizeof(float));
            rq_model_logits(m, hid, nr, logits);
            rq_parallel_for(nr, 1, row_stats, &rj);
            for (; e < n_ent && ent[e].row < r0 + nr; e++) {
                int64_t q = ent[e].row - r0;
                ent[e].r->ll += (double)logits[q * V + ent[e].target] - lse[q];
                ent[e].r->greedy &= amax[q] == ent[e].target;
            }
        }
        rq_progress_step(&pr, i1 - i0, NULL);
    }
    rq_progress_finish(&pr);
    if (s == RQ_OK && rq_mpi_size() > 1) s = gather_requests(items, task, bstart[b0], bstart[b1]);
    rq_free(bstart);
    rq_state_free(st);
    rq_free(btok), rq_free(bpar), rq_free(row_of), rq_free(rows), rq_free(hid), rq_free(logits), rq_free(lse);
    rq_free(amax), rq_free(ent);
    if (s != RQ_OK) {
        free_items(items, task);
        return s;
    }

    /* 3. metrics */
    int64_t n_acc = 0, n_norm = 0;
    double sum_ll = 0, sum_ll2 = 0;
    for (int64_t i = 0; i < task->n_items; i++) {
        const rq_task_item *it = &task->items[i];
        double ll[64];
        for (int k = 0; k < it->n_req; k++) ll[k] = items[i].r[k].ll;
        if (task->id == RQ_TASK_LAMBADA) {
            n_acc += items[i].r[0].greedy;
            sum_ll += ll[0];
            sum_ll2 += ll[0] * ll[0];
        } else {
            int pred, pred_norm;
            rq_task_predict(it, ll, &pred, &pred_norm);
            n_acc += pred == it->gold;
            n_norm += pred_norm == it->gold;
        }
        if (p->on_request)
            for (int k = 0; k < it->n_req; k++) {
                const req_tok *r = &items[i].r[k];
                p->on_request(p->user, task, i, k, r->seq, r->n_ctx, r->seq + r->n_ctx, r->len - r->n_ctx, r->ll,
                              r->greedy);
            }
    }
    double N = (double)task->n_items;
    out->acc = (double)n_acc / N;
    out->acc_stderr = rq_task_stderr(out->acc, task->n_items);
    if (rq_task_has_acc_norm(task->id)) {
        out->has_acc_norm = true;
        out->acc_norm = (double)n_norm / N;
        out->acc_norm_stderr = rq_task_stderr(out->acc_norm, task->n_items);
    }
    if (task->id == RQ_TASK_LAMBADA) {
        double mean = sum_ll / N, var = task->n_items > 1 ? (sum_ll2 - N * mean * mean) / (N - 1) : 0;
        out->has_ppl = true;
        out->ppl = exp(-mean);
        out->ppl_stderr = var > 0 ? out->ppl * sqrt(var / N) : 0;
    }
    free_items(items, task);
    out->seconds = rq_time_now() - t0;
    return RQ_OK;
}
