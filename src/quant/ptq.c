#include "quant/ptq.h"

#include "base/mpi.h"
#include "base/timer.h"
#include "format/format.h"
#include "quant/ggquant.h"
#include "quant/gptq.h"
#include "quant/lut.h"
#include "quant/uniform.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

rq_ptq_opts rq_ptq_opts_default(void) {
    rq_ptq_opts o;
    memset(&o, 0, sizeof o);
    o.wbits = 2;
    o.group = 64;
    o.quantizer = RQ_QPARAM_UNIFORM;
    o.method = RQ_PTQ_GPTQ;
    o.damp = 0.01;
    o.lut_iters = 10;
    return o;
}

/* the linears of a block, with the site whose activations are their inputs */
enum { N_LIN = 7 };
static const char *lin_names[N_LIN] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
static const rq_site lin_site[N_LIN] = {RQ_SITE_ATTN_IN, RQ_SITE_ATTN_IN, RQ_SITE_ATTN_IN, RQ_SITE_ATTN_OUT,
                                        RQ_SITE_FFN_IN,  RQ_SITE_FFN_IN,  RQ_SITE_FFN_DOWN};

static rq_linear *layer_lin(rq_layer *L, int i) {
    rq_linear *ls[N_LIN] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return ls[i];
}

/* hook: copy the activations of the layer being calibrated */
typedef struct {
    int64_t layer;
    float *buf[RQ_SITE_COUNT]; /* [seq_len, dim] */
    int64_t rows[RQ_SITE_COUNT];
} capture;

static void capture_hook(void *user, int64_t layer, rq_site site, const float *x, int64_t n, int64_t dim) {
    capture *c = user;
    if (layer != c->layer || !c->buf[site]) return;
    memcpy(c->buf[site], x, (size_t)(n * dim) * sizeof(float));
    c->rows[site] = n;
}

void rq_ptq_result_free(rq_ptq_result *res) {
    for (int64_t i = 0; i < res->n_lin; i++) {
        rq_free(res->lin[i].codes);
        rq_free(res->lin[i].params);
        rq_free(res->lin[i].latent);
    }
    rq_free(res->lin);
    memset(res, 0, sizeof *res);
}

static rq_status check_opts(const rq_model *m, const rq_ptq_opts *o) {
    const rq_model_config *c = &m->cfg;
    for (int64_t l = 0; l < c->n_layer; l++)
        for (int i = 0; i < N_LIN; i++)
            if (layer_lin(&m->layers[l], i)->kind != RQ_LINEAR_F32)
                return rq_errorf(RQ_EINVAL, "layer %lld is already quantized", (long long)l);
    if (o->gg_type) {
        if (!rq_gg_type_writable(o->gg_type)) return rq_errorf(RQ_EINVAL, "type %s cannot be written", rq_type_name(o->gg_type));
        for (int i = 0; i < N_LIN; i++) {
            const rq_linear *lin = layer_lin(&m->layers[0], i);
            if (rq_gg_type_for_row(o->gg_type, lin->n_in) < 0)
                return rq_errorf(RQ_EINVAL, "%s: rows of %lld weights fit neither %s nor a type llama.cpp falls back to "
                                 "(rows must be a multiple of 32)", lin_names[i], (long long)lin->n_in,
                                 rq_type_name(o->gg_type));
        }
        return RQ_OK;
    }
    if (!rq_qpacked_bits_ok(o->wbits)) return rq_errorf(RQ_EINVAL, "weight bits %d (2, 3, 4 or 8)", o->wbits);
    if (o->quantizer == RQ_QPARAM_LUT && o->wbits != 2)
        return rq_errorf(RQ_EINVAL, "the LUT quantizer has 4 levels: it needs --wbits 2");
    int64_t ins[3] = {c->n_embd, c->n_head * c->head_dim, c->n_ff};
    for (int i = 0; i < 3; i++)
        if (o->group < 1 || rq_qpacked_group_for(o->group, ins[i]) < 1)
            return rq_errorf(RQ_EINVAL, "group %lld: no power-of-two fraction of it divides the layer input size %lld",
                             (long long)o->group, (long long)ins[i]);
    return RQ_OK;
}

