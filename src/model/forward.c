/* Run state (KV cache, buffers) and the one forward pass. */
#include "model/model.h"

#include "base/pool.h"
#include "format/kv.h"
#include "kernels/actq.h"
#include "model/blas_threads.h"
#include "model/ops.h"

#include <math.h>
#include <string.h>

/* Query rows per attention work item: the scores of a block are [ATT_BLOCK, keys]. */
#define ATT_BLOCK 64
/* Work items per thread of the fused GEMM regions (q/k/v, gate/up). */
#define WORK_ITEMS_PER_THREAD 4

void rq_state_free(rq_state *st) {
    if (!st) return;
    rq_free(st->k_cache);
    rq_free(st->v_cache);
    rq_free(st->kq_cache);
    rq_free(st->vq_cache);
    rq_free(st->k_new);
    rq_free(st->v_new);
    rq_free(st->k_deq);
    rq_free(st->v_deq);
    rq_free(st->rope_cos);
    rq_free(st->rope_sin);
    rq_free(st->rope_cos_swa);
    rq_free(st->rope_sin_swa);
    rq_free(st->x);
    rq_free(st->xn);
    rq_free(st->q);
    rq_free(st->att);
    rq_free(st->gate);
    rq_free(st->up);
    rq_free(st->hidden);
    rq_free(st->logits);
    rq_free(st->scores);
    rq_free(st->tree_pos); /* one allocation holds tree_end and tree_root too */
    rq_free(st->seg_fill); /* and seg_next */
    rq_free(st->seg_pos);  /* and seg_slot, seg_blk */
    rq_free(st);
}

static float *alloc_f(int64_t a, int64_t b, rq_status *s) {
    int64_t n;
    if (*s != RQ_OK) return NULL;
    if (!rq_mul_ok(a, b, &n) || !rq_mul_ok(n, (int64_t)sizeof(float), &n)) {
        *s = rq_errorf(RQ_ENOMEM, "state buffer size overflows");
        return NULL;
    }
    float *p = rq_alloc(n > 0 ? n : 64);
    if (!p) *s = RQ_ENOMEM;
    return p;
}

rq_status rq_state_new(const rq_model *m, int64_t n_ctx, int64_t n_batch, bool all_logits, rq_state **out) {
    *out = NULL;
    const rq_model_config *c = &m->cfg;
    if (n_ctx < 1 || n_ctx > (INT64_C(1) << 24))
        return rq_errorf(RQ_EINVAL, "context size %lld out of range [1, %lld]", (long long)n_ctx,
                         (long long)(INT64_C(1) << 24));
    if (n_batch < 1 || n_batch > n_ctx)
        return rq_errorf(RQ_EINVAL, "batch size %lld out of range [1, %lld]", (long long)n_batch, (long long)n_ctx);
    {
        /* what one position adds (KV rows of every layer, float read-back, RoPE tables,
         * activations, a logits row), bounded by the model file's own size: no real
         * model comes near (SmolLM2: 0.3 MB of 90 MB), a crafted one (a huge vocabulary
         * over a 1-wide embedding) cannot make a context of n cost n times its size */
        int64_t qd = c->n_head * c->head_dim, kvd = c->n_head_kv * c->head_dim;
        int64_t floats = 2 * c->n_layer * kvd + 4 * kvd + 2 * c->rope_dim + 3 * c->n_embd + 2 * qd + 2 * c->n_ff +
                         c->n_vocab; /* dims <= MAX_DIM, layers <= MAX_LAYERS: no overflow */
        int64_t per_pos = floats * (int64_t)sizeof(float);
        if (m->file_bytes > 0 && per_pos > m->file_bytes)
            return rq_errorf(RQ_EFORMAT,
                             "the model's state takes %lld bytes per position (vocabulary %lld), more than its "
                             "whole file (%lld bytes): refusing a malformed model",
                             (long long)per_pos, (long long)c->n_vocab, (long long)m->file_bytes);
    }
    rq_state *st = rq_calloc(sizeof *st);
    if (!st) return RQ_ENOMEM;
    st->model = m;
    st->n_ctx = n_ctx;
    st->n_batch = n_batch;
    int64_t q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    rq_status s = RQ_OK;
    const rq_online *on = &m->online;
    if (on->cfg.kv_bits == 4 && !on->kv_fake) {
        /* packed cache; float only for the batch's new rows and one layer's read-back */
        st->kv_row_bytes = rq_kv4_row_bytes(kv_dim, on->cfg.kv_group);
        int64_t nb = 0;
        if (!rq_mul_ok(c->n_layer * n_ctx, st->kv_row_bytes, &nb)) s = rq_errorf(RQ_ENOMEM, "KV cache size overflows");
        if (s == RQ_OK && (!(st->kq_cache = rq_alloc(nb)) || !(st->vq_cache = rq_alloc(nb)))) s = RQ_ENOMEM;
        st->k_new = alloc_f(n_batch, kv_dim, &s);
        st->v_new = alloc_f(n_batch, kv_dim, &s);
        st->k_deq = alloc_f(n_ctx, kv_dim, &s);
        st->v_deq = alloc_f(n_ctx, kv_dim, &s);
    } else {
        st->k_cache = alloc_f(c->n_layer * n_ctx, kv_dim, &s);
        st->v_cache = alloc_f(c->n_layer * n_ctx, kv_dim, &s);
    }
    st->rope_cos = alloc_f(n_ctx, c->rope_dim / 2, &s);
    st->rope_sin = alloc_f(n_ctx, c->rope_dim / 2, &s);
    if (c->sliding_window > 0) {
        st->rope_cos_swa = alloc_f(n_ctx, c->rope_dim / 2, &s);
        st->rope_sin_swa = alloc_f(n_ctx, c->rope_dim / 2, &s);
    }
    st->x = alloc_f(n_batch, c->n_embd, &s);
    st->xn = alloc_f(n_batch, c->n_embd, &s);
    st->q = alloc_f(n_batch, q_dim, &s);
    st->att = alloc_f(n_batch, q_dim, &s);
    st->gate = alloc_f(n_batch, c->n_ff, &s);
    st->up = alloc_f(n_batch, c->n_ff, &s);
    st->hidden = alloc_f(n_batch, c->n_embd, &s);
    st->n_logits_rows = all_logits ? n_batch : 1;
    st->logits = alloc_f(st->n_logits_rows, c->n_vocab, &s);
    if (s != RQ_OK) {
        rq_state_free(st);
        return s;
    }
    rq_rope_table(n_ctx, c->rope_dim, c->rope_theta, c->rope_freq_scale, m->rope_freqs, st->rope_cos, st->rope_sin);
    /* local layers: their own base, no scaling (llama.cpp's rope_freq_scale_train_swa = 1) */
    if (st->rope_cos_swa) rq_rope_table(n_ctx, c->rope_dim, c->rope_theta_swa, 1.0, NULL, st->rope_cos_swa, st->rope_sin_swa);
    *out = st;
    return RQ_OK;
}

