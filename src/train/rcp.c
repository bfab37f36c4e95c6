/* RCP's quantization-aware training pipeline (train/rcp.h). */
#include "train/rcp.h"

#include "base/hash.h"
#include "base/mpi.h"
#include "base/pool.h"
#include "base/rng.h"
#include "base/timer.h"
#include "format/abits.h"
#include "format/format.h"
#include "io/gguf.h"
#include "io/gguf_hash.h"
#include "model/hf.h"
#include "model/model.h"
#include "model/qinfo.h"
#include "quant/calib.h"
#include "quant/pipeline.h"
#include "quant/ptq.h"
#include "quant/qmodel.h"
#include "text/tokenizer.h"
#include "train/backward.h"
#include "train/blockwise.h"
#include "train/params.h"
#include "train/qat.h"
#include "train/run.h"
#include "train/step.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

rq_rcp_opts rq_rcp_opts_default(void) {
    return (rq_rcp_opts){.quantizer = RQ_FQ2_LDP, .group = 64, .rotate = RQ_ROT_GSR, .r1_route = RQ_R1_AUTO, .abits = 16, .kvbits = 16,
                         .aclip = 1.0f, .init_ptq = true, .calib_n = 16, .gen_seqs = 80, .gen_temp = 1.0f, .T = 512,
                         .n_seq = 4, .val_frac = 0.2, .block_steps = 40, .block_lr = 1e-4f, .block_lr_quant = 1e-3f,
                         .steps = 100, .lr = 2e-5f, .lr_quant = 1e-4f, .schedule = RQ_LR_CONSTANT, .gamma = -1,
                         .eval_every = 25, .clip = 1.0, .embd_type = "q8_0"};
}

/* the teacher's mean top-1 probability over up to 4 batches of windows (CAKLD's γ) */
static rq_status teacher_confidence(const rq_model *t, const int32_t *win, int64_t n_win, int64_t n_seq, int64_t T,
                                    double *gamma) {
    rq_state *st;
    int64_t n = n_seq * T, V = t->cfg.n_vocab;
    RQ_TRY(rq_state_new(t, n, n, true, &st));
    rq_status s = rq_state_set_segments(st, T);
    int64_t *seg = rq_alloc(2 * n * (int64_t)sizeof(int64_t));
    if (!seg) s = RQ_ENOMEM;
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t i = 0; s == RQ_OK && i < n; i++) seg[i] = i / T, seg[n + i] = i % T;
    for (int64_t b = 0; s == RQ_OK && b < 4 && (b + 1) * n_seq <= n_win; b++) {
        rq_state_reset(st);
        if ((s = rq_model_forward_segments(st, win + b * n, seg, seg + n, n, RQ_LOGITS_ALL)) != RQ_OK) break;
        for (int64_t r = 0; r < n; r++) {
            const float *z = st->logits + r * V;
            float mx = z[0];
            for (int64_t v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
            double den = 0;
            for (int64_t v = 0; v < V; v++) den += exp((double)z[v] - mx);
            sum += 1.0 / den, cnt++;
        }
    }
    rq_free(seg);
    rq_state_free(st);
    *gamma = cnt ? sum / (double)cnt : 0.5;
    return s;
}

/* the model's perplexity (next-token cross-entropy) on the windows [n_win, T] through the
 * ordinary inference path (one window at a time, the model's own KV cache, packed kernels
 * when the model was loaded from a packed file); the first n_win/n_seq·n_seq windows */
