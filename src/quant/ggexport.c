/* Export for llama.cpp (quant/ggexport.h). */
#include "quant/ggexport.h"

#include "base/timer.h"
#include "format/format.h"
#include "io/gguf.h"
#include "quant/ggquant.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

rq_export_opts rq_export_opts_default(void) {
    rq_export_opts o;
    o.q = rq_quant_opts_default();
    o.q.rotate2 = RQ_ROT_NONE; /* the export tables were measured without R2 (it folds exactly: --rotate2) */
    o.q.r1_route = RQ_R1_RESIDUAL; /* a llama.cpp file holds no online rotation: R1 folds or is refused */
    o.q.wbits = 4;  /* unused by the llama.cpp types; a valid setting for the shared checks */
    o.q.group = 32; /* the default block of gh/gsr: llama.cpp's block of 32 */
    o.type = RQ_TYPE_Q4_0;
    o.embd_type = RQ_TYPE_Q8_0;
    return o;
}

static rq_status check_opts(const rq_export_opts *o) {
    RQ_TRY(rq_quant_opts_check(&o->q));
    if (!rq_gg_type_writable(o->type))
        return rq_errorf(RQ_EINVAL, "--type: %s is not a type rotquant writes", rq_type_name(o->type));
    if (!rq_gg_type_writable(o->embd_type) && o->embd_type != RQ_TYPE_F16 && o->embd_type != RQ_TYPE_F32)
        return rq_errorf(RQ_EINVAL, "--embd-type: %s is not a type rotquant writes", rq_type_name(o->embd_type));
    const rq_quant_opts *q = &o->q;
    if (q->abits != 16 || q->kvbits != 16 || (q->rotate3 != -1 && q->rotate3 != RQ_ROT_NONE) ||
        (q->rotate4 != -1 && q->rotate4 != RQ_ROT_NONE) || q->r1_route != RQ_R1_RESIDUAL)
        return rq_errorf(RQ_EUNSUPPORTED, "export: a llama.cpp file holds no online transform (activation or KV "
                         "quantizers, R3/R4, per-linear input rotations)");
    if (q->wbits == 16) return rq_errorf(RQ_EINVAL, "export: the linears are always quantized (--type)");
    return RQ_OK;
}

/* A matrix x [rows, cols] stored as `type` (f32, f16, or RTN onto a llama.cpp type, with
 * its fallback for the row length): *data and *bytes for the file, and x replaced by what a
 * reader dequantizes. *stored: the type used. */
static rq_status store_matrix(rq_gguf_writer *w, const char *name, float *x, int64_t rows, int64_t cols, int type,
                              int *stored, void **data, int64_t *bytes) {
    int64_t n = rows * cols;
    *stored = type;
    if (type == RQ_TYPE_F32) {
        *data = x, *bytes = n * 4;
        return RQ_OK;
    }
    if (type == RQ_TYPE_F16) {
        rq_half *h = rq_gguf_writer_keep(w, rq_xalloc(n * 2));
        rq_fp32_to_fp16_array(x, h, n);
        rq_fp16_to_fp32_array(h, x, n);
        *data = h, *bytes = n * 2;
        return RQ_OK;
    }
    int t = rq_gg_type_for_row(type, cols);
    if (t < 0)
        return rq_errorf(RQ_EINVAL, "%s: rows of %lld fit neither %s nor a type llama.cpp falls back to", name,
                         (long long)cols, rq_type_name(type));
    int64_t g, rb;
    rq_group_quantizer q = rq_gg_quantizer(t, &g);
    RQ_ASSERT(rq_type_row_bytes(t, cols, &rb));
    uint8_t *codes = rq_alloc(n);
    float *params = rq_alloc(n / g * q.n_param * (int64_t)sizeof(float));
    float *deq = rq_alloc(n * (int64_t)sizeof(float));
    uint8_t *out = rq_alloc(rb * rows);
    rq_status s = codes && params && deq && out ? RQ_OK : RQ_ENOMEM;
    if (s == RQ_OK) s = rq_quant_rtn(&q, x, rows, cols, g, NULL, codes, params, deq);
    for (int64_t r = 0; r < rows && s == RQ_OK; r++)
        s = rq_gg_encode_row(t, codes + r * cols, params + r * (cols / g) * q.n_param, cols, out + r * rb);
    if (s == RQ_OK) {
        memcpy(x, deq, (size_t)n * sizeof(float));
        *stored = t, *data = rq_gguf_writer_keep(w, out), *bytes = rb * rows;
    } else {
        rq_free(out);
    }
    rq_free(codes);
    rq_free(params);
    rq_free(deq);
    return s;
}