/* A plain or tree forward writes from slot 0 as one sequence: no segment holds anything. */
static void segments_forget(rq_state *st) {
    if (st->seg_fill) memset(st->seg_fill, 0, (size_t)st->n_seg * sizeof(int64_t));
}

void rq_state_reset(rq_state *st) {
    st->n_past = 0;
    segments_forget(st);
}

rq_status rq_state_set_segments(rq_state *st, int64_t seg_len) {
    if (seg_len < 1 || seg_len > st->n_ctx)
        return rq_errorf(RQ_EINVAL, "segments: segment length %lld out of range [1, %lld]", (long long)seg_len,
                         (long long)st->n_ctx);
    const rq_model_config *c = &st->model->cfg;
    int64_t n_seg = st->n_ctx / seg_len, kv_dim = c->n_head_kv * c->head_dim;
    int64_t *fill = rq_alloc(2 * n_seg * (int64_t)sizeof(int64_t));
    if (!fill) return RQ_ENOMEM;
    rq_status s = RQ_OK;
    if (!st->seg_pos && !(st->seg_pos = rq_alloc((3 * st->n_batch + 1) * (int64_t)sizeof(int64_t)))) s = RQ_ENOMEM;
    /* the batch's K/V rows before they are scattered to their slots */
    if (!st->k_new) st->k_new = alloc_f(st->n_batch, kv_dim, &s);
    if (!st->v_new) st->v_new = alloc_f(st->n_batch, kv_dim, &s);
    if (s != RQ_OK) {
        rq_free(fill);
        return s;
    }
    rq_free(st->seg_fill);
    st->seg_fill = fill;
    st->seg_next = fill + n_seg;
    st->seg_slot = st->seg_pos + st->n_batch;
    st->seg_blk = st->seg_pos + 2 * st->n_batch;
    st->seg_len = seg_len;
    st->n_seg = n_seg;
    for (int64_t i = 0; i < n_seg; i++) fill[i] = 0, st->seg_next[i] = -1;
    return RQ_OK;
}

int64_t rq_state_kv_bytes_per_token(const rq_state *st) {
    const rq_model_config *c = &st->model->cfg;
    int64_t row = st->kq_cache ? st->kv_row_bytes : c->n_head_kv * c->head_dim * (int64_t)sizeof(float);
    return 2 * c->n_layer * row;
}

/* ---- row-parallel helpers ------------------------------------------------------------ */

typedef struct {
    rq_state *st;
    const float *src;
    float *dst;
    const float *g;
    const rq_vmath *vm;
} rows_job;

static void rmsnorm_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const rows_job *j = ctx;
    int64_t d = j->st->model->cfg.n_embd;
    float eps = j->st->model->cfg.rms_eps;
    for (int64_t i = b; i < e; i++) j->vm->rmsnorm(j->src + i * d, j->g, d, eps, j->dst + i * d);
}

static void rmsnorm_all(rq_state *st, const float *src, const float *g, float *dst, int64_t n) {
    rows_job j = {.st = st, .src = src, .dst = dst, .g = g, .vm = st->vm};
    rq_parallel_for(n, 16, rmsnorm_rows, &j);
}

/* Gemma-3's post-norms: x[i] += RMSNorm(y[i])·g for rows i < n (y overwritten). */
static void post_norm_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const rows_job *j = ctx;
    int64_t d = j->st->model->cfg.n_embd;
    float eps = j->st->model->cfg.rms_eps;
    for (int64_t i = b; i < e; i++) {
        float *y = (float *)j->src + i * d, *x = j->dst + i * d;
        j->vm->rmsnorm(y, j->g, d, eps, y);
        for (int64_t k = 0; k < d; k++) x[k] += y[k];
    }
}

/* Route (a) of R1 through the post-norms (online.p1): the normed outputs are rotated before
 * the add, x[i] += (RMSNorm(y[i])·g)·R1. */
static void post_norm_only_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const rows_job *j = ctx;
    int64_t d = j->st->model->cfg.n_embd;
    float eps = j->st->model->cfg.rms_eps;
    for (int64_t i = b; i < e; i++) j->vm->rmsnorm(j->src + i * d, j->g, d, eps, (float *)j->src + i * d);
}

