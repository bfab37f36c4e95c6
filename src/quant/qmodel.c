#include "quant/qmodel.h"

#include "format/format.h"

#include <stdio.h>
#include <string.h>

static rq_status add_f32(rq_gguf_writer *w, const char *name, const float *x, int64_t n) {
    int64_t ne[1] = {n};
    return rq_gguf_writer_add_tensor(w, name, RQ_TYPE_F32, 1, ne, x, n * (int64_t)sizeof(float));
}

static rq_status add_matrix(rq_gguf_writer *w, const char *name, const float *x, int64_t rows,
                            int64_t cols, const char *type) {
    int64_t ne[2] = {cols, rows}, n = rows * cols;
    if (!strcmp(type, "f32")) return rq_gguf_writer_add_tensor(w, name, RQ_TYPE_F32, 2, ne, x, n * 4);
    if (!strcmp(type, "f16")) {
        uint16_t *h = rq_gguf_writer_keep(w, rq_xalloc(n * 2));
        rq_fp32_to_fp16_array(x, h, n);
        return rq_gguf_writer_add_tensor(w, name, RQ_TYPE_F16, 2, ne, h, n * 2);
    }
    if (!strcmp(type, "q8_0")) {
        int64_t nb;
        if (!rq_type_row_bytes(RQ_TYPE_Q8_0, cols, &nb)) return rq_errorf(RQ_EINVAL, "%s: width %lld is not a multiple of 32", name, (long long)cols);
        rq_block_q8_0 *b = rq_gguf_writer_keep(w, rq_xalloc(nb * rows));
        for (int64_t r = 0; r < rows; r++) rq_quant_q8_0_ref(x + r * cols, (rq_block_q8_0 *)((uint8_t *)b + r * nb), cols);
        return rq_gguf_writer_add_tensor(w, name, RQ_TYPE_Q8_0, 2, ne, b, nb * rows);
    }
    return rq_errorf(RQ_EINVAL, "unknown embedding type '%s' (f32, f16, q8_0)", type);
}