rq_status rq_ptq_run(rq_model *m, const rq_ptq_opts *o, const int32_t *calib, int64_t n_seq, int64_t seq_len,
                     rq_ptq_result *res) {
    memset(res, 0, sizeof *res);
    RQ_TRY(check_opts(m, o));
    const rq_model_config *c = &m->cfg;
    bool gptq = o->method == RQ_PTQ_GPTQ;
    if (gptq && (!calib || n_seq < 1 || seq_len < 2)) return rq_errorf(RQ_EINVAL, "GPTQ needs calibration data");

    rq_uniform_cfg ucfg = {.bits = o->wbits, .symmetric = false,
                           .clip = o->clip_search ? rq_uniform_clip_grid : NULL,
                           .n_clip = o->clip_search ? RQ_UNIFORM_CLIP_GRID_N : 0,
                           .least_squares = o->least_squares, .half_zero = o->half_zero};
    RQ_TRY(rq_uniform_cfg_check(&ucfg));
    rq_lut_cfg lcfg = {.iters = o->lut_iters};
    rq_group_quantizer q = o->quantizer == RQ_QPARAM_LUT ? rq_lut_quantizer(&lcfg) : rq_uniform_quantizer(&ucfg);
    rq_gptq_cfg gcfg = rq_gptq_cfg_default();
    gcfg.damp = o->damp;
    gcfg.shrink = o->shrink;
    gcfg.group = o->group;
    gcfg.act_order = o->act_order;
    gcfg.fit_importance = o->fit_importance;
    gcfg.static_groups = o->act_order; /* contiguous groups for the file layout */

    res->n_lin = c->n_layer * N_LIN;
    res->lin = rq_xcalloc(res->n_lin * (int64_t)sizeof(rq_qlinear));

    int64_t dims[RQ_SITE_COUNT] = {0};
    dims[RQ_SITE_ATTN_IN] = c->n_embd;
    dims[RQ_SITE_ATTN_OUT] = c->n_head * c->head_dim;
    dims[RQ_SITE_FFN_IN] = c->n_embd;
    dims[RQ_SITE_FFN_DOWN] = c->n_ff;

    rq_status s = RQ_OK;
    rq_state *st = NULL;
    float *X = NULL; /* [n_seq, seq_len, n_embd] residual stream entering the current layer */
    capture cap;
    memset(&cap, 0, sizeof cap);
    rq_hessian hs[RQ_SITE_COUNT];
    memset(hs, 0, sizeof hs);
    double *H = NULL;
    /* MPI (base/mpi.h): this rank's calibration sequences [s0, s1); every rank runs its
     * share through each block, the Hessians are summed exactly over the ranks
     * (rq_hessian_reduce), each rank solves GPTQ for every size-th linear of the block and
     * broadcasts it: the same quantized model as one process, bit for bit */
    const int rank = rq_mpi_rank(), n_ranks = rq_mpi_size();
    int64_t s0 = 0, s1 = n_seq;
    if (gptq) rq_mpi_share(n_seq, &s0, &s1);
    const int64_t my_seq = s1 - s0;
    float *deqs[N_LIN] = {0}; /* [n_out, n_in] each: a block's dequantized weights */
    if (gptq) {
        int64_t nx;
        if (!rq_mul_ok((my_seq > 0 ? my_seq : 1) * seq_len, c->n_embd, &nx) ||
            !(X = rq_alloc(nx * (int64_t)sizeof(float)))) {
            s = rq_errorf(RQ_ENOMEM, "calibration activations: %lld x %lld tokens do not fit in memory",
                          (long long)n_seq, (long long)seq_len);
            goto done;
        }
        for (int64_t t = 0; t < n_seq * seq_len; t++)
            if (calib[t] < 0 || calib[t] >= c->n_vocab) {
                s = rq_errorf(RQ_EINVAL, "calibration token %d out of range", calib[t]);
                goto done;
            }
        /* the forward pass's own embedding (with Gemma-3's √n_embd scale) */
        if (my_seq > 0) rq_model_embed(m, calib + s0 * seq_len, my_seq * seq_len, X);
        if ((s = rq_state_new(m, seq_len, seq_len, false, &st)) != RQ_OK) goto done;
        st->hook = capture_hook;
        st->hook_user = &cap;
        for (int k = 0; k < RQ_SITE_COUNT; k++)
            if (dims[k]) cap.buf[k] = rq_xalloc(seq_len * dims[k] * (int64_t)sizeof(float));
        H = rq_xalloc(c->n_ff * c->n_ff * (int64_t)sizeof(double));
    }

    rq_progress prog;
    rq_progress_start(&prog, "quantize", c->n_layer, o->progress);
    for (int64_t l = 0; l < c->n_layer; l++) {
        double t0 = rq_time_now();
        rq_layer *L = &m->layers[l];
        if (gptq) {
            cap.layer = l;
            for (int k = 0; k < RQ_SITE_COUNT; k++)
                if (dims[k] && (s = rq_hessian_init(&hs[k], dims[k])) != RQ_OK) goto done;
            for (int64_t sq = 0; sq < my_seq; sq++) {
                double ta = rq_time_now();
                memcpy(st->x, X + sq * seq_len * c->n_embd, (size_t)(seq_len * c->n_embd) * sizeof(float));
                if ((s = rq_model_forward_layers(st, l, l + 1, seq_len, 0)) != RQ_OK) goto done;
                double tb = rq_time_now();
                for (int k = 0; k < RQ_SITE_COUNT; k++)
                    if (dims[k]) rq_hessian_add(&hs[k], cap.buf[k], cap.rows[k]);
                res->t_forward += tb - ta;
                res->t_hessian += rq_time_now() - tb;
            }
            double tr = rq_time_now();
            for (int k = 0; k < RQ_SITE_COUNT; k++)
                if (dims[k] && (s = rq_hessian_reduce(&hs[k])) != RQ_OK) goto done;
            res->t_hessian += rq_time_now() - tr;
        }
        double tq = rq_time_now();
        double layer_loss = 0;
        int h_site = -1; /* the site whose Hessian is in H */
        for (int i = 0; i < N_LIN; i++) {
            rq_linear *lin = layer_lin(L, i);
            rq_qlinear *ql = &res->lin[l * N_LIN + i];
            snprintf(ql->name, sizeof ql->name, "blk.%lld.%s.weight", (long long)l, lin_names[i]);
            ql->n_out = lin->n_out;
            ql->n_in = lin->n_in;
            const rq_group_quantizer *ql_q = &q;
            rq_group_quantizer gq;
            if (o->gg_type) { /* the llama.cpp type of this layer (checked in check_opts) */
                ql->type = rq_gg_type_for_row(o->gg_type, lin->n_in);
                gq = rq_gg_quantizer(ql->type, &ql->group);
                ql_q = &gq;
            } else {
                ql->group = rq_qpacked_group_for(o->group, lin->n_in);
            }
            gcfg.group = ql->group;
            int64_t n = lin->n_out * lin->n_in;
            ql->codes = rq_xalloc(n);
            ql->params = rq_xalloc(n / ql->group * ql_q->n_param * (int64_t)sizeof(float));
            float *deq = deqs[i] = rq_xalloc(n * (int64_t)sizeof(float));
            if (o->keep_latent) ql->latent = rq_xalloc(n * (int64_t)sizeof(float));
            gcfg.pre = ql->latent;
            if (!gptq && ql->latent) memcpy(ql->latent, lin->w, (size_t)n * sizeof(float));
            if (gptq && i % n_ranks != rank) continue; /* another rank's linear */
            if (gptq) {
                /* q, k, v share one Hessian, gate and up another: fetch it once per site */
                if (h_site != (int)lin_site[i]) rq_hessian_get(&hs[lin_site[i]], H), h_site = (int)lin_site[i];
                rq_gptq_info info;
                s = rq_gptq_quantize(&gcfg, ql_q, H, lin->w, lin->n_out, lin->n_in, ql->codes, ql->params, deq, NULL,
                                     &info);
                ql->loss = info.loss;
                if (s == RQ_OK && info.warning[0]) fprintf(stderr, "\nquantize: %s: %s\n", ql->name, info.warning);
            } else {
                s = rq_quant_rtn(ql_q, lin->w, lin->n_out, lin->n_in, ql->group, NULL, ql->codes, ql->params, deq);
                double e = 0;
                for (int64_t j = 0; j < n; j++) e += ((double)lin->w[j] - deq[j]) * ((double)lin->w[j] - deq[j]);
                ql->loss = e;
            }
            if (s != RQ_OK) {
                rq_error_prefix(s, ql->name);
                goto done;
            }
        }
        for (int i = 0; i < N_LIN; i++) {
            rq_linear *lin = layer_lin(L, i);
            rq_qlinear *ql = &res->lin[l * N_LIN + i];
            int64_t n = lin->n_out * lin->n_in;
            if (gptq && n_ranks > 1) { /* from the rank that solved it */
                int owner = i % n_ranks;
                int64_t gg_group, n_param = o->gg_type ? rq_gg_quantizer(ql->type, &gg_group).n_param : q.n_param;
                if ((s = rq_mpi_bcast(ql->codes, n, owner)) != RQ_OK ||
                    (s = rq_mpi_bcast(ql->params, n / ql->group * n_param * (int64_t)sizeof(float), owner)) != RQ_OK ||
                    (s = rq_mpi_bcast(deqs[i], n * (int64_t)sizeof(float), owner)) != RQ_OK ||
                    (s = rq_mpi_bcast(&ql->loss, sizeof ql->loss, owner)) != RQ_OK ||
                    (ql->latent && (s = rq_mpi_bcast(ql->latent, n * (int64_t)sizeof(float), owner)) != RQ_OK))
                    goto done;
            }
            memcpy(lin->w, deqs[i], (size_t)n * sizeof(float));
            rq_free(deqs[i]);
            deqs[i] = NULL;
            layer_loss += ql->loss;
        }
        res->t_quant += rq_time_now() - tq;
        if (gptq) {
            for (int k = 0; k < RQ_SITE_COUNT; k++) rq_hessian_free(&hs[k]);
            /* propagate: this block's quantized output is the next block's input */
            cap.layer = -1;
            double ta = rq_time_now();
            for (int64_t sq = 0; sq < my_seq; sq++) {
                float *xs = X + sq * seq_len * c->n_embd;
                memcpy(st->x, xs, (size_t)(seq_len * c->n_embd) * sizeof(float));
                if ((s = rq_model_forward_layers(st, l, l + 1, seq_len, 0)) != RQ_OK) goto done;
                memcpy(xs, st->x, (size_t)(seq_len * c->n_embd) * sizeof(float));
            }
            res->t_forward += rq_time_now() - ta;
        }
        char extra[96];
        snprintf(extra, sizeof extra, "layer %lld: loss %.4g, %.1fs", (long long)l, layer_loss, rq_time_now() - t0);
        rq_progress_step(&prog, 1, extra);
    }
    rq_progress_finish(&prog);

done:
    for (int i = 0; i < N_LIN; i++) rq_free(deqs[i]);
    for (int k = 0; k < RQ_SITE_COUNT; k++) {
        rq_hessian_free(&hs[k]);
        rq_free(cap.buf[k]);
    }
    rq_free(H);
    rq_free(X);
    rq_state_free(st);
    if (s != RQ_OK) rq_ptq_result_free(res);
    return s;
}