static void add_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const rows_job *j = ctx;
    int64_t d = j->st->model->cfg.n_embd;
    for (int64_t i = b * d; i < e * d; i++) j->dst[i] += j->src[i];
}

static void post_norm_add(rq_state *st, float *y, const float *g, int64_t n) {
    rows_job j = {.st = st, .src = y, .dst = st->x, .g = g, .vm = st->vm};
    const rq_rot_plan *p1 = st->model->online.p1;
    if (!p1) {
        rq_parallel_for(n, 16, post_norm_rows, &j);
        return;
    }
    rq_parallel_for(n, 16, post_norm_only_rows, &j);
    rq_rot_apply(p1, y, y, n); /* spreads its rows over the pool itself */
    rq_parallel_for(n, 16, add_rows, &j);
}

/* Per-token activation quantizer over rows x [n, dim] (no-op when off). */
typedef struct {
    const rq_actq *q;
    float *x;
    int64_t dim;
} actq_job;

static void actq_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const actq_job *j = ctx;
    for (int64_t i = b; i < e; i++) rq_actq_row(j->q, j->x + i * j->dim, j->dim);
}

/* The input x of linear l (and of the others sharing it) fake-quantized, unless l's
 * integer kernels quantize it themselves (act_bits set by rq_model_set_online). */
static void quant_input(rq_state *st, float *x, int64_t n, int64_t dim, const rq_linear *l) {
    const rq_actq *q = &st->model->online.cfg.act;
    if (q->bits == 0 || l->act_bits) return;
    actq_job j = {.q = q, .x = x, .dim = dim};
    rq_parallel_for(n, 8, actq_rows, &j);
}

/* The batch's K and V rows into the 4-bit cache: packed (from k_new/v_new) or, for a
 * fake-quantized float cache, quantized and dequantized in place. */
typedef struct {
    rq_state *st;
    int64_t layer, pos;
    float *k, *v; /* [n, kv_dim] */
} kvq_job;

static void kv_store_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const kvq_job *j = ctx;
    rq_state *st = j->st;
    const rq_model_config *c = &st->model->cfg;
    const rq_online_cfg *oc = &st->model->online.cfg;
    int64_t kv_dim = c->n_head_kv * c->head_dim;
    for (int64_t i = b; i < e; i++) {
        if (st->kq_cache) {
            int64_t at = (j->layer * st->n_ctx + j->pos + i) * st->kv_row_bytes;
            rq_kv4_quant_row_ref(j->k + i * kv_dim, kv_dim, oc->kv_group, oc->kv_clip, st->kq_cache + at);
            rq_kv4_quant_row_ref(j->v + i * kv_dim, kv_dim, oc->kv_group, oc->kv_clip, st->vq_cache + at);
        } else {
            rq_kv4_fake_row_ref(j->k + i * kv_dim, kv_dim, oc->kv_group, oc->kv_clip);
            rq_kv4_fake_row_ref(j->v + i * kv_dim, kv_dim, oc->kv_group, oc->kv_clip);
        }
    }
}

/* Packed cache rows [b, e) of a layer → k_deq / v_deq (the attention's float view). */
static void kv_load_rows(void *ctx, int64_t b, int64_t e, int thread) {
    const kvq_job *j = ctx;
    rq_state *st = j->st;
    const rq_model_config *c = &st->model->cfg;
    int64_t kv_dim = c->n_head_kv * c->head_dim, g = st->model->online.cfg.kv_group;
    int64_t at = (j->layer * st->n_ctx + b) * st->kv_row_bytes;
    rq_kv4_dequant_rows(st->kq_cache + at, e - b, kv_dim, g, st->k_deq + b * kv_dim, kv_dim);
    rq_kv4_dequant_rows(st->vq_cache + at, e - b, kv_dim, g, st->v_deq + b * kv_dim, kv_dim);
}

/* q, k, v in one parallel region: work items are blocks of `hpi` heads of q, then of
 * k, then of v; q and k blocks get their per-head norm (Gemma-3) and RoPE right after
 * their GEMM (a head's pairs lie inside its block). k and v are written straight into the float cache, or into k_new/v_new
 * when the cache is packed. */
typedef struct {
    rq_state *st;
    const rq_layer *L;
    float *kdst, *vdst; /* [n, kv_dim] */
    int64_t layer, n, pos;
    int64_t hpi;    /* heads per work item */
    int64_t nq, nk; /* work items of q and of k (= of v) */
} qkv_job;

