/* The quantize pipeline (quant/pipeline.h). */
#include "quant/pipeline.h"

#include "base/hash.h"
#include "base/mpi.h"
#include "base/timer.h"
#include "format/abits.h"
#include "format/qpacked.h"
#include "io/atomic_file.h"
#include "io/file.h"
#include "io/gguf.h"
#include "io/gguf_hash.h"
#include "model/fold.h"
#include "model/hf.h"
#include "quant/calib.h"
#include "quant/qmodel.h"
#include "rotate/learned.h"

#include <cblas.h>

#include <stdio.h>
#include <string.h>

/* defaults of the calibration data when not given: 16 × 512 self-generated tokens. The
 * papers' 128 × 2048 was measured no better on SmolLM2-135M (W2 GSR GPTQ, 40 windows: 173.17
 * against 170.48) for ~50× the time (README, issue 12) */
#define CALIB_N_DEFAULT 16
#define CALIB_LEN_DEFAULT 512

rq_quant_opts rq_quant_opts_default(void) {
    return (rq_quant_opts){.rotate = RQ_ROT_GSR, .r1_route = RQ_R1_AUTO, .rotate2 = -1, .rotate3 = -1, .rotate4 = -1, .wbits = 2,
                           .group = 64, .quantizer = RQ_QPARAM_UNIFORM, .method = RQ_PTQ_GPTQ, .act_order = -1,
                           .fit_importance = -1, .fit = RQ_FIT_LS, .damp = 0.01, .abits = 16, .aclip = 1.0,
                           .kvbits = 16, .kvclip = 1.0, .calib = "generate", .embd_type = "q8_0"};
}

static const char *method_name(rq_ptq_method m) { return m == RQ_PTQ_GPTQ ? "gptq" : "rtn"; }
static const char *quantizer_name(rq_qparam_kind q) { return q == RQ_QPARAM_LUT ? "lut" : "uniform"; }
static bool kind_ok(int k) { return k >= 0 && k < RQ_ROT_KIND_COUNT; }

