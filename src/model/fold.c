#include "model/fold.h"

#include <cblas.h>
#include <string.h>

/* W[rows, cols] ← W·diag(g) */
static void scale_cols(float *w, int64_t rows, int64_t cols, const float *g) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) w[r * cols + c] *= g[c];
}

static void fuse_norm(float *g, rq_linear *const *ls, int nl, int64_t n) {
    for (int i = 0; i < nl; i++) {
        RQ_ASSERT(ls[i]->kind == RQ_LINEAR_F32 && ls[i]->n_in == n);
        scale_cols(ls[i]->w, ls[i]->n_out, n, g);
    }
    for (int64_t c = 0; c < n; c++) g[c] = 1.0f;
}

static void untie_output(rq_model *m) {
    if (!m->cfg.tied_embeddings) return;
    int64_t n = m->cfg.n_vocab * m->cfg.n_embd;
    float *w = rq_xalloc(n * (int64_t)sizeof(float));
    memcpy(w, m->tok_embd, (size_t)n * sizeof(float));
    m->output.w = w;
    m->output.owns_w = true;
    m->cfg.tied_embeddings = false;
}

void rq_fold_norms(rq_model *m) {
    const rq_model_config *c = &m->cfg;
    for (int64_t l = 0; l < c->n_layer; l++) {
        rq_layer *L = &m->layers[l];
        rq_linear *attn[3] = {&L->wq, &L->wk, &L->wv};
        rq_linear *ffn[2] = {&L->w_gate, &L->w_up};
        fuse_norm(L->attn_norm, attn, 3, c->n_embd);
        fuse_norm(L->ffn_norm, ffn, 2, c->n_embd);
    }
    bool unit = true;
    for (int64_t i = 0; i < c->n_embd; i++) unit &= m->output_norm[i] == 1.0f;
    if (unit) return;
    untie_output(m);
    rq_linear *out[1] = {&m->output};
    fuse_norm(m->output_norm, out, 1, c->n_embd);
}

/* W[rows, n] ← W·Q (each row times Q) */
static void rotate_rows(const rq_rot_plan *p, float *w, int64_t rows) { rq_rot_apply(p, w, w, rows); }

/* W[n, cols] ← Qᵀ·W: column c becomes Qᵀc, i.e. as a row, cᵀQ. Done on the transpose. */
static void rotate_cols_t(const rq_rot_plan *p, float *w, int64_t n, int64_t cols) {
    float *t = rq_xalloc(n * cols * (int64_t)sizeof(float)); /* [cols, n] */
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < cols; c++) t[c * n + r] = w[r * cols + c];
    rq_rot_apply(p, t, t, cols);
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < cols; c++) w[r * cols + c] = t[c * n + r];
    rq_free(t);
}

/* Columns [c0, c0+n) of every row of W[rows, ld] ← those columns · Q */
static void rotate_col_slice(const rq_rot_plan *p, float *w, int64_t rows, int64_t ld, int64_t c0, int64_t n) {
    float *t = rq_xalloc(rows * n * (int64_t)sizeof(float));
    for (int64_t r = 0; r < rows; r++) memcpy(t + r * n, w + r * ld + c0, (size_t)n * sizeof(float));
    rq_rot_apply(p, t, t, rows);
    for (int64_t r = 0; r < rows; r++) memcpy(w + r * ld + c0, t + r * n, (size_t)n * sizeof(float));
    rq_free(t);
}

/* R2 on v's output rows per KV head and o's input columns per query head */
static void fold_r2_plan(rq_model *m, const rq_rot_plan *p2) {
    const rq_model_config *c = &m->cfg;
    int64_t hd = c->head_dim;
    for (int64_t l = 0; l < c->n_layer; l++) {
        rq_layer *L = &m->layers[l];
        for (int64_t h = 0; h < c->n_head_kv; h++) rotate_cols_t(p2, L->wv.w + h * hd * c->n_embd, hd, c->n_embd);
        for (int64_t h = 0; h < c->n_head; h++) rotate_col_slice(p2, L->wo.w, c->n_embd, L->wo.n_in, h * hd, hd);
    }
}