static void qkv_items(void *ctx, int64_t b, int64_t e, int thread) {
    const qkv_job *j = ctx;
    rq_state *st = j->st;
    const rq_model_config *c = &st->model->cfg;
    int64_t hd = c->head_dim, half = c->rope_dim / 2, q_dim = c->n_head * hd, kv_dim = c->n_head_kv * hd;
    for (int64_t it = b; it < e; it++) {
        const rq_linear *l;
        float *y;
        int64_t ld, h0, n_heads, k = it;
        if (k < j->nq) l = &j->L->wq, y = st->q, ld = q_dim, n_heads = c->n_head;
        else if ((k -= j->nq) < j->nk) l = &j->L->wk, y = j->kdst, ld = kv_dim, n_heads = c->n_head_kv;
        else k -= j->nk, l = &j->L->wv, y = j->vdst, ld = kv_dim, n_heads = c->n_head_kv;
        h0 = k * j->hpi;
        int64_t h1 = h0 + j->hpi < n_heads ? h0 + j->hpi : n_heads;
        rq_linear_forward_cols(l, st->xn, j->n, h0 * hd, h1 * hd, y, ld, false);
        if (l == &j->L->wv) continue;
        const float *qk_norm = !c->qk_norm ? NULL : l == &j->L->wq ? j->L->q_norm : j->L->k_norm;
        bool swa = rq_model_layer_is_swa(c, j->layer);
        const float *cos_t = swa ? st->rope_cos_swa : st->rope_cos, *sin_t = swa ? st->rope_sin_swa : st->rope_sin;
        for (int64_t i = 0; i < j->n; i++) {
            int64_t p = st->tree ? st->tree_pos[i] : st->segments ? st->seg_pos[i] : j->pos + i;
            const float *cs = cos_t + p * half, *sn = sin_t + p * half;
            for (int64_t h = h0; h < h1; h++) {
                float *x = y + i * ld + h * hd;
                if (qk_norm && st->acts) { /* training: the pre-norm head */
                    const rq_layer_acts *A = &st->acts->layers[j->layer];
                    memcpy((l == &j->L->wq ? A->q_pre : A->k_pre) + i * ld + h * hd, x, (size_t)hd * sizeof(float));
                }
                if (qk_norm) st->vm->rmsnorm(x, qk_norm, hd, c->rms_eps, x);
                if (c->rope_neox) rq_rope_apply_neox(x, cs, sn, c->rope_dim);
                else rq_rope_apply(x, cs, sn, c->rope_dim);
            }
        }
    }
}

/* gate, up and SwiGLU (GELU for Gemma-3) in one parallel region over column blocks of n_ff. */
typedef struct {
    rq_state *st;
    const rq_layer *L;
    int64_t n, blk, layer;
} ffn_job;

static void gate_up_items(void *ctx, int64_t b, int64_t e, int thread) {
    const ffn_job *j = ctx;
    rq_state *st = j->st;
    int64_t f = st->model->cfg.n_ff;
    for (int64_t it = b; it < e; it++) {
        int64_t c0 = it * j->blk, c1 = c0 + j->blk < f ? c0 + j->blk : f;
        rq_linear_forward_cols(&j->L->w_gate, st->xn, j->n, c0, c1, st->gate, f, false);
        rq_linear_forward_cols(&j->L->w_up, st->xn, j->n, c0, c1, st->up, f, false);
        if (st->acts) { /* training: the pre-activations */
            const rq_layer_acts *A = &st->acts->layers[j->layer];
            for (int64_t i = 0; i < j->n; i++) {
                memcpy(A->gate + i * f + c0, st->gate + i * f + c0, (size_t)(c1 - c0) * sizeof(float));
                memcpy(A->up + i * f + c0, st->up + i * f + c0, (size_t)(c1 - c0) * sizeof(float));
            }
        }
        for (int64_t i = 0; i < j->n; i++) {
            if (st->model->cfg.ffn_gelu) rq_geglu(st->gate + i * f + c0, st->up + i * f + c0, c1 - c0);
            else st->vm->swiglu(st->gate + i * f + c0, st->up + i * f + c0, c1 - c0);
        }
    }
}

/* ---- attention ----------------------------------------------------------------------- */

typedef struct {
    rq_state *st;
    const float *kc, *vc; /* [n_ctx, kv_dim] this layer's keys and values (float view) */
    int64_t n, pos, n_qblk;
    int64_t window; /* 0: full causal; else a row at position p sees positions (p − window, p] */
} att_job;

/* Cache slot of batch row i: pos + i (plain; a tree batch has pos 0), or the row's own
 * slot in a segmented batch. Slots increase along the rows of an attention block. */
static inline int64_t row_slot(const att_job *j, int64_t i) {
    return j->st->segments ? j->st->seg_slot[i] : j->pos + i;
}

/* One work item: head h, query rows [i0, i1) of the batch, keys [lo, slot(i1−1)]; row i
 * sees keys lo..slot(i) (causal), a tree row only its ancestors among them. With a sliding
 * window W, row i sees only positions > its own − W: in a plain or segmented batch the
 * slots (slot(i) − W, slot(i)] (positions and slots of one sequence differ by a constant),
 * so the block's keys start at slot(i0) − W + 1 at the earliest; in a tree batch the
 * ancestors whose depth is > depth(i) − W. */