rq_status rq_quant_opts_check(const rq_quant_opts *o) {
    if (!rq_qpacked_bits_ok(o->wbits) && o->wbits != 16)
        return rq_errorf(RQ_EINVAL, "--wbits: %d is not one of 2, 3, 4, 8, 16", o->wbits);
    RQ_TRY(rq_abits_check(o->abits, "--abits"));
    RQ_TRY(rq_kvbits_check(o->kvbits, "--kvbits"));
    if (!(o->aclip > 0 && o->aclip <= 1)) return rq_errorf(RQ_EINVAL, "--aclip: %g is not in (0, 1]", o->aclip);
    if (!(o->kvclip > 0 && o->kvclip <= 1)) return rq_errorf(RQ_EINVAL, "--kvclip: %g is not in (0, 1]", o->kvclip);
    if (o->kvbits == RQ_BITS_OFF && (o->kv_group || o->kvclip != 1.0))
        return rq_errorf(RQ_EINVAL, "--kv-group/--kvclip need --kvbits 4");
    if (o->abits == RQ_BITS_OFF && (o->asym || o->aclip != 1.0)) return rq_errorf(RQ_EINVAL, "--asym/--aclip need --abits 4 or 8");
    if (o->kv_group < 0) return rq_errorf(RQ_EINVAL, "--kv-group: %lld is negative", (long long)o->kv_group);
    if (o->group < 1) return rq_errorf(RQ_EINVAL, "--group: %lld is not >= 1", (long long)o->group);
    if (o->block < 0 || o->block2 < 0 || o->block3 < 0 || o->block4 < 0)
        return rq_errorf(RQ_EINVAL, "--block/--block2/--block3/--block4: a block size is negative");
    if (o->r1_route != RQ_R1_RESIDUAL && o->r1_route != RQ_R1_LINEAR && o->r1_route != RQ_R1_AUTO)
        return rq_errorf(RQ_EINVAL, "--r1-route: %d is not residual, linear or auto", (int)o->r1_route);
    if (o->fit != RQ_FIT_LS && o->fit != RQ_FIT_CLIP && o->fit != RQ_FIT_MINMAX)
        return rq_errorf(RQ_EINVAL, "--fit: %d is not ls, clip or minmax", (int)o->fit);
    if (o->quantizer != RQ_QPARAM_UNIFORM && o->quantizer != RQ_QPARAM_LUT)
        return rq_errorf(RQ_EINVAL, "--quantizer: %d is not uniform or lut", (int)o->quantizer);
    if (o->seq_grid && (o->quantizer != RQ_QPARAM_UNIFORM || o->fit != RQ_FIT_LS || o->wbits < 2 || o->wbits > 4))
        return rq_errorf(RQ_EINVAL, "--quantizer seq: needs --fit ls (the default) and 2-4 weight bits");
    if (o->method != RQ_PTQ_GPTQ && o->method != RQ_PTQ_RTN)
        return rq_errorf(RQ_EINVAL, "--method: %d is not rtn or gptq", (int)o->method);
    if (o->fit_importance == 1 && o->method != RQ_PTQ_GPTQ)
        return rq_errorf(RQ_EINVAL, "--fit-importance needs --method gptq (the weights come from its Hessian)");
    if (o->act_order == 1 && o->method != RQ_PTQ_GPTQ) return rq_errorf(RQ_EINVAL, "--act-order needs --method gptq");
    if (!(o->damp >= 0)) return rq_errorf(RQ_EINVAL, "--damp: %g is negative", o->damp);
    if (!(o->hshrink >= 0 && o->hshrink <= 1))
        return rq_errorf(RQ_EINVAL, "--hessian-shrink: %g is not in [0, 1]", o->hshrink);
    if (!o->embd_type || (strcmp(o->embd_type, "q8_0") && strcmp(o->embd_type, "f16") && strcmp(o->embd_type, "f32")))
        return rq_errorf(RQ_EINVAL, "--embd-type: '%s' is not q8_0, f16 or f32", o->embd_type ? o->embd_type : "");
    if (!kind_ok(o->rotate) || (o->rotate2 != -1 && !kind_ok(o->rotate2)) || (o->rotate3 != -1 && !kind_ok(o->rotate3)) ||
        (o->rotate4 != -1 && !kind_ok(o->rotate4)))
        return rq_errorf(RQ_EINVAL, "--rotate/--rotate2/--rotate3/--rotate4: unknown rotation kind");
    if (o->rotate2 == RQ_ROT_LEARNED || o->rotate3 == RQ_ROT_LEARNED || o->rotate4 == RQ_ROT_LEARNED)
        return rq_errorf(RQ_EINVAL, "--rotate2/3/4: learned rotations are R1 and R2 from --rotation-file (--rotate learned)");
    if (o->rotate == RQ_ROT_LEARNED && !o->rotation_file)
        return rq_errorf(RQ_EINVAL, "--rotate learned needs --rotation-file (rotquant rotlearn writes one)");
    if (o->rotate != RQ_ROT_LEARNED && (o->rotation_file || o->compose != RQ_ROT_NONE))
        return rq_errorf(RQ_EINVAL, "--rotation-file/--compose go with --rotate learned");
    if (!kind_ok(o->compose) || o->compose == RQ_ROT_LEARNED)
        return rq_errorf(RQ_EINVAL, "--compose: not a fixed rotation kind");
    if (o->calib_n < 0 || o->calib_len < 0 || o->calib_len == 1)
        return rq_errorf(RQ_EINVAL, "--calib-n/--calib-len: %lld sequences of %lld tokens", (long long)o->calib_n,
                         (long long)o->calib_len);
    if (!o->calib_ids && !o->calib) return rq_errorf(RQ_EINVAL, "--calib: no source given");
    bool calibrated = o->method == RQ_PTQ_GPTQ && o->wbits != 16;
    if (o->calib_save && !calibrated)
        return rq_errorf(RQ_EINVAL, "--calib-save: %s uses no calibration data",
                         o->wbits == 16 ? "--wbits 16" : "--method rtn");
    if (o->loss_report && o->wbits == 16)
        return rq_errorf(RQ_EINVAL, "--loss-report: --wbits 16 quantizes no weights");
    if (o->calib_ids && (o->calib_n || o->calib_len))
        return rq_errorf(RQ_EINVAL, "--calib-ids sets the sequence count and length itself");
    return RQ_OK;
}

void rq_quant_plan_free(rq_quant_plan *p) {
    rq_free(p->r1_dense);
    rq_free(p->r2_dense);
    p->r1_dense = p->r2_dense = NULL;
}

/* --rotate learned: the file's matrices into p (R1 composed with o->compose), its R3/R4 kinds
 * into p->r3/r4 (the defaults of R3/R4) */