static rq_status window_ppl(const rq_model *m, const int32_t *win, int64_t n_win, int64_t n_seq, int64_t T,
                                  double *ppl) {
    rq_state *st;
    int64_t V = m->cfg.n_vocab, nw = n_win / n_seq * n_seq; /* the windows window_ppl scores */
    RQ_TRY(rq_state_new(m, T, T, true, &st));
    double nll = 0;
    int64_t cnt = 0;
    rq_status s = RQ_OK;
    for (int64_t w = 0; w < nw && s == RQ_OK; w++) {
        rq_state_reset(st);
        if ((s = rq_model_forward(st, win + w * T, T, 0, RQ_LOGITS_ALL)) != RQ_OK) break;
        for (int64_t t = 0; t + 1 < T; t++, cnt++) {
            const float *z = st->logits + t * V;
            float mx = z[0];
            for (int64_t v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
            double den = 0;
            for (int64_t v = 0; v < V; v++) den += exp((double)z[v] - mx);
            nll += log(den) + mx - z[win[w * T + t + 1]];
        }
    }
    rq_state_free(st);
    *ppl = cnt ? exp(nll / (double)cnt) : 0;
    return s;
}

/* rows [rows, cols] ← their values as the file will store them (embd_type q8_0 or f16), so
 * that the student trains with the embedding and lm_head it will run with */
static rq_status as_stored(float *x, int64_t rows, int64_t cols, const char *type) {
    if (!strcmp(type, "f32")) return RQ_OK;
    if (!strcmp(type, "f16")) {
        for (int64_t i = 0; i < rows * cols; i++) x[i] = rq_fp16_to_fp32(rq_fp32_to_fp16(x[i]));
        return RQ_OK;
    }
    if (strcmp(type, "q8_0") || cols % RQ_QK8_0) return rq_errorf(RQ_EINVAL, "qat: embedding type '%s' for width %lld", type, (long long)cols);
    rq_block_q8_0 *b = rq_alloc(cols / RQ_QK8_0 * (int64_t)sizeof *b);
    if (!b) return RQ_ENOMEM;
    for (int64_t r = 0; r < rows; r++) {
        rq_quant_q8_0_ref(x + r * cols, b, cols);
        rq_dequant_q8_0(b, x + r * cols, cols);
    }
    rq_free(b);
    return RQ_OK;
}

typedef struct {
    const rq_model *m;
    const int32_t *val;
    int64_t n_val, n_seq, T;
} val_ctx;

/* a validation line: the loss, and the student's held-out perplexity */
static void print_val(void *user, int64_t step, double train_loss, double val_loss) {
    const val_ctx *v = user;
    double ppl = 0;
    if (window_ppl(v->m, v->val, v->n_val, v->n_seq, v->T, &ppl) != RQ_OK) ppl = NAN;
    if (train_loss < 0)
        fprintf(stderr, "qat: step %lld: validation KL %.5f, held-out perplexity %.3f\n", (long long)step, val_loss, ppl);
    else
        fprintf(stderr, "qat: step %lld: train loss %.5f, validation KL %.5f, held-out perplexity %.3f\n",
                (long long)step, train_loss, val_loss, ppl);
}

static rq_status check_opts(const rq_rcp_opts *o) {
    if (o->quantizer < 0 || o->quantizer >= RQ_FQ2_COUNT) return rq_errorf(RQ_EINVAL, "qat: unknown quantizer");
    if (o->group != 0 && o->group != 32 && o->group != 64 && o->group != 128)
        return rq_errorf(RQ_EINVAL, "qat: --group %lld has no 2-bit kernel (32, 64, 128, or 0 = per channel)",
                         (long long)o->group);
    RQ_TRY(rq_abits_check(o->abits, "--abits"));
    RQ_TRY(rq_kvbits_check(o->kvbits, "--kvbits"));
    if (o->T < 2 || o->n_seq < 1) return rq_errorf(RQ_EINVAL, "qat: windows of %lld tokens, batches of %lld",
                                                   (long long)o->T, (long long)o->n_seq);
    if (!(o->lr > 0) || !(o->lr_quant > 0) || !(o->block_lr > 0) || !(o->block_lr_quant > 0))
        return rq_errorf(RQ_EINVAL, "qat: learning rates must be > 0");
    if (o->init_ptq && o->calib_n < 1) return rq_errorf(RQ_EINVAL, "qat: --calib-n must be >= 1");
    if (o->resume && o->save_start)
        return rq_errorf(RQ_EINVAL, "qat: --save-start with --resume: a resumed run does not rebuild its start point");
    if (o->warmup < 0 || o->warmup > o->steps)
        return rq_errorf(RQ_EINVAL, "qat: --warmup %lld must lie in [0, --steps = %lld]", (long long)o->warmup,
                         (long long)o->steps);
    if (o->resume && o->steps < 1) return rq_errorf(RQ_EINVAL, "qat: --resume needs end-to-end steps (--steps)");
    return RQ_OK;
}

/* the quantizer parameters of a 2-bit rotquant file as a PTQ result (no codes or latents:
 * the latents start from the dequantized weights the file's model holds) */
static rq_status file_start(const rq_gguf *gp, const rq_qinfo *qp, const rq_model *m, rq_ptq_result *r) {
    static const char *sfx[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    const rq_model_config *c = &m->cfg;
    int np = rq_qparam_count(qp->quantizer);
    memset(r, 0, sizeof *r);
    if (!(r->lin = rq_calloc(c->n_layer * 7 * (int64_t)sizeof(rq_qlinear)))) return RQ_ENOMEM;
    for (int64_t l = 0; l < c->n_layer; l++)
        for (int i = 0; i < 7; i++) {
            const rq_linear *ls[7] = {&m->layers[l].wq, &m->layers[l].wk, &m->layers[l].wv, &m->layers[l].wo,
                                      &m->layers[l].w_gate, &m->layers[l].w_up, &m->layers[l].w_down};
            const rq_linear *lin = ls[i];
            rq_qlinear *q = &r->lin[r->n_lin++];
            snprintf(q->name, sizeof q->name, "blk.%lld.%s.weight", (long long)l, sfx[i]);
            q->n_out = lin->n_out, q->n_in = lin->n_in;
            const rq_gguf_tensor *tc, *tp;
            RQ_TRY(rq_qinfo_linear_tensors(gp, qp, q->name, q->n_out, q->n_in, &tc, &tp, &q->group));
            int64_t n = q->n_out * (q->n_in / q->group) * np;
            if (!(q->params = rq_alloc(n * (int64_t)sizeof(float)))) return RQ_ENOMEM;
            rq_fp16_to_fp32_array((const rq_half *)tp->data, q->params, n);
        }
    return RQ_OK;
}

/* What the export needs besides the trained state. */
typedef struct export_ctx {
    const rq_rcp_opts *o;
    rq_model *m;
    const rq_gguf *g;
    const rq_qat *qat;
    const rq_qinfo *qp;  /* the start file's settings, or NULL */
    const rq_quant_plan *plan; /* the rotations */
    int64_t file_group;
    const char *embd_type;
    bool gptq;
    double bits_per_weight; /* out */
} export_ctx;

/* Writes the student as it stands (trained codes and levels, the online settings) to path,
 * atomically. */
static rq_status export_file(export_ctx *e, const char *path) {
    const rq_rcp_opts *o = e->o;
    const rq_model_config *c = &e->m->cfg;
    rq_ptq_result eres = {0};
    rq_qparam_kind ekind;
    rq_status s = rq_qat_export(e->qat, e->file_group, &eres, &ekind);
    if (s != RQ_OK) return s;
    rq_qinfo qi = {0};
    qi.wbits = 2, qi.group = (uint32_t)e->file_group, qi.quantizer = ekind;
    snprintf(qi.method, sizeof qi.method, "qat");
    qi.r1 = e->plan->r1, qi.r2 = e->plan->r2, qi.r3 = e->plan->r3, qi.r4 = e->plan->r4;
    qi.ri = e->plan->ri, qi.ro = e->plan->ro;
    qi.ri_matrix = e->plan->ri.kind == RQ_ROT_LEARNED ? e->plan->online.ri_matrix : NULL;
    qi.abits = (uint32_t)o->abits, qi.asym = o->asym, qi.aclip = o->aclip;
    qi.kvbits = (uint32_t)o->kvbits, qi.kv_group = o->kvbits != RQ_BITS_OFF ? (uint32_t)c->head_dim : 0, qi.kv_clip = 1.0f;
    snprintf(qi.embd_type, sizeof qi.embd_type, "%s", e->embd_type);
    snprintf(qi.calib, sizeof qi.calib, "%s", o->ids ? "ids" : "generate");
    qi.calib_n = e->gptq ? (uint32_t)o->calib_n : 0, qi.calib_len = e->gptq ? (uint32_t)o->T : 0;
    qi.seed = o->seed, qi.act_order = e->gptq, qi.fit_importance = e->gptq;
    if (e->qp)
        qi.abits = e->qp->abits, qi.asym = e->qp->asym, qi.aclip = e->qp->aclip, qi.kvbits = e->qp->kvbits,
        qi.kv_group = e->qp->kv_group, qi.kv_clip = e->qp->kv_clip;
    snprintf(qi.weight_fit, sizeof qi.weight_fit, "%s", rq_fq2_name(o->quantizer));
    qi.damp = 0.01f;
    s = rq_qmodel_write(e->m, e->g, &eres, &qi, path);
    e->bits_per_weight = qi.bits_per_weight;
    rq_ptq_result_free(&eres);
    return s;
}

rq_status rq_rcp_run(const char *in, const char *out, const rq_rcp_opts *o, rq_rcp_result *res) {
    memset(res, 0, sizeof *res);
    RQ_TRY(check_opts(o));
    double t_start = rq_time_now(), t0;
    rq_gguf *g = NULL, *gp = NULL;
    rq_model *m = NULL, *teacher = NULL;
    float *ri_buf = NULL; /* a start file's learned Ri */
    rq_tokenizer *tok = NULL;
    int32_t *win = NULL;
    rq_params p = {0};
    rq_qat *qat = NULL;
    rq_ptq_result pres = {0};
    rq_qinfo qi, qp;
    memset(&qi, 0, sizeof qi);
    memset(&qp, 0, sizeof qp);
    const char *embd_type = o->embd_type;
    rq_model_load_opts lo = {.ref_linear = true};
    rq_status s = rq_model_open(in, &g); /* a GGUF file or a Hugging Face checkpoint */
    if (s == RQ_OK) s = rq_qinfo_read(g, &qi);
    if (s == RQ_OK && qi.present) s = rq_errorf(RQ_EINVAL, "%s is already quantized by rotquant: give the float model", in);
    char what[600];
    if (s == RQ_OK && rq_mpi_size() > 1) { /* data-parallel (train/dp.h): every rank the same model */
        snprintf(what, sizeof what, "qat: the model %s", in);
        s = rq_mpi_check_same(rq_gguf_hash(g), what);
    }
    if (s == RQ_OK) s = rq_model_load_ex(g, &lo, &teacher);
    if (s == RQ_OK && !o->ids) s = rq_tokenizer_load(g, &tok);
    if (s == RQ_OK && o->init_file) { /* the start file: a 2-bit rotquant model of the same float model */
        s = rq_gguf_open(o->init_file, &gp);
        if (s == RQ_OK && rq_mpi_size() > 1) {
            snprintf(what, sizeof what, "qat: the start file %s", o->init_file);
            s = rq_mpi_check_same(rq_gguf_hash(gp), what);
        }
        if (s == RQ_OK) s = rq_qinfo_read(gp, &qp);
        if (s == RQ_OK && (!qp.present || qp.wbits != 2))
            s = rq_errorf(RQ_EINVAL, "%s: not a 2-bit rotquant model (rotquant quantize --wbits 2 makes one)",
                          o->init_file);
        if (s == RQ_OK && o->group && qp.group != (uint32_t)o->group)
            s = rq_errorf(RQ_EINVAL, "%s has groups of %u, --group asks for %lld", o->init_file, qp.group,
                          (long long)o->group);
        if (s == RQ_OK) s = rq_model_load_ex(gp, &lo, &m);
        char d1[256], d2[256];
        if (s == RQ_OK && strcmp(rq_model_config_describe(&m->cfg, d1, sizeof d1),
                                 rq_model_config_describe(&teacher->cfg, d2, sizeof d2)))
            s = rq_errorf(RQ_EINVAL, "%s is another model (%s) than %s (%s)", o->init_file, d1, in, d2);
        if (s == RQ_OK) embd_type = qp.embd_type;
    } else if (s == RQ_OK) {
        s = rq_model_load_ex(g, &lo, &m);
    }
    if (s != RQ_OK) goto done;
    const rq_model_config *c = &m->cfg;
    if (o->T > c->n_ctx_train && c->n_ctx_train > 0) {
        s = rq_errorf(RQ_EINVAL, "qat: windows of %lld tokens exceed the model's context %lld", (long long)o->T,
                      (long long)c->n_ctx_train);
        goto done;
    }
    /* rotations: R1 (block = the group, 64 per channel) and R2 (none by default) folded into both models;
     * with A/KV quantizers R3/R4 of the same kind online in the student (R4 folded into down).
     * A start file brings its own (already folded into it, and its online settings set). */
    int64_t blk = o->group ? o->group : 64, file_group = blk;
    rq_quant_plan plan;
    if (gp) {
        memset(&plan, 0, sizeof plan);
        plan.r1 = qp.r1, plan.r2 = qp.r2, plan.r3 = qp.r3, plan.r4 = qp.r4, file_group = qp.group;
        plan.ri = qp.ri, plan.ro = qp.ro;
        if ((s = rq_qinfo_online_cfg_file(gp, &qp, &plan.online, &ri_buf)) != RQ_OK) goto done;
    } else { /* the rotations and run-time quantizers of `rotquant quantize` with these settings */
        rq_quant_opts qo = rq_quant_opts_default();
        qo.rotate = o->rotate, qo.rotate2 = (int)o->rotate2, qo.block = blk, qo.group = blk, qo.seed = o->seed;
        qo.r1_route = (rq_r1_route)o->r1_route;
        qo.abits = o->abits, qo.kvbits = o->kvbits;
        if (o->abits != RQ_BITS_OFF) qo.asym = o->asym, qo.aclip = o->aclip;
        if ((s = rq_quant_plan_make(m, &qo, &plan)) != RQ_OK) goto done;
    }
    if ((!gp && (s = rq_quant_fold(m, &plan)) != RQ_OK) || (s = rq_quant_fold(teacher, &plan)) != RQ_OK) goto done;
    if ((s = as_stored(m->tok_embd, c->n_vocab, c->n_embd, embd_type)) != RQ_OK) goto done;
    if (m->output.w != m->tok_embd && (s = as_stored(m->output.w, c->n_vocab, c->n_embd, embd_type)) != RQ_OK)
        goto done;

    /* data */
    t0 = rq_time_now();
    int64_t n_win; /* the float teacher generates the data */
    if ((s = rq_quant_train_windows(teacher, tok, o->ids, o->n_ids, o->T, o->gen_seqs, o->gen_temp, g, o->gen_chat, o->seed,
                                    o->progress, o->data_save, "qat", &win, &n_win)) != RQ_OK)
        goto done;
    if (rq_mpi_size() > 1 &&
        (s = rq_mpi_check_same(rq_hash64(win, n_win * o->T * (int64_t)sizeof(int32_t), 0), "qat: the training windows")) != RQ_OK)
        goto done;
    rq_rng rng;
    rq_rng_seed(&rng, o->seed ^ 0x717174ULL);
    for (int64_t i = n_win - 1; i > 0; i--) { /* seeded shuffle of whole windows */
        int64_t j = (int64_t)rq_rng_below(&rng, (uint64_t)(i + 1));
        for (int64_t t = 0; t < o->T; t++) {
            int32_t x = win[i * o->T + t];
            win[i * o->T + t] = win[j * o->T + t], win[j * o->T + t] = x;
        }
    }
    int64_t n_val = (int64_t)(o->val_frac * (double)n_win + 0.5), n_train = n_win - n_val;
    bool gptq = o->init_ptq && !gp;
    if (n_train < o->n_seq || (n_val > 0 && n_val < o->n_seq) || (gptq && o->calib_n > n_train)) {
        s = rq_errorf(RQ_EINVAL, "qat: %lld windows of %lld tokens (%lld held out) are too few for batches of %lld "
                      "and %lld calibration windows", (long long)n_win, (long long)o->T, (long long)n_val,
                      (long long)o->n_seq, (long long)o->calib_n);
        goto done;
    }
    const int32_t *val = win + n_train * o->T;
    res->t_data = rq_time_now() - t0;

    /* the student: R4 folded, online quantizers on (a float KV cache holding the quantized
     * values: the training forward runs segments), then the start point */
    t0 = rq_time_now();
    if ((s = gp ? rq_model_set_online(m, &plan.online) : rq_quant_arm(m, &plan)) != RQ_OK) goto done;
    m->online.kv_fake = true;
    rq_qparam_kind pkind = o->quantizer == RQ_FQ2_LDP ? RQ_QPARAM_LUT : RQ_QPARAM_UNIFORM;
    if (gp) {
        pkind = qp.quantizer;
        if ((s = file_start(gp, &qp, m, &pres)) != RQ_OK) goto done;
    } else if (gptq && !o->resume) { /* a resumed run loads every latent and quantizer entry from the checkpoint */
        rq_ptq_opts po = rq_ptq_opts_default();
        po.wbits = 2, po.group = blk, po.quantizer = pkind, po.method = RQ_PTQ_GPTQ;
        po.act_order = po.fit_importance = true;
        po.clip_search = po.least_squares = pkind == RQ_QPARAM_UNIFORM;
        po.half_zero = o->quantizer == RQ_FQ2_SEQ; /* GPTQ on SEQ's own grid */
        po.keep_latent = true, po.progress = o->progress;
        if ((s = rq_ptq_run(m, &po, win, o->calib_n, o->T, &pres)) != RQ_OK) goto done;
    }
    res->t_ptq = rq_time_now() - t0;
    if ((s = rq_params_build(m, &p)) != RQ_OK) goto done;
    for (int64_t i = 0; i < p.count; i++) p.p[i].trainable = p.p[i].group == RQ_PGROUP_LINEAR && !strncmp(p.p[i].name, "blk.", 4);
    rq_qat_cfg qc = {.fq2 = true, .kind = o->quantizer, .group = o->group, .init_logit = 4.0f,
                     .init = (gptq && !o->resume) || gp ? &pres : NULL, .init_kind = pkind};
    if ((s = rq_qat_new_cfg(&p, &qc, &qat)) != RQ_OK) goto done;
    rq_ptq_result_free(&pres);
    export_ctx ex = {.o = o, .m = m, .g = g, .qat = qat, .qp = gp ? &qp : NULL, .plan = &plan,
                     .file_group = file_group, .embd_type = embd_type, .gptq = gptq};
    /* every rank holds the same model: rank 0 alone writes the files and measures the held-out
     * perplexities (not collective; the other ranks wait in the next step's reduction) */
    bool r0 = rq_mpi_rank() == 0, talk = o->progress && r0;
    if (r0 && o->save_start && (s = export_file(&ex, o->save_start)) != RQ_OK) goto done;
    if (o->resume) {
        res->val_ppl_start = NAN;
        if (talk) fprintf(stderr, "qat: resuming from %s (the start point is not rebuilt)\n", o->resume);
    } else if (r0 && n_val && (s = window_ppl(m, val, n_val, o->n_seq, o->T, &res->val_ppl_start)) != RQ_OK) {
        goto done;
    } else if (talk)
        fprintf(stderr, "qat: start (%s): held-out perplexity %.3f; %lld training windows of %lld tokens, %lld held out\n",
                gp ? o->init_file : gptq ? "GPTQ" : "min/max", res->val_ppl_start, (long long)n_train, (long long)o->T,
                (long long)n_val);

    /* phase 1: block-wise */
    t0 = rq_time_now();
    if (o->block_steps > 0 && !o->resume) {
        rq_blockwise_opts bo = {.n_seq = o->n_seq, .T = o->T, .steps = o->block_steps, .clip = o->clip,
                                .seed = o->seed, .progress = o->progress};
        bo.group[RQ_PGROUP_LINEAR] = (rq_adamw_group){.lr = o->block_lr};
        bo.group[RQ_PGROUP_QUANT] = (rq_adamw_group){.lr = o->block_lr_quant};
        bo.schedule = (rq_lr_schedule){.shape = RQ_LR_CONSTANT, .total = o->block_steps};
        rq_blockwise_result br;
        if ((s = rq_blockwise_run(m, &p, qat, teacher, win, n_train, &bo, &br)) != RQ_OK) goto done;
        res->mse_first = br.mse_first, res->mse_last = br.mse_last, res->tokens_block = br.tokens;
        if (talk && n_val) {
            double pp;
            if ((s = window_ppl(m, val, n_val, o->n_seq, o->T, &pp)) != RQ_OK) goto done;
            fprintf(stderr, "qat: block-wise phase done in %.0f s: MSE %.5g -> %.5g (mean over blocks); held-out "
                    "perplexity %.3f\n", rq_time_now() - t0, br.mse_first, br.mse_last, pp);
        }
        if (r0 && o->save_block && (s = export_file(&ex, o->save_block)) != RQ_OK) goto done;
    }
    res->t_block = rq_time_now() - t0;

    /* phase 2: end-to-end distillation from the rotated float teacher */
    t0 = rq_time_now();
    res->gamma = o->gamma;
    if (o->steps > 0) {
        if (res->gamma < 0 && (s = teacher_confidence(teacher, win, n_train, o->n_seq, o->T, &res->gamma)) != RQ_OK)
            goto done;
        if (talk) fprintf(stderr, "qat: end-to-end distillation, CAKLD γ = %.3f\n", res->gamma);
        rq_train_run_opts ro = {.n_seq = o->n_seq, .T = o->T, .steps = o->steps, .eval_every = o->eval_every,
                                .clip = o->clip, .gamma = res->gamma, .seed = o->seed, .checkpoint = o->checkpoint,
                                .resume = o->resume, .progress = o->progress, .keep_best = !o->keep_last,
                                .checkpoint_act = o->checkpoint_act,
                                .on_validation = o->progress ? print_val : NULL};
        val_ctx vc = {.m = m, .val = val, .n_val = n_val, .n_seq = o->n_seq, .T = o->T};
        ro.user = &vc;
        ro.schedule = (rq_lr_schedule){.shape = o->schedule, .warmup = o->warmup, .total = o->steps};
        ro.group[RQ_PGROUP_LINEAR] = (rq_adamw_group){.lr = o->lr};
        ro.group[RQ_PGROUP_QUANT] = (rq_adamw_group){.lr = o->lr_quant};
        rq_train_run_result rr;
        if ((s = rq_train_run(m, &p, qat, teacher, win, n_train, val, n_val, &ro, &rr)) != RQ_OK) goto done;
        res->val_first = rr.val_first, res->val_last = rr.val_last, res->tokens_e2e = rr.tokens;
    }
    res->t_e2e = rq_time_now() - t0;
    if (r0 && n_val && (s = window_ppl(m, val, n_val, o->n_seq, o->T, &res->val_ppl_end)) != RQ_OK) goto done;

    /* export exactly what was trained */
    if (r0 && (s = export_file(&ex, out)) != RQ_OK) goto done;
    res->bits_per_weight = ex.bits_per_weight;
    /* the file as `rotquant ppl/run` load it computes what was trained */
    if (r0 && n_val) {
        rq_model *mf = NULL;
        if ((s = rq_model_load_file(out, &mf)) == RQ_OK)
            s = window_ppl(mf, val, n_val, o->n_seq, o->T, &res->val_ppl_file);
        rq_model_free(mf);
    }
done:
    res->t_total = rq_time_now() - t_start;
    rq_ptq_result_free(&pres);
    rq_qat_free(qat);
    rq_params_free(&p);
    rq_free(win);
    rq_tokenizer_free(tok);
    rq_model_free(teacher);
    rq_model_free(m);
    rq_free(ri_buf);
    rq_gguf_close(gp);
    rq_gguf_close(g);
    return s;
}