static void attention_items(void *ctx, int64_t b, int64_t e, int thread) {
    const att_job *j = ctx;
    rq_state *st = j->st;
    const rq_model_config *c = &st->model->cfg;
    int64_t hd = c->head_dim, q_dim = c->n_head * hd, kv_dim = c->n_head_kv * hd;
    int64_t group = c->n_head / c->n_head_kv;
    const float *kc = j->kc, *vc = j->vc;
    float *S = st->scores + (int64_t)thread * ATT_BLOCK * st->scores_keys;
    float scale = c->attn_scale;
    for (int64_t item = b; item < e; item++) {
        int64_t h = item / j->n_qblk, blk = item % j->n_qblk, i0, i1, lo;
        if (st->segments) {
            /* a block is a run of rows of one segment; its keys start at the segment's slot 0 */
            i0 = st->seg_blk[blk], i1 = st->seg_blk[blk + 1];
            lo = st->seg_slot[i0] - st->seg_pos[i0];
        } else {
            i0 = blk * ATT_BLOCK, i1 = i0 + ATT_BLOCK < j->n ? i0 + ATT_BLOCK : j->n;
            /* in a tree batch no row of the block sees a slot before the root of its first
             * row's sequence (sequences are contiguous, in order) */
            lo = st->tree ? st->tree_root[i0] : 0;
        }
        if (j->window > 0 && !st->tree && row_slot(j, i0) - j->window + 1 > lo) lo = row_slot(j, i0) - j->window + 1;
        int64_t m = i1 - i0, n_keys = row_slot(j, i1 - 1) + 1 - lo;
        const float *Q = st->q + i0 * q_dim + h * hd;
        const float *K = kc + lo * kv_dim + (h / group) * hd;
        const float *V = vc + lo * kv_dim + (h / group) * hd;
        float *O = st->att + i0 * q_dim + h * hd;
        if (m == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n_keys, (int)hd, scale, K, (int)kv_dim, Q, 1, 0.0f, S, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n_keys, (int)hd, scale, Q, (int)q_dim,
                        K, (int)kv_dim, 0.0f, S, (int)n_keys);
        for (int64_t r = 0; r < m; r++) {
            float *row = S + r * n_keys;
            int64_t valid = row_slot(j, i0 + r) + 1 - lo; /* causal: keys lo..slot */
            if (st->tree) {
                /* ancestors of slot s are the slots t <= s whose subtree contains s (and,
                 * with a window, whose depth is within it) */
                int64_t s = i0 + r, d_min = j->window > 0 ? st->tree_pos[s] - j->window + 1 : 0;
                for (int64_t t = lo; t < s; t++)
                    if (st->tree_end[t] <= s || st->tree_pos[t] < d_min) row[t - lo] = -INFINITY;
                rq_softmax(row, valid, st->vm);
                for (int64_t t = lo; t < s; t++)
                    if (st->tree_end[t] <= s || st->tree_pos[t] < d_min) row[t - lo] = 0.0f;
            } else if (j->window > 0 && valid > j->window) {
                /* keys before the window: the first valid − window of the row */
                int64_t skip = valid - j->window;
                rq_softmax(row + skip, j->window, st->vm);
                for (int64_t t = 0; t < skip; t++) row[t] = 0.0f;
            } else {
                rq_softmax(row, valid, st->vm);
            }
            for (int64_t t = valid; t < n_keys; t++) row[t] = 0.0f;
        }
        if (m == 1)
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)n_keys, (int)hd, 1.0f, V, (int)kv_dim, S, 1, 0.0f, O, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)hd, (int)n_keys, 1.0f, S, (int)n_keys,
                        V, (int)kv_dim, 0.0f, O, (int)q_dim);
    }
}

/* A packed cache's layout follows the model's KV configuration at state creation. */
static rq_status check_kv_layout(const rq_state *st) {
    const rq_model *m = st->model;
    const rq_online_cfg *oc = &m->online.cfg;
    if (!st->kq_cache) return RQ_OK;
    int64_t kv_dim = m->cfg.n_head_kv * m->cfg.head_dim;
    if (oc->kv_bits != 4 || rq_kv4_row_bytes(kv_dim, oc->kv_group) != st->kv_row_bytes)
        return rq_errorf(RQ_EINVAL, "forward: the state's packed KV cache was made for another KV configuration "
                         "of the model (create a new state after rq_model_set_online)");
    return RQ_OK;
}

/* Attention scratch for score rows of up to `keys` keys (grows only). */
static rq_status ensure_scores(rq_state *st, int64_t keys) {
    int nt = rq_threads_get();
    if (st->scores && st->n_threads_alloc >= nt && st->scores_keys >= keys) return RQ_OK;
    if (keys < st->scores_keys) keys = st->scores_keys;
    rq_free(st->scores);
    st->scores = NULL;
    rq_status s = RQ_OK;
    st->scores = alloc_f((int64_t)nt * ATT_BLOCK, keys, &s);
    st->n_threads_alloc = st->scores ? nt : 0;
    st->scores_keys = st->scores ? keys : 0;
    return s;
}

/* ---- the forward pass ---------------------------------------------------------------- */

static void hook(rq_state *st, int64_t layer, rq_site site, const float *x, int64_t n, int64_t dim) {
    if (st->hook) st->hook(st->hook_user, layer, site, x, n, dim);
}

/* Training: dst [n, dim] ← src (when the state saves activations). */
static void save_act(const rq_state *st, float *dst, const float *src, int64_t n, int64_t dim) {
    if (st->acts) memcpy(dst, src, (size_t)(n * dim) * sizeof(float));
}