static rq_status plan_learned(const rq_model *m, const rq_quant_opts *o, rq_quant_plan *p, int64_t block) {
    const rq_model_config *c = &m->cfg;
    rq_rot_learned f;
    RQ_TRY(rq_rot_learned_read(o->rotation_file, &f));
    char desc[sizeof f.model];
    rq_model_config_describe(c, desc, sizeof desc);
    rq_status s = RQ_OK;
    if (f.n != c->n_embd)
        s = rq_errorf(RQ_EINVAL, "%s: R1 of size %lld, the model's hidden size is %lld", o->rotation_file,
                      (long long)f.n, (long long)c->n_embd);
    else if (f.n_r2 && (f.head_dim != c->head_dim || (f.n_r2 != 1 && f.n_r2 != c->n_layer)))
        s = rq_errorf(RQ_EINVAL, "%s: %lld R2 matrices of size %lld for a model of %lld layers, head_dim %lld",
                      o->rotation_file, (long long)f.n_r2, (long long)f.head_dim, (long long)c->n_layer,
                      (long long)c->head_dim);
    else if (f.model[0] && strcmp(f.model, desc))
        s = rq_errorf(RQ_EINVAL, "%s was learned on another model (%s; this one is %s)", o->rotation_file, f.model, desc);
    else if (f.n_r2 && o->rotate2 > RQ_ROT_NONE)
        s = rq_errorf(RQ_EINVAL, "--rotate2: %s brings its own (learned) R2", o->rotation_file);
    if (s == RQ_OK && o->compose != RQ_ROT_NONE) { /* R1 ← R_learned·Q */
        bool blk = o->compose == RQ_ROT_GSR || o->compose == RQ_ROT_GH;
        p->compose = rq_rot_make(o->compose, c->n_embd, blk ? block : 0, o->seed);
        float *q = NULL, *r = NULL;
        s = rq_rot_dense(&p->compose, &q);
        if (s == RQ_OK && !(r = rq_alloc(f.n * f.n * (int64_t)sizeof(float)))) s = RQ_ENOMEM;
        if (s == RQ_OK) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)f.n, (int)f.n, (int)f.n, 1.0f, f.r1, (int)f.n,
                        q, (int)f.n, 0.0f, r, (int)f.n);
            /* a learned R1 still near a Hadamard start times GSR's Walsh blocks can cancel
             * into a near-permutation (SmolLM2: 576 -> 10 coordinates per row), which A4
             * cannot survive: say so */
            double before = rq_rot_mixing(f.r1, f.n), after = rq_rot_mixing(r, f.n);
            if (o->progress && after < 0.25 * before)
                fprintf(stderr, "quantize: warning: --compose cancels most of the learned R1's mixing: each "
                        "coordinate spread over %.1f instead of %.1f (participation ratio); 4-bit activations "
                        "will lose their outliers' protection\n", after, before);
            rq_free(f.r1);
            f.r1 = r;
        }
        rq_free(q);
        if (s != RQ_OK) rq_free(r);
    }
    if (s != RQ_OK) {
        rq_rot_learned_free(&f);
        return s;
    }
    p->r1 = rq_rot_make(RQ_ROT_LEARNED, c->n_embd, o->compose != RQ_ROT_NONE ? 0 : f.block, 0);
    if (f.n_r2) p->r2 = rq_rot_make(RQ_ROT_LEARNED, c->head_dim, 0, 0);
    p->r1_dense = f.r1, p->r2_dense = f.r2, p->n_r2 = f.n_r2;
    p->learned_init = f.init1;
    const char *base = strrchr(o->rotation_file, '/');
    snprintf(p->rotation_file, sizeof p->rotation_file, "%s", base ? base + 1 : o->rotation_file);
    p->r3 = f.r3, p->r4 = f.r4; /* what it was trained with: the defaults of R3/R4 below */
    f.r1 = f.r2 = NULL;
    rq_rot_learned_free(&f);
    return RQ_OK;
}