/* the block linears, as ptq.c names them */
enum { N_LIN = 7 };
static const char *lin_sfx[N_LIN] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

static void print_fallbacks(const rq_model *m, int type) {
    const rq_layer *L = &m->layers[0];
    const rq_linear *ls[N_LIN] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    for (int i = 0; i < N_LIN; i++) {
        int t = rq_gg_type_for_row(type, ls[i]->n_in);
        if (t == type || t < 0) continue;
        fprintf(stderr, "export: %s: rows of %lld are not a multiple of %s's 256: %s in every layer (llama.cpp's "
                "fallback)\n", lin_sfx[i], (long long)ls[i]->n_in, rq_type_name(type), rq_type_name(t));
    }
}

/* An export in progress: the writer and the buffers it writes from. */
typedef struct {
    rq_gguf_writer *w;
    int counts[64]; /* tensors per type id (< 64) */
} exporter;

static void count_type(exporter *x, int t) {
    if (t >= 0 && t < 64) x->counts[t]++;
}

/* The token embedding and an untied lm_head: stored in embd_type, and the model's floats
 * replaced by what the file holds (before PTQ, so that calibration sees them). */
static rq_status add_embeddings(exporter *x, rq_model *m, int type, char *desc, size_t n_desc) {
    const rq_model_config *c = &m->cfg;
    int t1, t2 = -1;
    void *d;
    int64_t b, ne[2] = {c->n_embd, c->n_vocab};
    bool tied = m->output.w == m->tok_embd;
    RQ_TRY(store_matrix(x->w, "token_embd.weight", m->tok_embd, c->n_vocab, c->n_embd, type, &t1, &d, &b));
    RQ_TRY(rq_gguf_writer_add_tensor(x->w, "token_embd.weight", t1, 2, ne, d, b));
    count_type(x, t1);
    if (!tied) {
        RQ_TRY(store_matrix(x->w, "output.weight", m->output.w, c->n_vocab, c->n_embd, type, &t2, &d, &b));
        RQ_TRY(rq_gguf_writer_add_tensor(x->w, "output.weight", t2, 2, ne, d, b));
        count_type(x, t2);
    }
    if (tied) snprintf(desc, n_desc, "embedding %s (lm_head tied)", rq_type_name(t1));
    else snprintf(desc, n_desc, "embedding %s, lm_head %s", rq_type_name(t1), rq_type_name(t2));
    return RQ_OK;
}

/* Everything but the embeddings: norms (F32), RoPE divisors, the encoded linears. */
static rq_status add_rest(exporter *x, const rq_model *m, const rq_ptq_result *res, rq_export_result *r) {
    const rq_model_config *c = &m->cfg;
    rq_gguf_writer *w = x->w;
    char name[96];
#define ADD_VEC(nm, v, n) \
    do { int64_t ne_[1] = {(n)}; RQ_TRY(rq_gguf_writer_add_tensor(w, (nm), RQ_TYPE_F32, 1, ne_, (v), (n) * 4)); } while (0)
    ADD_VEC("output_norm.weight", m->output_norm, c->n_embd);
    if (m->rope_freqs) ADD_VEC("rope_freqs.weight", m->rope_freqs, c->rope_dim / 2);
    for (int64_t l = 0; l < c->n_layer; l++) {
        const rq_layer *L = &m->layers[l];
#define LVEC(sfx, v, n) do { snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, sfx); ADD_VEC(name, v, n); } while (0)
        LVEC("attn_norm", L->attn_norm, c->n_embd);
        LVEC("ffn_norm", L->ffn_norm, c->n_embd);
        if (c->qk_norm) {
            LVEC("attn_q_norm", L->q_norm, c->head_dim);
            LVEC("attn_k_norm", L->k_norm, c->head_dim);
        }
        if (c->post_norms) {
            LVEC("post_attention_norm", L->post_attn_norm, c->n_embd);
            LVEC("post_ffw_norm", L->post_ffn_norm, c->n_embd);
        }
#undef LVEC
    }
#undef ADD_VEC
    int64_t bytes = 0, weights = 0;
    for (int64_t i = 0; i < res->n_lin; i++) {
        const rq_qlinear *q = &res->lin[i];
        int64_t g, rb;
        rq_group_quantizer gq = rq_gg_quantizer(q->type, &g);
        RQ_ASSERT(g == q->group && rq_type_row_bytes(q->type, q->n_in, &rb));
        uint8_t *blocks = rq_gguf_writer_keep(x->w, rq_xalloc(rb * q->n_out));
        for (int64_t row = 0; row < q->n_out; row++)
            RQ_TRY(rq_gg_encode_row(q->type, q->codes + row * q->n_in, q->params + row * (q->n_in / g) * gq.n_param,
                                    q->n_in, blocks + row * rb));
        int64_t ne[2] = {q->n_in, q->n_out};
        RQ_TRY(rq_gguf_writer_add_tensor(w, q->name, q->type, 2, ne, blocks, rb * q->n_out));
        count_type(x, q->type);
        bytes += rb * q->n_out, weights += q->n_in * q->n_out;
        r->loss += q->loss;
    }
    r->bits_per_weight = weights ? 8.0 * (double)bytes / (double)weights : 0;
    return RQ_OK;
}