static void layer_forward(rq_state *st, int64_t l, int64_t n, int64_t pos) {
    const rq_model *m = st->model;
    const rq_model_config *c = &m->cfg;
    const rq_layer *L = &m->layers[l];
    int64_t q_dim = c->n_head * c->head_dim;

    const rq_online *on = &m->online;
    int64_t kv_dim = c->n_head_kv * c->head_dim;
    rq_layer_acts *A = st->acts ? &st->acts->layers[l] : NULL;

    /* attention block */
    if (A) save_act(st, A->x_in, st->x, n, c->n_embd);
    rmsnorm_all(st, st->x, L->attn_norm, st->xn, n);
    if (on->pi) rq_rot_apply(on->pi, st->xn, st->xn, n); /* route (b): Ri (its inverse is in q/k/v) */
    quant_input(st, st->xn, n, c->n_embd, &L->wq);
    hook(st, l, RQ_SITE_ATTN_IN, st->xn, n, c->n_embd);
    /* about WORK_ITEMS_PER_THREAD items per thread: balance against the cost of packing
     * the activations once per GEMM call */
    int nt = rq_threads_get();
    int64_t hpi = (c->n_head + 2 * c->n_head_kv) / (WORK_ITEMS_PER_THREAD * nt);
    hpi = hpi < 1 ? 1 : hpi;
    bool packed = st->kq_cache != NULL;
    float *layer_k = packed ? NULL : st->k_cache + l * st->n_ctx * kv_dim;
    float *layer_v = packed ? NULL : st->v_cache + l * st->n_ctx * kv_dim;
    /* rows go straight to the float cache when their slots are contiguous; else (packed,
     * segmented) to k_new/v_new first */
    bool staged = packed || st->segments;
    qkv_job qj = {.st = st, .L = L, .layer = l, .n = n, .pos = pos, .hpi = hpi,
                  .kdst = staged ? st->k_new : layer_k + pos * kv_dim,
                  .vdst = staged ? st->v_new : layer_v + pos * kv_dim,
                  .nq = (c->n_head + hpi - 1) / hpi, .nk = (c->n_head_kv + hpi - 1) / hpi};
    rq_parallel_for(qj.nq + 2 * qj.nk, 1, qkv_items, &qj);
    if (A) {
        save_act(st, A->q, st->q, n, q_dim);
        save_act(st, A->k, qj.kdst, n, kv_dim);
        save_act(st, A->v, qj.vdst, n, kv_dim);
    }
    if (on->p3) { /* R3 per head, after RoPE */
        rq_rot_apply(on->p3, st->q, st->q, n * c->n_head);
        rq_rot_apply(on->p3, qj.kdst, qj.kdst, n * c->n_head_kv);
    }
    att_job aj = {.st = st, .n = n, .pos = pos, .n_qblk = (n + ATT_BLOCK - 1) / ATT_BLOCK,
                  .kc = layer_k, .vc = layer_v, .window = rq_model_layer_is_swa(c, l) ? c->sliding_window : 0};
    if (on->cfg.kv_bits == 4) {
        kvq_job kj = {.st = st, .layer = l, .pos = pos, .k = qj.kdst, .v = qj.vdst};
        rq_parallel_for(n, 4, kv_store_rows, &kj);
        if (packed) {
            rq_parallel_for(pos + n, 16, kv_load_rows, &kj);
            aj.kc = st->k_deq;
            aj.vc = st->v_deq;
        }
    }
    if (st->segments) { /* float cache (packed is refused): each row to its segment's slot */
        for (int64_t i = 0; i < n; i++) {
            memcpy(layer_k + st->seg_slot[i] * kv_dim, st->k_new + i * kv_dim, (size_t)kv_dim * sizeof(float));
            memcpy(layer_v + st->seg_slot[i] * kv_dim, st->v_new + i * kv_dim, (size_t)kv_dim * sizeof(float));
        }
        aj.n_qblk = st->n_seg_blk;
    }
    rq_parallel_for(c->n_head * aj.n_qblk, 1, attention_items, &aj);
    if (A) save_act(st, A->att, st->att, n, q_dim);
    if (on->po) rq_rot_apply(on->po, st->att, st->att, n); /* route (b): Ro (its inverse is in o) */
    quant_input(st, st->att, n, q_dim, &L->wo);
    hook(st, l, RQ_SITE_ATTN_OUT, st->att, n, q_dim);
    if (c->post_norms) { /* x += RMSNorm(att·Woᵀ) (hidden as scratch) */
        rq_linear_forward(&L->wo, st->att, n, st->hidden, c->n_embd, false);
        if (A) save_act(st, A->o_out, st->hidden, n, c->n_embd);
        post_norm_add(st, st->hidden, L->post_attn_norm, n);
    } else {
        rq_linear_forward(&L->wo, st->att, n, st->x, c->n_embd, true); /* x += att·Woᵀ */
    }

    /* MLP block */
    if (A) save_act(st, A->x_mid, st->x, n, c->n_embd);
    rmsnorm_all(st, st->x, L->ffn_norm, st->xn, n);
    if (on->pi) rq_rot_apply(on->pi, st->xn, st->xn, n); /* route (b): Ri (its inverse is in gate/up) */
    quant_input(st, st->xn, n, c->n_embd, &L->w_gate);
    hook(st, l, RQ_SITE_FFN_IN, st->xn, n, c->n_embd);
    int64_t blk = (c->n_ff + WORK_ITEMS_PER_THREAD * nt - 1) / (WORK_ITEMS_PER_THREAD * nt);
    blk = (blk + 31) / 32 * 32;
    ffn_job fj = {.st = st, .L = L, .n = n, .blk = blk, .layer = l};
    rq_parallel_for((c->n_ff + blk - 1) / blk, 1, gate_up_items, &fj);
    if (on->p4) rq_rot_apply(on->p4, st->gate, st->gate, n); /* R4 (its inverse is in W_down) */
    if (A && A->down_in) save_act(st, A->down_in, st->gate, n, c->n_ff);
    quant_input(st, st->gate, n, c->n_ff, &L->w_down);
    hook(st, l, RQ_SITE_FFN_DOWN, st->gate, n, c->n_ff);
    if (c->post_norms) { /* x += RMSNorm(h·W_downᵀ) */
        rq_linear_forward(&L->w_down, st->gate, n, st->hidden, c->n_embd, false);
        if (A) save_act(st, A->down_out, st->hidden, n, c->n_embd);
        post_norm_add(st, st->hidden, L->post_ffn_norm, n);
    } else {
        rq_linear_forward(&L->w_down, st->gate, n, st->x, c->n_embd, true); /* x += h·W_downᵀ */
    }
    hook(st, l, RQ_SITE_RESIDUAL, st->x, n, c->n_embd);
}

void rq_model_logits(const rq_model *m, const float *hidden, int64_t n, float *out) {
    rq_linear_forward(&m->output, hidden, n, out, m->cfg.n_vocab, false);
}