rq_status rq_quant_plan_make(rq_model *m, const rq_quant_opts *o, rq_quant_plan *p) {
    RQ_TRY(rq_quant_opts_check(o));
    const rq_model_config *c = &m->cfg;
    memset(p, 0, sizeof *p);
    if (o->rotate == RQ_ROT_LEARNED) RQ_TRY(plan_learned(m, o, p, o->block ? o->block : o->group));
    rq_rotation file3 = p->r3, file4 = p->r4;
    p->float_weights = o->wbits == 16;
    p->calibrated = o->method == RQ_PTQ_GPTQ && !p->float_weights;
    /* rotations: gh/gsr take a block, the full-size kinds none */
    bool quantized_online = o->abits != RQ_BITS_OFF || o->kvbits != RQ_BITS_OFF;
    rq_rot_kind k1 = o->rotate;
    rq_rot_kind k2 = o->rotate2 >= 0 ? (rq_rot_kind)o->rotate2 : k1 != RQ_ROT_NONE ? RQ_ROT_HADAMARD : RQ_ROT_NONE;
    bool linear = o->r1_route == RQ_R1_LINEAR || (o->r1_route == RQ_R1_AUTO && c->post_norms);
    /* a learned R1 has no fast form for R3/R4: those the rotation was trained with (Hadamard
     * when it was trained without) */
    rq_rot_kind k1o = k1 != RQ_ROT_LEARNED ? k1 : file3.kind != RQ_ROT_NONE ? file3.kind : RQ_ROT_HADAMARD;
    rq_rot_kind k3 = o->rotate3 >= 0 ? (rq_rot_kind)o->rotate3 : quantized_online ? k1o : RQ_ROT_NONE;
    /* route (b): down's input rotation is R4, of R1's kind unless given */
    rq_rot_kind k4 = o->rotate4 >= 0 ? (rq_rot_kind)o->rotate4
                     : linear        ? (k1 != RQ_ROT_LEARNED ? k1 : file4.kind != RQ_ROT_NONE ? file4.kind : k1o)
                     : k1 == RQ_ROT_LEARNED && file4.kind != RQ_ROT_NONE && quantized_online ? file4.kind
                                                                                             : k3;
    rq_status bad = RQ_OK;
    if (linear && k1 == RQ_ROT_ORTHOGONAL)
        bad = rq_errorf(RQ_EUNSUPPORTED, "--r1-route linear%s: the input rotations run online and must be "
                        "hadamard, walsh, gh, gsr or learned, not orthogonal",
                        o->r1_route == RQ_R1_AUTO ? " (auto, on a model with post-norms)" : "");
    else if (c->post_norms && k1 == RQ_ROT_ORTHOGONAL)
        bad = rq_errorf(RQ_EUNSUPPORTED, "--rotate orthogonal: this model's post-norms need R1 online after them "
                        "(route (a)), which must be hadamard, walsh, gh or gsr (or use --r1-route linear with those)");
    else if (c->post_norms && !linear && k1 == RQ_ROT_LEARNED)
        bad = rq_errorf(RQ_EUNSUPPORTED, "--rotate learned: a learned R1 cannot be applied online after this model's "
                        "post-norms (route (a)); use --r1-route linear (a learned Ri) or a fixed kind");
    if (bad != RQ_OK) {
        rq_quant_plan_free(p);
        return bad;
    }
    int64_t block = o->block ? o->block : o->group, block2 = o->block2 ? o->block2 : c->head_dim;
    int64_t block3 = o->block3 ? o->block3 : c->head_dim;
    int64_t block4 = o->block4 ? o->block4 : rq_qpacked_group_for(o->group, c->n_ff);
    if (block4 == 0 && (k4 == RQ_ROT_GH || k4 == RQ_ROT_GSR)) {
        rq_quant_plan_free(p);
        return rq_errorf(RQ_EINVAL, "--block4: no power-of-two fraction of the group %lld divides the feed-forward "
                         "size %lld; give --block4", (long long)o->group, (long long)c->n_ff);
    }
#define BLOCKED(k, b) ((k) == RQ_ROT_GH || (k) == RQ_ROT_GSR ? (b) : 0)
    if (linear && k1 == RQ_ROT_LEARNED) {
        /* the file's matrix is Ri (dense, online); o's input takes the kind it started from
         * when that has a fast form (none otherwise) */
        rq_rot_kind ko = p->learned_init.kind;
        if (ko == RQ_ROT_ORTHOGONAL || ko == RQ_ROT_LEARNED) ko = RQ_ROT_NONE;
        int64_t qd = c->n_head * c->head_dim, bi = p->learned_init.block; /* rotlearn's Ro: the start's block and seed */
        p->ri = rq_rot_make(RQ_ROT_LEARNED, c->n_embd, p->r1.block, 0);
        p->r1 = rq_rot_make(RQ_ROT_NONE, c->n_embd, 0, o->seed);
        p->ro = rq_rot_make(ko, qd, BLOCKED(ko, bi > 0 && qd % bi == 0 ? bi : block), p->learned_init.seed + 5);
    } else if (linear) {
        /* the same kind and block on every linear's input (seeds apart from R1..R4's) */
        p->r1 = rq_rot_make(RQ_ROT_NONE, c->n_embd, 0, o->seed);
        p->ri = rq_rot_make(k1, c->n_embd, BLOCKED(k1, block), o->seed + 4);
        p->ro = rq_rot_make(k1, c->n_head * c->head_dim, BLOCKED(k1, block), o->seed + 5);
    } else if (k1 != RQ_ROT_LEARNED) {
        p->r1 = rq_rot_make(k1, c->n_embd, BLOCKED(k1, block), o->seed); /* Ri, Ro none (memset) */
    }
    if (p->r2.kind != RQ_ROT_LEARNED) p->r2 = rq_rot_make(k2, c->head_dim, BLOCKED(k2, block2), o->seed + 1);
    p->r3 = rq_rot_make(k3, c->head_dim, BLOCKED(k3, block3), o->seed + 2);
    p->r4 = rq_rot_make(k4, c->n_ff, BLOCKED(k4, block4), o->seed + 3);
#undef BLOCKED
    p->online = (rq_online_cfg){.act = {.bits = rq_bits_to_runtime(o->abits), .asym = o->asym, .clip = (float)o->aclip},
                                .kv_bits = rq_bits_to_runtime(o->kvbits),
                                .kv_group = o->kv_group ? o->kv_group : c->head_dim, .kv_clip = (float)o->kvclip,
                                .r3 = p->r3, .r4 = p->r4, .ri = p->ri, .ro = p->ro,
                                .ri_matrix = p->ri.kind == RQ_ROT_LEARNED ? p->r1_dense : NULL};
    if (c->post_norms) p->online.r1 = p->r1; /* route (a) (kind none when linear) */
    /* the run-time configuration checked against the model before any long work; it is
     * switched on by rq_quant_arm, after the calibration data is sampled */
    rq_status so = rq_model_set_online(m, &p->online);
    if (so != RQ_OK) {
        rq_quant_plan_free(p);
        return so;
    }
    rq_online_cfg off = {0};
    RQ_ASSERT(rq_model_set_online(m, &off) == RQ_OK);

    rq_ptq_opts *po = &p->ptq;
    *po = rq_ptq_opts_default();
    po->wbits = o->wbits;
    po->group = o->group;
    po->damp = o->damp;
    po->shrink = o->hshrink;
    po->clip_search = o->fit == RQ_FIT_LS || o->fit == RQ_FIT_CLIP;
    po->least_squares = o->fit == RQ_FIT_LS && o->wbits != 8; /* 8-bit zero points stay integers */
    po->quantizer = o->quantizer;
    po->half_zero = o->seq_grid;
    po->method = o->method;
    po->act_order = o->act_order < 0 ? o->method == RQ_PTQ_GPTQ : o->act_order;
    po->fit_importance = o->fit_importance < 0 ? o->method == RQ_PTQ_GPTQ : o->fit_importance;
    po->progress = o->progress;

    p->calib_n = o->calib_n ? o->calib_n : CALIB_N_DEFAULT;
    p->calib_len = o->calib_len ? o->calib_len : CALIB_LEN_DEFAULT;
    if (p->calib_len > c->n_ctx_train && c->n_ctx_train > 0) p->calib_len = c->n_ctx_train;
    return RQ_OK;
}