rq_status rq_fold_model(rq_model *m, const rq_rotation *r1, const rq_rotation *r2) {
    const rq_model_config *c = &m->cfg;
    if (r1->n != c->n_embd)
        return rq_errorf(RQ_EINVAL, "R1 has size %lld but the model's hidden size is %lld", (long long)r1->n,
                         (long long)c->n_embd);
    bool do_r2 = r2 && r2->kind != RQ_ROT_NONE;
    if (do_r2 && r2->n != c->head_dim)
        return rq_errorf(RQ_EINVAL, "R2 has size %lld but the model's head_dim is %lld", (long long)r2->n,
                         (long long)c->head_dim);
    if (c->post_norms && r1->kind == RQ_ROT_ORTHOGONAL)
        return rq_errorf(RQ_EUNSUPPORTED,
                         "R1 orthogonal cannot be used on this model (%s): its post-norms need R1 applied online to "
                         "their outputs (route (a)), and online rotations must be hadamard, walsh, gh or gsr",
                         c->arch == RQ_ARCH_GEMMA3 ? "gemma3" : "post-norms");
    RQ_TRY(rq_rot_validate(r1));
    if (do_r2) RQ_TRY(rq_rot_validate(r2));
    rq_rot_plan *p1 = NULL, *p2 = NULL;
    RQ_TRY(rq_rot_plan_build(r1, &p1));
    if (do_r2) {
        rq_status s = rq_rot_plan_build(r2, &p2);
        if (s != RQ_OK) {
            rq_rot_plan_free(p1);
            return s;
        }
    }
    /* Gemma-3 without R1: the norms stay where they are. Its norm scales vary over two orders
     * of magnitude inside a vector (0.2..301 in gemma-3-270m's final norm), and fused into
     * W·diag(g) they would share a quantization group's scale with columns 100x smaller: W4
     * g64 RTN of gemma-3-270m went from PPL ~20 to ~1e5 that way. With R1 (route (a)) the
     * pre-norms and the final norm must be fused (RMSNorm commutes with Q only at unit scale);
     * the rotation then spreads each scaled column over its block. */
    if (!c->post_norms || r1->kind != RQ_ROT_NONE) rq_fold_norms(m);
    if (r1->kind != RQ_ROT_NONE) {
        /* the embedding is rotated; an lm_head still tied to it would be rotated too,
         * which is exactly W ← W·Q for the head: keep tied in that case */
        rotate_rows(p1, m->tok_embd, c->n_vocab);
        if (m->output.w != m->tok_embd) rotate_rows(p1, m->output.w, c->n_vocab);
        for (int64_t l = 0; l < c->n_layer; l++) {
            rq_layer *L = &m->layers[l];
            rq_linear *readers[5] = {&L->wq, &L->wk, &L->wv, &L->w_gate, &L->w_up};
            for (int i = 0; i < 5; i++) rotate_rows(p1, readers[i]->w, readers[i]->n_out);
            if (c->post_norms) continue; /* route (a): o and down keep their output basis */
            rotate_cols_t(p1, L->wo.w, c->n_embd, L->wo.n_in);
            rotate_cols_t(p1, L->w_down.w, c->n_embd, L->w_down.n_in);
        }
    }
    if (do_r2) fold_r2_plan(m, p2);
    rq_rot_plan_free(p1);
    rq_rot_plan_free(p2);
    return RQ_OK;
}