static rq_status check_batch(const rq_state *st, const int32_t *tokens, int64_t n, rq_logits_mode mode) {
    if (n < 1 || n > st->n_batch)
        return rq_errorf(RQ_EINVAL, "forward: %lld tokens, the state takes 1..%lld per call", (long long)n,
                         (long long)st->n_batch);
    if (st->acts && n > st->acts->n_rows)
        return rq_errorf(RQ_EINVAL, "forward: %lld tokens, the saved activations hold %lld", (long long)n,
                         (long long)st->acts->n_rows);
    if (mode == RQ_LOGITS_ALL && n > st->n_logits_rows)
        return rq_errorf(RQ_EINVAL, "forward: state was created without room for all logits");
    int64_t n_vocab = st->model->cfg.n_vocab;
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return rq_errorf(RQ_EINVAL, "forward: token id %d at index %lld is out of range [0, %lld)", tokens[i],
                             (long long)i, (long long)n_vocab);
    return check_kv_layout(st);
}

static void forward_body(rq_state *st, const int32_t *tokens, int64_t n, int64_t pos, rq_logits_mode mode);

rq_status rq_model_forward(rq_state *st, const int32_t *tokens, int64_t n, int64_t pos, rq_logits_mode mode) {
    RQ_TRY(check_batch(st, tokens, n, mode));
    if (pos < 0 || pos > st->n_past || pos + n > st->n_ctx)
        return rq_errorf(RQ_EINVAL, "forward: positions %lld..%lld do not fit (cache holds %lld, context %lld)",
                         (long long)pos, (long long)(pos + n - 1), (long long)st->n_past, (long long)st->n_ctx);
    RQ_TRY(ensure_scores(st, st->n_ctx));
    st->vm = rq_vmath_get();
    st->tree = false;
    st->segments = false;
    segments_forget(st);
    forward_body(st, tokens, n, pos, mode);
    st->n_past = pos + n;
    return RQ_OK;
}

rq_status rq_model_forward_tree(rq_state *st, const int32_t *tokens, const int32_t *parent, int64_t n,
                                rq_logits_mode mode) {
    RQ_TRY(check_batch(st, tokens, n, mode));
    RQ_TRY(ensure_scores(st, st->n_ctx));
    if (!st->tree_pos) {
        /* pos, end, root, and the path stack of the walk below */
        int32_t *a = rq_alloc(st->n_batch * (int64_t)sizeof(int32_t) * 4);
        if (!a) return RQ_ENOMEM;
        st->tree_pos = a;
        st->tree_end = a + st->n_batch;
        st->tree_root = a + 2 * st->n_batch;
    }
    /* walk the pre-order keeping the path from the current root to token i−1 */
    int32_t *path = st->tree_pos + 3 * st->n_batch;
    int64_t depth = 0; /* entries on the path */
    for (int64_t i = 0; i < n; i++) {
        int32_t p = parent[i];
        if (p < -1 || p >= i)
            return rq_errorf(RQ_EINVAL, "forward_tree: token %lld has parent %d, not in [-1, %lld)", (long long)i, p,
                             (long long)i);
        while (depth > 0 && path[depth - 1] != p) st->tree_end[path[--depth]] = (int32_t)i;
        if (p >= 0 && depth == 0)
            return rq_errorf(RQ_EINVAL,
                             "forward_tree: token %lld has parent %d, which is not on the path to token %lld "
                             "(tokens must be in depth-first pre-order)",
                             (long long)i, p, (long long)(i - 1));
        st->tree_pos[i] = (int32_t)depth;
        st->tree_root[i] = depth ? path[0] : (int32_t)i;
        path[depth++] = (int32_t)i;
    }
    while (depth > 0) st->tree_end[path[--depth]] = (int32_t)n;
    st->vm = rq_vmath_get();
    st->tree = true;
    st->segments = false;
    segments_forget(st);
    forward_body(st, tokens, n, 0, mode);
    st->tree = false;
    st->n_past = 0;
    return RQ_OK;
}

/* Check seg/pos of a segmented batch and lay out its slots and attention blocks (the rules of
 * rq_model_forward_segments); on success the state is in segmented mode until segments_end. */
static rq_status segments_begin(rq_state *st, const int64_t *seg, const int64_t *pos, int64_t n) {
    if (st->seg_len < 1)
        return rq_errorf(RQ_EINVAL, "forward_segments: the state has no segments (rq_state_set_segments)");
    if (st->kq_cache)
        return rq_errorf(RQ_EUNSUPPORTED, "forward_segments: the packed 4-bit KV cache is not supported "
                         "(use a float cache)");
    /* seg_next[s]: the position segment s's next row must have (−1: none of its rows yet) */
    rq_status s = RQ_OK;
    for (int64_t i = 0; i < n && s == RQ_OK; i++) {
        int64_t g = seg[i], p = pos[i];
        if (g < 0 || g >= st->n_seg) {
            s = rq_errorf(RQ_EINVAL, "forward_segments: row %lld has segment %lld, not in [0, %lld)", (long long)i,
                          (long long)g, (long long)st->n_seg);
        } else if (p < 0 || p >= st->seg_len) {
            s = rq_errorf(RQ_EINVAL, "forward_segments: row %lld has position %lld, not in [0, %lld)", (long long)i,
                          (long long)p, (long long)st->seg_len);
        } else if (st->seg_next[g] < 0 && p > st->seg_fill[g]) {
            s = rq_errorf(RQ_EINVAL, "forward_segments: row %lld is at position %lld of segment %lld, which holds "
                          "only %lld", (long long)i, (long long)p, (long long)g, (long long)st->seg_fill[g]);
        } else if (st->seg_next[g] >= 0 && p != st->seg_next[g]) {
            s = rq_errorf(RQ_EINVAL, "forward_segments: row %lld is at position %lld of segment %lld, whose previous "
                          "row in the batch was at %lld (positions of a segment must be consecutive)",
                          (long long)i, (long long)p, (long long)g, (long long)(st->seg_next[g] - 1));
        } else {
            st->seg_next[g] = p + 1;
        }
    }
    if (s == RQ_OK) s = ensure_scores(st, st->seg_len);
    if (s == RQ_OK) {
        /* rows → slots, and attention blocks: runs of adjacent rows of one segment, at most
         * ATT_BLOCK rows each */
        st->n_seg_blk = 0;
        for (int64_t i = 0; i < n; i++) {
            st->seg_pos[i] = pos[i];
            st->seg_slot[i] = seg[i] * st->seg_len + pos[i];
            if (i == 0 || seg[i] != seg[i - 1] || i - st->seg_blk[st->n_seg_blk - 1] == ATT_BLOCK)
                st->seg_blk[st->n_seg_blk++] = i;
        }
        st->seg_blk[st->n_seg_blk] = n;
        st->vm = rq_vmath_get();
        st->tree = false;
        st->segments = true;
    }
    return s;
}