rq_status rq_quant_fold(rq_model *m, const rq_quant_plan *p) {
    if (p->r1.kind != RQ_ROT_LEARNED && p->r2.kind == RQ_ROT_LEARNED) { /* route (b), learned: R2 dense */
        rq_rotation none2 = rq_rot_make(RQ_ROT_NONE, m->cfg.head_dim, 0, 0);
        RQ_TRY(rq_fold_model(m, &p->r1, &none2));
        RQ_TRY(rq_fold_model_dense(m, NULL, p->r2_dense, p->n_r2));
    } else if (p->r1.kind != RQ_ROT_LEARNED) {
        RQ_TRY(rq_fold_model(m, &p->r1, &p->r2));
    } else {
        RQ_TRY(rq_fold_model_dense(m, p->r1_dense, p->r2_dense, p->n_r2));
        if (p->r2.kind != RQ_ROT_LEARNED) { /* a fixed R2 with the learned R1 */
            rq_rotation none = rq_rot_make(RQ_ROT_NONE, m->cfg.n_embd, 0, 0);
            RQ_TRY(rq_fold_model(m, &none, &p->r2));
        }
    }
    const float *ri_q = p->ri.kind == RQ_ROT_LEARNED ? p->r1_dense : NULL;
    RQ_TRY(rq_fold_inputs(m, &p->ri, ri_q, &p->ro));
    rq_online_cfg rot = {.r1 = p->online.r1, .ri = p->ri, .ro = p->ro, .ri_matrix = ri_q};
    if (rot.r1.kind == RQ_ROT_NONE && rot.ri.kind == RQ_ROT_NONE && rot.ro.kind == RQ_ROT_NONE) return RQ_OK;
    return rq_model_set_online(m, &rot);
}

rq_status rq_quant_calibrate(const rq_model *m, const rq_tokenizer *tok, const rq_quant_opts *o, rq_quant_plan *p,
                             int32_t **ids) {
    *ids = NULL;
    RQ_ASSERT(p->calibrated);
    rq_status s;
    if (o->calib_ids) {
        s = rq_quant_calib_ids_read(o->calib_ids, m->cfg.n_vocab, ids, &p->calib_n, &p->calib_len);
    } else if (!tok) {
        s = rq_errorf(RQ_EINVAL, "--calib %s: the model's tokenizer is needed", o->calib);
    } else if (!strcmp(o->calib, "generate")) {
        /* the rotated model computes the same function: sampling from it is sampling from
         * the float model */
        s = rq_calib_generate(m, tok, p->calib_n, p->calib_len, 1.0f, o->seed, o->progress, ids);
    } else {
        char *text;
        int64_t len;
        RQ_TRY(rq_file_read(o->calib, &text, &len));
        s = rq_calib_from_text(tok, text, len, p->calib_n, p->calib_len, o->seed, ids);
        rq_free(text);
    }
    if (s == RQ_OK && rq_mpi_size() > 1) /* the ranks calibrate on the same ids */
        s = rq_mpi_check_same(rq_hash64(*ids, p->calib_n * p->calib_len * (int64_t)sizeof(int32_t), 0),
                              "quantize: the calibration ids");
    if (s == RQ_OK && o->calib_save && rq_mpi_rank() == 0) /* files: rank 0 */
        s = rq_quant_calib_ids_write(o->calib_save, *ids, p->calib_n, p->calib_len);
    if (s != RQ_OK) {
        rq_free(*ids);
        *ids = NULL;
    }
    return s;
}

rq_status rq_quant_arm(rq_model *m, const rq_quant_plan *p) {
    RQ_TRY(rq_fold_r4(m, &p->r4));
    return rq_model_set_online(m, &p->online);
}

rq_status rq_quant_ptq(rq_model *m, const rq_quant_plan *p, const int32_t *ids, rq_ptq_result *res) {
    memset(res, 0, sizeof *res);
    if (p->float_weights) return RQ_OK;
    return rq_ptq_run(m, &p->ptq, ids, p->calib_n, p->calib_len, res);
}