rq_status rq_qmodel_write(const rq_model *m, const rq_gguf *src, const rq_ptq_result *res, rq_qinfo *info,
                          const char *path) {
    const rq_model_config *c = &m->cfg;
    int np = rq_qparam_count(info->quantizer);
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_status s = RQ_OK;
    for (int64_t i = 0; i < rq_gguf_n_kv(src); i++) {
        const rq_gguf_kv *kv = rq_gguf_kv_at(src, i);
        if (strncmp(kv->key, "rotquant.", 9) && strcmp(kv->key, "general.alignment")) rq_gguf_writer_copy_kv(w, kv);
    }
    /* bits per weight over the quantized linears: packed codes + fp16 params */
    int64_t bytes = 0, weights = 0;
    for (int64_t i = 0; i < res->n_lin; i++) {
        const rq_qlinear *q = &res->lin[i];
        bytes += q->n_out * rq_qpacked_row_bytes((int)info->wbits, q->n_in) + q->n_out * (q->n_in / q->group) * np * 2;
        weights += q->n_out * q->n_in;
    }
    info->bits_per_weight = weights ? 8.0 * (double)bytes / (double)weights : 0;
    if (info->wbits == 16) info->bits_per_weight = 32; /* float32 linears */
    rq_qinfo_write(info, w);

#define TRY(e) do { if ((s = (e)) != RQ_OK) goto done; } while (0)
    TRY(add_matrix(w, "token_embd.weight", m->tok_embd, c->n_vocab, c->n_embd, info->embd_type));
    TRY(add_f32(w, "output_norm.weight", m->output_norm, c->n_embd));
    if (m->output.w != m->tok_embd)
        TRY(add_matrix(w, "output.weight", m->output.w, c->n_vocab, c->n_embd, info->embd_type));
    if (m->rope_freqs) TRY(add_f32(w, "rope_freqs.weight", m->rope_freqs, c->rope_dim / 2));
    /* a learned R1/R2, kept for inspection and reuse; a learned Ri, which the loader applies */
    int64_t ne1[2] = {c->n_embd, c->n_embd}, ne2[3] = {c->head_dim, c->head_dim, info->n_r2};
    if (info->r1_matrix)
        TRY(rq_gguf_writer_add_tensor(w, "rotquant.r1.matrix", RQ_TYPE_F32, 2, ne1, info->r1_matrix,
                                      c->n_embd * c->n_embd * 4));
    if (info->ri_matrix)
        TRY(rq_gguf_writer_add_tensor(w, "rotquant.ri.matrix", RQ_TYPE_F32, 2, ne1, info->ri_matrix,
                                      c->n_embd * c->n_embd * 4));
    if ((info->r1_matrix || info->ri_matrix) && info->r2_matrix && info->n_r2 > 0)
        TRY(rq_gguf_writer_add_tensor(w, "rotquant.r2.matrix", RQ_TYPE_F32, 3, ne2, info->r2_matrix,
                                      info->n_r2 * c->head_dim * c->head_dim * 4));
    for (int64_t l = 0; l < c->n_layer; l++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%lld.attn_norm.weight", (long long)l);
        TRY(add_f32(w, name, m->layers[l].attn_norm, c->n_embd));
        snprintf(name, sizeof name, "blk.%lld.ffn_norm.weight", (long long)l);
        TRY(add_f32(w, name, m->layers[l].ffn_norm, c->n_embd));
        if (c->qk_norm) { /* Gemma-3: not fused anywhere, kept as they are */
            snprintf(name, sizeof name, "blk.%lld.attn_q_norm.weight", (long long)l);
            TRY(add_f32(w, name, m->layers[l].q_norm, c->head_dim));
            snprintf(name, sizeof name, "blk.%lld.attn_k_norm.weight", (long long)l);
            TRY(add_f32(w, name, m->layers[l].k_norm, c->head_dim));
        }
        if (c->post_norms) {
            snprintf(name, sizeof name, "blk.%lld.post_attention_norm.weight", (long long)l);
            TRY(add_f32(w, name, m->layers[l].post_attn_norm, c->n_embd));
            snprintf(name, sizeof name, "blk.%lld.post_ffw_norm.weight", (long long)l);
            TRY(add_f32(w, name, m->layers[l].post_ffn_norm, c->n_embd));
        }
    }
    if (info->wbits == 16) { /* W16: the (rotated) float linears as plain F32 tensors */
        static const char *sfx[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
        for (int64_t l = 0; l < c->n_layer; l++) {
            const rq_layer *L = &m->layers[l];
            const rq_linear *ls[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            for (int i = 0; i < 7; i++) {
                char name[96];
                snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, sfx[i]);
                TRY(add_matrix(w, name, ls[i]->w, ls[i]->n_out, ls[i]->n_in, "f32"));
            }
        }
    }
    for (int64_t i = 0; i < res->n_lin; i++) {
        const rq_qlinear *q = &res->lin[i];
        int64_t rb = rq_qpacked_row_bytes((int)info->wbits, q->n_in), ng = q->n_in / q->group;
        uint8_t *packed = rq_gguf_writer_keep(w, rq_xalloc(rb * q->n_out));
        for (int64_t r = 0; r < q->n_out; r++)
            rq_qpacked_pack_row((int)info->wbits, q->codes + r * q->n_in, q->n_in, packed + r * rb);
        uint16_t *ph = rq_gguf_writer_keep(w, rq_xalloc(q->n_out * ng * np * 2));
        rq_fp32_to_fp16_array(q->params, ph, q->n_out * ng * np);
        char name[96];
        int64_t ne_c[2] = {rb, q->n_out}, ne_p[3] = {np, ng, q->n_out};
        snprintf(name, sizeof name, "%s.codes", q->name);
        TRY(rq_gguf_writer_add_tensor(w, name, RQ_TYPE_I8, 2, ne_c, packed, rb * q->n_out));
        snprintf(name, sizeof name, "%s.params", q->name);
        TRY(rq_gguf_writer_add_tensor(w, name, RQ_TYPE_F16, 3, ne_p, ph, q->n_out * ng * np * 2));
    }
#undef TRY
    s = rq_gguf_writer_write(w, path);
done:
    rq_gguf_writer_free(w);
    return s;
}