/* Leave segmented mode: the segments in the batch now hold up to their last row (when the
 * batch ran, s == RQ_OK); seg_next back to −1. */
static void segments_end(rq_state *st, const int64_t *seg, int64_t n, rq_status s) {
    st->segments = false;
    if (s == RQ_OK) st->n_past = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t g = seg[i];
        if (g < 0 || g >= st->n_seg || st->seg_next[g] < 0) continue;
        if (s == RQ_OK) st->seg_fill[g] = st->seg_next[g];
        st->seg_next[g] = -1;
    }
}

rq_status rq_model_forward_segments(rq_state *st, const int32_t *tokens, const int64_t *seg, const int64_t *pos,
                                    int64_t n, rq_logits_mode mode) {
    if (st->seg_len < 1)
        return rq_errorf(RQ_EINVAL, "forward_segments: the state has no segments (rq_state_set_segments)");
    if (st->kq_cache)
        return rq_errorf(RQ_EUNSUPPORTED, "forward_segments: the packed 4-bit KV cache is not supported "
                         "(use a float cache)");
    RQ_TRY(check_batch(st, tokens, n, mode));
    rq_status s = segments_begin(st, seg, pos, n);
    if (s == RQ_OK) forward_body(st, tokens, n, 0, mode);
    segments_end(st, seg, n, s);
    return s;
}

rq_status rq_model_forward_layers_segments(rq_state *st, int64_t l0, int64_t l1, const int64_t *seg,
                                           const int64_t *pos, int64_t n) {
    const rq_model_config *c = &st->model->cfg;
    if (l0 < 0 || l1 > c->n_layer || l0 > l1)
        return rq_errorf(RQ_EINVAL, "forward: layers [%lld, %lld) out of range", (long long)l0, (long long)l1);
    if (n < 1 || n > st->n_batch)
        return rq_errorf(RQ_EINVAL, "forward: %lld rows, the state takes 1..%lld per call", (long long)n,
                         (long long)st->n_batch);
    if (st->acts && n > st->acts->n_rows)
        return rq_errorf(RQ_EINVAL, "forward: %lld rows, the saved activations hold %lld", (long long)n,
                         (long long)st->acts->n_rows);
    rq_status s = segments_begin(st, seg, pos, n);
    if (s == RQ_OK) {
        int prev = rq_blas_single_begin();
        for (int64_t l = l0; l < l1; l++) layer_forward(st, l, n, 0);
        rq_blas_single_end(prev);
    }
    segments_end(st, seg, n, s);
    return s;
}

static void forward_body(rq_state *st, const int32_t *tokens, int64_t n, int64_t pos, rq_logits_mode mode) {
    const rq_model *m = st->model;
    const rq_model_config *c = &m->cfg;
    int prev = rq_blas_single_begin();
    rq_model_embed(m, tokens, n, st->x);
    for (int64_t l = 0; l < c->n_layer; l++) layer_forward(st, l, n, pos);
    if (st->acts) save_act(st, st->acts->x_final, st->x, n, c->n_embd);
    rmsnorm_all(st, st->x, m->output_norm, st->hidden, n);
    if (mode == RQ_LOGITS_LAST) rq_model_logits(m, st->hidden + (n - 1) * c->n_embd, 1, st->logits);
    else if (mode == RQ_LOGITS_ALL) rq_model_logits(m, st->hidden, n, st->logits);
    rq_blas_single_end(prev);
}

rq_status rq_model_forward_layers(rq_state *st, int64_t l0, int64_t l1, int64_t n, int64_t pos) {
    const rq_model_config *c = &st->model->cfg;
    if (l0 < 0 || l1 > c->n_layer || l0 > l1)
        return rq_errorf(RQ_EINVAL, "forward: layers [%lld, %lld) out of range", (long long)l0, (long long)l1);
    if (n < 1 || n > st->n_batch || pos < 0 || pos + n > st->n_ctx)
        return rq_errorf(RQ_EINVAL, "forward: %lld rows at position %lld do not fit the state", (long long)n,
                         (long long)pos);
    RQ_TRY(check_kv_layout(st));
    RQ_TRY(ensure_scores(st, st->n_ctx));
    st->vm = rq_vmath_get();
    st->tree = false;
    st->segments = false;
    segments_forget(st);
    int prev = rq_blas_single_begin();
    for (int64_t l = l0; l < l1; l++) layer_forward(st, l, n, pos);
    rq_blas_single_end(prev);
    st->n_past = pos + n;
    return RQ_OK;
}