void rq_quant_qinfo(const rq_model *m, const rq_quant_opts *o, const rq_quant_plan *p, rq_qinfo *qi) {
    memset(qi, 0, sizeof *qi);
    bool w16 = p->float_weights;
    qi->wbits = (uint32_t)o->wbits;
    qi->group = (uint32_t)o->group;
    qi->quantizer = o->quantizer;
    snprintf(qi->method, sizeof qi->method, "%s", w16 ? "none" : method_name(o->method));
    qi->r1 = p->r1;
    qi->r2 = p->r2;
    qi->r3 = p->r3;
    qi->r4 = p->r4;
    qi->r1_online = p->online.r1.kind != RQ_ROT_NONE;
    qi->ri = p->ri;
    qi->ro = p->ro;
    if (p->r1.kind == RQ_ROT_LEARNED || p->ri.kind == RQ_ROT_LEARNED) {
        snprintf(qi->rotation_file, sizeof qi->rotation_file, "%s", p->rotation_file);
        rq_rot_describe(&p->learned_init, qi->rotation_init, sizeof qi->rotation_init);
        if (p->compose.kind != RQ_ROT_NONE) rq_rot_describe(&p->compose, qi->rotation_compose, sizeof qi->rotation_compose);
        if (p->r1.kind == RQ_ROT_LEARNED) qi->r1_matrix = p->r1_dense;
        else qi->ri_matrix = p->r1_dense;
        qi->r2_matrix = p->r2_dense, qi->n_r2 = p->n_r2;
    }
    qi->abits = (uint32_t)o->abits;
    qi->asym = o->asym;
    qi->aclip = (float)o->aclip;
    qi->kvbits = (uint32_t)o->kvbits;
    qi->kv_group = o->kvbits != RQ_BITS_OFF ? (uint32_t)m->online.cfg.kv_group : 0;
    qi->kv_clip = (float)o->kvclip;
    snprintf(qi->embd_type, sizeof qi->embd_type, "%s", o->embd_type);
    const char *src = o->calib_ids ? o->calib_ids : o->calib, *base = strrchr(src, '/');
    snprintf(qi->calib, sizeof qi->calib, "%s", p->calibrated ? (base ? base + 1 : src) : "");
    qi->calib_n = p->calibrated ? (uint32_t)p->calib_n : 0;
    qi->calib_len = p->calibrated ? (uint32_t)p->calib_len : 0;
    qi->seed = o->seed;
    qi->act_order = p->ptq.act_order;
    qi->fit_importance = p->ptq.fit_importance;
    snprintf(qi->weight_fit, sizeof qi->weight_fit, "%s",
             w16                                  ? ""
             : o->quantizer == RQ_QPARAM_LUT      ? "lloyd"
             : p->ptq.least_squares               ? "ls"
             : p->ptq.clip_search                 ? "clip"
                                                  : "minmax");
    qi->damp = (float)o->damp;
}

rq_status rq_quant_prepare(const char *in, const rq_quant_opts *o, const rq_quant_prep_opts *po, rq_quant_prep *pr) {
    memset(pr, 0, sizeof *pr);
    rq_qinfo qi0;
    rq_status s = rq_model_open(in, &pr->g); /* a GGUF file or a Hugging Face checkpoint */
    if (s == RQ_OK) s = rq_qinfo_read(pr->g, &qi0);
    if (s == RQ_OK && qi0.present) s = rq_errorf(RQ_EINVAL, "%s %s", in, po->refuse);
    if (s == RQ_OK && rq_mpi_size() > 1) {
        char what[600];
        snprintf(what, sizeof what, "%s: the model %s", po->who, in);
        s = rq_mpi_check_same(rq_gguf_hash(pr->g), what);
    }
    if (s == RQ_OK) s = rq_model_load(pr->g, &pr->m);
    if (s == RQ_OK) s = rq_quant_plan_make(pr->m, o, &pr->plan);
    if (s == RQ_OK && po->check) s = po->check(po->user, pr->m, &pr->plan);
    /* the tokenizer: only to make calibration data */
    if (s == RQ_OK && pr->plan.calibrated && !o->calib_ids) s = rq_tokenizer_load(pr->g, &pr->tok);
    RQ_TRY(s);
    rq_model *m = pr->m;
    rq_quant_plan *p = &pr->plan;
    if (o->progress && po->describe) po->describe(po->user, in, m, p);
    double t0 = rq_time_now();
    /* without R1 an export needs nothing fused: the norms stay separate, as llama.cpp's own
     * files have them (fused, their scales would share a block's scale with unrelated columns) */
    RQ_TRY(po->keep_norms && p->r1.kind == RQ_ROT_NONE ? rq_fold_r2(m, &p->r2) : rq_quant_fold(m, p));
    pr->t_fold = rq_time_now() - t0;
    if (p->calibrated) {
        t0 = rq_time_now();
        RQ_TRY(rq_quant_calibrate(m, pr->tok, o, p, &pr->ids));
        pr->t_calib = rq_time_now() - t0;
    }
    if (po->calib_only) return RQ_OK;
    /* R4 folded into down, then the quantizers and online rotations switched on: GPTQ
     * calibrates with them in place (each block sees the outputs of the fully quantized
     * blocks before it; the calibration data above was sampled from the float model) */
    t0 = rq_time_now();
    RQ_TRY(rq_quant_arm(m, p));
    pr->t_arm = rq_time_now() - t0;
    return RQ_OK;
}

void rq_quant_prep_free(rq_quant_prep *pr) {
    rq_ptq_result_free(&pr->res);
    rq_quant_plan_free(&pr->plan);
    rq_free(pr->ids);
    rq_tokenizer_free(pr->tok);
    rq_model_free(pr->m);
    rq_gguf_close(pr->g);
    memset(pr, 0, sizeof *pr);
}