rq_status rq_fold_r2(rq_model *m, const rq_rotation *r2) {
    if (!r2 || r2->kind == RQ_ROT_NONE) return RQ_OK;
    if (r2->n != m->cfg.head_dim)
        return rq_errorf(RQ_EINVAL, "R2 has size %lld but the model's head_dim is %lld", (long long)r2->n,
                         (long long)m->cfg.head_dim);
    RQ_TRY(rq_rot_validate(r2));
    rq_rot_plan *p2 = NULL;
    RQ_TRY(rq_rot_plan_build(r2, &p2));
    fold_r2_plan(m, p2);
    rq_rot_plan_free(p2);
    return RQ_OK;
}

/* ---- dense rotations (learned) ------------------------------------------------------- */

/* W[rows, n] ← W·Q, Q [n, n], a bounded chunk of rows at a time */
static void dense_rows(float *w, int64_t rows, int64_t n, const float *q) {
    int64_t chunk = ((int64_t)1 << 20) / n;
    if (chunk < 1) chunk = 1;
    if (chunk > rows) chunk = rows;
    float *t = rq_xalloc(chunk * n * (int64_t)sizeof(float));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t nr = r0 + chunk < rows ? chunk : rows - r0;
        memcpy(t, w + r0 * n, (size_t)(nr * n) * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)n, (int)n, 1.0f, t, (int)n, q, (int)n,
                    0.0f, w + r0 * n, (int)n);
    }
    rq_free(t);
}

/* W[n, cols] ← Qᵀ·W, Q [n, n] */
static void dense_left_t(float *w, int64_t n, int64_t cols, const float *q) {
    float *t = rq_xalloc(n * cols * (int64_t)sizeof(float));
    memcpy(t, w, (size_t)(n * cols) * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)cols, (int)n, 1.0f, q, (int)n, t, (int)cols,
                0.0f, w, (int)cols);
    rq_free(t);
}

/* Columns [c0, c0+n) of every row of W[rows, ld] ← those columns · Q, Q [n, n] */
static void dense_col_slice(float *w, int64_t rows, int64_t ld, int64_t c0, int64_t n, const float *q) {
    float *t = rq_xalloc(rows * n * (int64_t)sizeof(float));
    for (int64_t r = 0; r < rows; r++) memcpy(t + r * n, w + r * ld + c0, (size_t)n * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n, (int)n, 1.0f, t, (int)n, q, (int)n, 0.0f,
                w + c0, (int)ld);
    rq_free(t);
}

rq_status rq_fold_model_dense(rq_model *m, const float *r1, const float *r2, int64_t n_r2) {
    const rq_model_config *c = &m->cfg;
    if (r2 && n_r2 != 1 && n_r2 != c->n_layer)
        return rq_errorf(RQ_EINVAL, "%lld R2 matrices for a model of %lld layers (1 or one per layer)", (long long)n_r2,
                         (long long)c->n_layer);
    if (c->post_norms && r1)
        return rq_errorf(RQ_EUNSUPPORTED, "a learned R1 cannot be folded exactly into this model: its post-norms "
                         "scale the outputs of o and down before the residual add (see rq_fold_model)");
    if (!c->post_norms && r1) rq_fold_norms(m); /* R2 alone crosses no norm */
    int64_t n = c->n_embd, hd = c->head_dim;
    if (r1) {
        dense_rows(m->tok_embd, c->n_vocab, n, r1);
        if (m->output.w != m->tok_embd) dense_rows(m->output.w, c->n_vocab, n, r1);
        for (int64_t l = 0; l < c->n_layer; l++) {
            rq_layer *L = &m->layers[l];
            rq_linear *readers[5] = {&L->wq, &L->wk, &L->wv, &L->w_gate, &L->w_up};
            for (int i = 0; i < 5; i++) {
                RQ_ASSERT(readers[i]->kind == RQ_LINEAR_F32 && readers[i]->n_in == n);
                dense_rows(readers[i]->w, readers[i]->n_out, n, r1);
            }
            dense_left_t(L->wo.w, n, L->wo.n_in, r1);
            dense_left_t(L->w_down.w, n, L->w_down.n_in, r1);
        }
    }
    if (r2)
        for (int64_t l = 0; l < c->n_layer; l++) {
            rq_layer *L = &m->layers[l];
            const float *q = r2 + (n_r2 == 1 ? 0 : l) * hd * hd;
            for (int64_t h = 0; h < c->n_head_kv; h++) dense_left_t(L->wv.w + h * hd * n, hd, n, q);
            for (int64_t h = 0; h < c->n_head; h++) dense_col_slice(L->wo.w, n, L->wo.n_in, h * hd, hd, q);
        }
    return RQ_OK;
}