/* export's checks of the plan (rq_quant_prep_opts.check): nothing online, every linear's
 * row length takes the type or its fallback (checked again by PTQ), the embeddings' too */
static rq_status export_check(void *user, rq_model *m, rq_quant_plan *p) {
    const rq_export_opts *o = user;
    const rq_model_config *c = &m->cfg;
    if (p->online.r1.kind != RQ_ROT_NONE)
        return rq_errorf(RQ_EUNSUPPORTED, "export: --rotate %s on %s: its post-norms need R1 applied online after "
                         "them, which a llama.cpp file cannot hold; use --rotate none (--rotate2 folds exactly)",
                         rq_rot_kind_name(p->r1.kind), c->arch == RQ_ARCH_GEMMA3 ? "gemma3" : "this model");
    RQ_ASSERT(p->online.r3.kind == RQ_ROT_NONE && p->online.r4.kind == RQ_ROT_NONE && p->ri.kind == RQ_ROT_NONE &&
              p->ro.kind == RQ_ROT_NONE && p->online.act.bits == 0 && p->online.kv_bits == 0);
    p->ptq.gg_type = o->type;
    const rq_layer *L = &m->layers[0];
    const rq_linear *ls[N_LIN] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    for (int i = 0; i < N_LIN; i++)
        if (rq_gg_type_for_row(o->type, ls[i]->n_in) < 0)
            return rq_errorf(RQ_EINVAL, "--type %s: %s has rows of %lld weights, which fit neither %s nor a type "
                             "llama.cpp falls back to (a multiple of 32 is needed)", rq_gg_type_cli_name(o->type),
                             lin_sfx[i], (long long)ls[i]->n_in, rq_type_name(o->type));
    if (rq_gg_type_for_row(o->embd_type, c->n_embd) < 0 && o->embd_type != RQ_TYPE_F16 && o->embd_type != RQ_TYPE_F32)
        return rq_errorf(RQ_EINVAL, "--embd-type %s: rows of %lld weights fit no block type; use f16",
                         rq_gg_type_cli_name(o->embd_type), (long long)c->n_embd);
    return RQ_OK;
}

/* export's progress lines (rq_quant_prep_opts.describe) */
static void export_describe(void *user, const char *in, const rq_model *m, const rq_quant_plan *p) {
    const rq_export_opts *o = user;
    const rq_model_config *c = &m->cfg;
    char d1[96], d2[96];
    fprintf(stderr, "export: %s: %lld layers, hidden %lld; R1 %s, R2 %s; %s %s%s%s\n", in, (long long)c->n_layer,
            (long long)c->n_embd, rq_rot_describe(&p->r1, d1, sizeof d1), rq_rot_describe(&p->r2, d2, sizeof d2),
            rq_type_name(o->type), p->ptq.method == RQ_PTQ_GPTQ ? "GPTQ" : "RTN", p->ptq.act_order ? " act-order" : "",
            p->ptq.fit_importance ? " fit-importance" : "");
    print_fallbacks(m, o->type);
}