/* quantize's progress line (rq_quant_prep_opts.describe) */
static void quant_describe(void *user, const char *in, const rq_model *m, const rq_quant_plan *p) {
    const rq_quant_opts *o = user;
    const rq_model_config *c = &m->cfg;
    char d1[96], d2[96], don[480];
    bool w16 = p->float_weights;
    fprintf(stderr, "quantize: %s: %lld layers, hidden %lld; R1 %s, R2 %s; W%d g%lld %s %s%s%s; %s\n", in,
            (long long)c->n_layer, (long long)c->n_embd, rq_rot_describe(&p->r1, d1, sizeof d1),
            rq_rot_describe(&p->r2, d2, sizeof d2), o->wbits, (long long)o->group, w16 ? "-" : method_name(o->method),
            w16 ? "float" : quantizer_name(o->quantizer), p->ptq.act_order ? " act-order" : "",
            p->ptq.fit_importance ? " fit-importance" : "", rq_online_describe(&p->online, don, sizeof don));
}

rq_status rq_quant_run(const char *in, const char *out, const rq_quant_opts *o, rq_quant_result *r) {
    memset(r, 0, sizeof *r);
    RQ_TRY(rq_quant_opts_check(o));
    if (!out && !o->calib_save) return rq_errorf(RQ_EINVAL, "quantize: no output file (nor --calib-save)");
    if (!out && o->loss_report) return rq_errorf(RQ_EINVAL, "--loss-report: needs an output model (-o)");
    double t_start = rq_time_now(), t0;
    rq_quant_prep pr;
    rq_quant_prep_opts po = {.who = "quantize", .refuse = "is already quantized by rotquant", .calib_only = !out,
                             .describe = quant_describe, .user = (void *)o};
    rq_status s = rq_quant_prepare(in, o, &po, &pr);
    if (s != RQ_OK) goto done;
    r->t_fold = pr.t_fold + pr.t_arm, r->t_calib = pr.t_calib;
    if (pr.plan.calibrated) {
        r->calib_n = pr.plan.calib_n, r->calib_len = pr.plan.calib_len;
        if (o->calib_save && o->progress)
            fprintf(stderr, "quantize: wrote %lld calibration sequences of %lld tokens to %s (%.1fs)\n",
                    (long long)pr.plan.calib_n, (long long)pr.plan.calib_len, o->calib_save, r->t_calib);
        if (!out) goto done;
    }
    if ((s = rq_quant_ptq(pr.m, &pr.plan, pr.ids, &pr.res)) != RQ_OK) goto done;
    r->t_forward = pr.res.t_forward, r->t_hessian = pr.res.t_hessian, r->t_quant = pr.res.t_quant;
    rq_quant_qinfo(pr.m, o, &pr.plan, &r->qi);
    t0 = rq_time_now();
    if (rq_mpi_rank() == 0 && (s = rq_qmodel_write(pr.m, pr.g, &pr.res, &r->qi, out)) != RQ_OK) goto done; /* files: rank 0 */
    if (o->loss_report && rq_mpi_rank() == 0) {
        char desc[640], comment[800];
        snprintf(comment, sizeof comment, "rotquant quantize %s -> %s: %s", in, out,
                 rq_qinfo_describe(&r->qi, desc, sizeof desc));
        if ((s = rq_quant_loss_report_write(o->loss_report, &pr.res, comment)) != RQ_OK) goto done;
    }
    r->t_write = rq_time_now() - t0;
done:
    r->t_total = rq_time_now() - t_start;
    rq_quant_prep_free(&pr);
    r->qi.r1_matrix = r->qi.r2_matrix = NULL; /* they were the plan's */
    return s;
}

rq_status rq_quant_loss_report_write(const char *path, const rq_ptq_result *res, const char *comment) {
    rq_atomic_file af;
    RQ_TRY(rq_atomic_file_open(&af, path));
    rq_status s = RQ_OK;
    if (comment) { /* one comment line per line of the text */
        for (const char *c = comment; *c && s == RQ_OK;) {
            int n = (int)strcspn(c, "\n");
            s = rq_atomic_file_printf(&af, "# %.*s\n", n, c);
            c += n + (c[n] == '\n');
        }
    }
    if (s == RQ_OK) s = rq_atomic_file_printf(&af, "tensor\tlayer\tn_out\tn_in\tgroup\tloss\n");
    for (int64_t i = 0; i < res->n_lin && s == RQ_OK; i++) {
        const rq_qlinear *q = &res->lin[i];
        long long layer = -1;
        if (sscanf(q->name, "blk.%lld.", &layer) != 1) layer = -1;
        s = rq_atomic_file_printf(&af, "%s\t%lld\t%lld\t%lld\t%lld\t%.9g\n", q->name, layer, (long long)q->n_out,
                                  (long long)q->n_in, (long long)q->group, q->loss);
    }
    if (s != RQ_OK) {
        rq_atomic_file_abort(&af);
        return s;
    }
    return rq_atomic_file_commit(&af);
}