rq_status rq_fold_r4(rq_model *m, const rq_rotation *r4) {
    const rq_model_config *c = &m->cfg;
    if (r4->kind == RQ_ROT_NONE) return RQ_OK;
    if (r4->n != c->n_ff)
        return rq_errorf(RQ_EINVAL, "R4 has size %lld but the model's feed-forward size is %lld", (long long)r4->n,
                         (long long)c->n_ff);
    RQ_TRY(rq_rot_validate(r4));
    rq_rot_plan *p;
    RQ_TRY(rq_rot_plan_build(r4, &p));
    for (int64_t l = 0; l < c->n_layer; l++) {
        rq_linear *d = &m->layers[l].w_down;
        RQ_ASSERT(d->kind == RQ_LINEAR_F32 && d->n_in == c->n_ff);
        rotate_rows(p, d->w, d->n_out); /* W_down ← W_down·R4 */
    }
    rq_rot_plan_free(p);
    return RQ_OK;
}

rq_status rq_fold_inputs(rq_model *m, const rq_rotation *ri, const float *ri_q, const rq_rotation *ro) {
    const rq_model_config *c = &m->cfg;
    int64_t q_dim = c->n_head * c->head_dim;
    bool do_i = ri && ri->kind != RQ_ROT_NONE, do_o = ro && ro->kind != RQ_ROT_NONE;
    if (do_i && ri->n != c->n_embd)
        return rq_errorf(RQ_EINVAL, "Ri has size %lld but the model's hidden size is %lld", (long long)ri->n,
                         (long long)c->n_embd);
    if (do_o && ro->n != q_dim)
        return rq_errorf(RQ_EINVAL, "Ro has size %lld but the model's attention width is %lld", (long long)ro->n,
                         (long long)q_dim);
    if (do_i) RQ_TRY(rq_rot_validate(ri));
    if (do_o) RQ_TRY(rq_rot_validate(ro));
    rq_rot_plan *pi = NULL, *po = NULL;
    if (do_i && ri->kind == RQ_ROT_LEARNED && !ri_q)
        return rq_errorf(RQ_EINVAL, "Ri is learned but its matrix is not given");
    if (do_i) RQ_TRY(ri->kind == RQ_ROT_LEARNED ? rq_rot_plan_matrix(ri, ri_q, &pi) : rq_rot_plan_build(ri, &pi));
    if (do_o) {
        rq_status s = rq_rot_plan_build(ro, &po);
        if (s != RQ_OK) {
            rq_rot_plan_free(pi);
            return s;
        }
    }
    for (int64_t l = 0; l < c->n_layer; l++) {
        rq_layer *L = &m->layers[l];
        rq_linear *readers[5] = {&L->wq, &L->wk, &L->wv, &L->w_gate, &L->w_up};
        for (int i = 0; i < 5 && pi; i++) {
            RQ_ASSERT(readers[i]->kind == RQ_LINEAR_F32 && readers[i]->n_in == c->n_embd);
            rotate_rows(pi, readers[i]->w, readers[i]->n_out); /* W ← W·Ri */
        }
        if (po) {
            RQ_ASSERT(L->wo.kind == RQ_LINEAR_F32 && L->wo.n_in == q_dim);
            rotate_rows(po, L->wo.w, L->wo.n_out); /* W_o ← W_o·Ro */
        }
    }
    rq_rot_plan_free(pi);
    rq_rot_plan_free(po);
    return RQ_OK;
}