rq_status rq_export_run(const char *in, const char *out, const rq_export_opts *o, rq_export_result *r,
                        rq_model **quantized) {
    memset(r, 0, sizeof *r);
    if (quantized) *quantized = NULL;
    RQ_TRY(check_opts(o));
    if (!out) return rq_errorf(RQ_EINVAL, "export: no output file");
    double t_start = rq_time_now(), t0;
    exporter x;
    memset(&x, 0, sizeof x);
    char embd_desc[96] = "";
    rq_quant_prep pr;
    rq_quant_prep_opts po = {.who = "export", .refuse = "is a rotquant file; export starts from a float or llama.cpp model",
                             .keep_norms = true, .check = export_check, .describe = export_describe,
                             .user = (void *)o};
    rq_status s = rq_quant_prepare(in, &o->q, &po, &pr);
    if (s != RQ_OK) goto done;
    rq_gguf *g = pr.g;
    rq_model *m = pr.m;
    r->t_fold = pr.t_fold, r->t_calib = pr.t_calib;
    if (pr.plan.calibrated) r->calib_n = pr.plan.calib_n, r->calib_len = pr.plan.calib_len;

    x.w = rq_gguf_writer_new(rq_gguf_alignment(g));
    for (int64_t i = 0; i < rq_gguf_n_kv(g); i++) {
        const rq_gguf_kv *kv = rq_gguf_kv_at(g, i);
        if (strncmp(kv->key, "rotquant.", 9) && strcmp(kv->key, "general.alignment") &&
            strcmp(kv->key, "general.file_type") && strcmp(kv->key, "general.quantization_version"))
            rq_gguf_writer_copy_kv(x.w, kv);
    }
    rq_gguf_writer_set_u32(x.w, "general.file_type", rq_gg_file_type(o->type));
    rq_gguf_writer_set_u32(x.w, "general.quantization_version", 2);
    t0 = rq_time_now();
    if ((s = add_embeddings(&x, m, o->embd_type, embd_desc, sizeof embd_desc)) != RQ_OK) goto done;
    r->t_quant = rq_time_now() - t0;
    const rq_ptq_result *res = &pr.res;
    if ((s = rq_quant_ptq(m, &pr.plan, pr.ids, &pr.res)) != RQ_OK) goto done;
    r->t_forward = res->t_forward, r->t_hessian = res->t_hessian, r->t_quant += res->t_quant;
    t0 = rq_time_now();
    if ((s = add_rest(&x, m, res, r)) != RQ_OK) goto done;
    /* every tensor of the source is written (under its name) */
    for (int64_t i = 0; i < rq_gguf_n_tensors(g) && s == RQ_OK; i++) {
        const char *nm = rq_gguf_tensor_at(g, i)->name;
        if (!rq_gguf_writer_has_tensor(x.w, nm))
            s = rq_errorf(RQ_EUNSUPPORTED, "export: the source's tensor '%s' has no place in the export", nm);
    }
    if (s == RQ_OK) s = rq_gguf_writer_write(x.w, out);
    if (s != RQ_OK) goto done;
    r->t_write = rq_time_now() - t0;
    {
        int p2 = 0;
        for (int t = 0; t < 64; t++)
            if (x.counts[t] && rq_gg_type_writable(t)) {
                int64_t nl = 0;
                for (int64_t i = 0; i < res->n_lin; i++) nl += res->lin[i].type == t;
                if (nl && p2 < (int)sizeof r->types)
                    p2 += snprintf(r->types + p2, sizeof r->types - (size_t)p2, "%s%lld %s", p2 ? ", " : "",
                                   (long long)nl, rq_type_name(t));
            }
        if (p2 < (int)sizeof r->types) snprintf(r->types + p2, sizeof r->types - (size_t)p2, "; %s", embd_desc);
        r->n_lin = res->n_lin;
        for (int64_t i = 0; i < res->n_lin; i++) r->n_fallback += res->lin[i].type != o->type;
        struct stat st;
        if (stat(out, &st) == 0) r->file_bytes = (int64_t)st.st_size;
    }
    if (quantized) *quantized = m, pr.m = NULL; /* the caller's now */
done:
    r->t_total = rq_time_now() - t_start;
    if (x.w) rq_gguf_writer_free(x.w);
    rq_quant_prep_free(&pr);
    return s;
}