rq_status rq_quant_calib_ids_write(const char *path, const int32_t *ids, int64_t n_seq, int64_t len) {
    rq_atomic_file af;
    RQ_TRY(rq_atomic_file_open(&af, path));
    rq_status s = RQ_OK;
    for (int64_t q = 0; q < n_seq && s == RQ_OK; q++)
        for (int64_t t = 0; t < len && s == RQ_OK; t++)
            s = rq_atomic_file_printf(&af, "%d%c", ids[q * len + t], t + 1 < len ? ' ' : '\n');
    if (s != RQ_OK) {
        rq_atomic_file_abort(&af);
        return s;
    }
    return rq_atomic_file_commit(&af);
}

rq_status rq_quant_calib_ids_read(const char *path, int64_t n_vocab, int32_t **out, int64_t *n_seq, int64_t *len) {
    *out = NULL;
    char *text;
    int64_t n;
    RQ_TRY(rq_file_read(path, &text, &n));
    /* at most one id per two characters (digit and separator), plus the last */
    int32_t *ids = rq_alloc((n / 2 + 1) * (int64_t)sizeof(int32_t));
    if (!ids) {
        rq_free(text);
        return RQ_ENOMEM;
    }
    int64_t count = 0, lines = 0, per_line = -1, in_line = 0;
    const char *p = text, *end = text + n;
    rq_status s = RQ_OK;
    while (p < end && s == RQ_OK) {
        if (*p == '\n') {
            if (in_line) {
                if (per_line >= 0 && in_line != per_line)
                    s = rq_errorf(RQ_EINVAL, "%s:%lld: %lld ids, earlier lines have %lld", path, (long long)lines + 1,
                                  (long long)in_line, (long long)per_line);
                per_line = in_line;
                lines++;
                in_line = 0;
            }
            p++;
        } else if (*p == ' ' || *p == '\t' || *p == '\r') {
            p++;
        } else if (*p >= '0' && *p <= '9') {
            int64_t v = 0; /* stops growing past n_vocab: no overflow */
            while (p < end && *p >= '0' && *p <= '9' && v <= n_vocab) v = v * 10 + (*p++ - '0');
            if (v >= n_vocab)
                s = rq_errorf(RQ_EINVAL, "%s:%lld: token id out of range [0, %lld)", path, (long long)lines + 1,
                              (long long)n_vocab);
            else
                ids[count++] = (int32_t)v, in_line++;
        } else {
            s = rq_errorf(RQ_EINVAL, "%s:%lld: unexpected character '%c' (token ids expected)", path,
                          (long long)lines + 1, *p);
        }
    }
    if (s == RQ_OK && in_line) {
        if (per_line >= 0 && in_line != per_line)
            s = rq_errorf(RQ_EINVAL, "%s: last line has %lld ids, earlier lines %lld", path, (long long)in_line,
                          (long long)per_line);
        per_line = in_line;
        lines++;
    }
    if (s == RQ_OK && (lines == 0 || per_line < 2))
        s = rq_errorf(RQ_EINVAL, "%s: no calibration sequences of at least 2 ids", path);
    rq_free(text);
    if (s != RQ_OK) {
        rq_free(ids);
        return s;
    }
    *out = ids;
    *n_seq = lines;
    *len = per_line;
    return RQ_OK;
}

rq_status rq_quant_train_windows(const rq_model *m, const rq_tokenizer *tok, const int32_t *ids, int64_t n_ids,
                                 int64_t T, int64_t gen_seqs, float temp, const rq_gguf *g, double gen_chat,
                                 uint64_t seed, bool progress, const char *data_save, const char *who, int32_t **win,
                                 int64_t *n_win) {
    *win = NULL, *n_win = 0;
    if (!ids) {
        rq_calib_chat chat = {0};
        if (gen_chat > 0) {
            rq_chat_template ct;
            RQ_TRY(rq_chat_template_from_gguf(g, &ct));
            rq_status s = rq_calib_chat_make(&ct, tok, &chat);
            rq_chat_template_clear(&ct);
            RQ_TRY(s);
        }
        rq_status s = rq_calib_generate_mixed(m, tok, gen_seqs, T, temp, seed, &chat, gen_chat, progress, win);
        rq_calib_chat_clear(&chat);
        RQ_TRY(s);
        *n_win = gen_seqs;
        s = data_save && rq_mpi_rank() == 0 ? rq_quant_calib_ids_write(data_save, *win, gen_seqs, T) : RQ_OK;
        if (s != RQ_OK) rq_free(*win), *win = NULL, *n_win = 0;
        return s;
    }
    int64_t n = n_ids / T;
    for (int64_t i = 0; i < n * T; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.n_vocab)
            return rq_errorf(RQ_EINVAL, "%s: token id %d at index %lld out of range", who, ids[i], (long long)i);
    if (n == 0) return RQ_OK;
    if (!(*win = rq_alloc(n * T * (int64_t)sizeof(int32_t)))) return RQ_ENOMEM;
    memcpy(*win, ids, (size_t)(n * T) * sizeof(int32_t));
    *n_win = n;
    return RQ_OK;
}
