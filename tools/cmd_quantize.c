/* rotquant quantize: fold a rotation into the float model, quantize its linear layers
 * (RTN or GPTQ, uniform or LUT) with the run-time quantizers (activations, KV cache) and
 * online rotations (R3, R4) in place during calibration, write a rotquant GGUF. */
#include "cli.h"

#include "base/pool.h"
#include "base/timer.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "model/model.h"
#include "model/qinfo.h"
#include "quant/calib.h"
#include "quant/ptq.h"
#include "quant/qmodel.h"
#include "model/fold.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <string.h>

/* Token ids written by --calib-save: one sequence per line, all of the same length. */
static bool read_calib_ids(const char *path, int64_t n_vocab, int32_t **out, int64_t *n_seq, int64_t *len) {
    char *text;
    int64_t n;
    if (!cli_read_file(path, &text, &n)) return false;
    int64_t cap = n / 2 + 1, count = 0, lines = 0, per_line = -1, in_line = 0;
    int32_t *ids = rq_xalloc(cap * (int64_t)sizeof(int32_t));
    const char *p = text, *end = text + n;
    bool ok = true;
    while (p < end && ok) {
        if (*p == '\n') {
            if (in_line) {
                if (per_line >= 0 && in_line != per_line) ok = !cli_fail("%s:%lld: %lld ids, earlier lines have %lld", path, (long long)lines + 1, (long long)in_line, (long long)per_line);
                per_line = in_line;
                lines++;
                in_line = 0;
            }
            p++;
        } else if (*p == ' ' || *p == '\t' || *p == '\r') {
            p++;
        } else if (*p >= '0' && *p <= '9') {
            int64_t v = 0;
            while (p < end && *p >= '0' && *p <= '9' && v <= n_vocab) v = v * 10 + (*p++ - '0');
            if (v >= n_vocab) ok = !cli_fail("%s:%lld: token id out of range [0, %lld)", path, (long long)lines + 1, (long long)n_vocab);
            else ids[count++] = (int32_t)v, in_line++;
        } else {
            ok = !cli_fail("%s:%lld: unexpected character '%c' (token ids expected)", path, (long long)lines + 1, *p);
        }
    }
    if (ok && in_line) {
        if (per_line >= 0 && in_line != per_line) ok = !cli_fail("%s: last line has %lld ids, earlier lines %lld", path, (long long)in_line, (long long)per_line);
        per_line = in_line;
        lines++;
    }
    if (ok && (lines == 0 || per_line < 2)) ok = !cli_fail("%s: no calibration sequences of at least 2 ids", path);
    rq_free(text);
    if (!ok) {
        rq_free(ids);
        return false;
    }
    *out = ids;
    *n_seq = lines;
    *len = per_line;
    return true;
}

static void usage(void) {
    printf("usage: rotquant quantize -m IN.gguf -o OUT.gguf [options]\n"
           "  --rotate KIND      none|hadamard|walsh|gh|gsr|orthogonal  R1, the residual rotation (default gsr)\n"
           "  --block B          block size of gh/gsr (default: the group size)\n"
           "  --rotate2 KIND     R2, per attention head (v/o pair; default none)\n"
           "  --block2 B         block size of R2 when gh/gsr (default: head_dim)\n"
           "  --wbits B          2, 3, 4, 8, or 16 = keep float weights (only A/KV quantizers and\n"
           "                     rotations; default 2)\n"
           "  --abits A          per-token quantizer of every linear's input: 4, 8 or 16 = off (default 16)\n"
           "  --aclip C          activation clip ratio in (0, 1] (default 1.0; QuaRot uses 0.9)\n"
           "  --asym             asymmetric activation quantizer (default symmetric)\n"
           "  --kvbits K         KV cache: 4 (packed, asymmetric) or 16 = float (default 16)\n"
           "  --kv-group G       KV channels per scale/zero (default head_dim: one per head per token)\n"
           "  --kvclip C         KV clip ratio in (0, 1] (default 1.0)\n"
           "  --rotate3 KIND     R3, online on q and k after RoPE: none|hadamard|walsh|gh|gsr (default:\n"
           "                     the --rotate kind when --abits or --kvbits quantize, else none)\n"
           "  --block3 B         block size of R3 when gh/gsr (default: head_dim)\n"
           "  --rotate4 KIND     R4, online on down's input, folded into down (default as --rotate3)\n"
           "  --block4 B         block size of R4 when gh/gsr (default: the group size, halved until it\n"
           "                     divides the feed-forward size)\n"
           "  --group G          weights per group along the input (default 64)\n"
           "  --quantizer Q      uniform|lut (lut: 4 Lloyd-Max levels per group, wbits 2)\n"
           "  --method M         rtn|gptq (default gptq)\n"
           "  --act-order        GPTQ: columns by decreasing Hessian diagonal, groups kept contiguous\n"
           "                     (default with gptq; --no-act-order: columns in order)\n"
           "  --fit F            uniform quantizer's group fit: ls (default: clip ratios 1.0..0.5, each\n"
           "                     refined by weighted least squares for scale and zero point), clip (the\n"
           "                     clip ratios alone, integer zero points), minmax (the group's range)\n"
           "  --clip-search      the same as --fit clip\n"
           "  --fit-importance   GPTQ: fit each group's levels/range weighting weights by H_ii (default\n"
           "                     with gptq; --no-fit-importance: plain squared error)\n"
           "  --damp L           GPTQ dampening, relative to mean diag H (default 0.01)\n"
           "  --calib SRC        generate (the model samples its own text; default) or a text FILE\n"
           "  --calib-n N        calibration sequences (default 128)\n"
           "  --calib-len L      tokens per sequence (default 2048, at most the model's context)\n"
           "  --calib-save FILE  also write the calibration token ids as text (one sequence per line);\n"
           "                     without -o, only generate the calibration data\n"
           "  --calib-ids FILE   read calibration token ids written by --calib-save (reuse across runs)\n"
           "  --embd-type T      token embedding / lm_head storage: q8_0 (default), f16, f32\n"
           "  --seed S           seeds the rotation signs, the calibration data (default 0)\n"
           "  -t N               threads (default: all cores)\n");
}


int cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *calib = "generate", *calib_save = NULL, *calib_ids = NULL, *embd = "q8_0";
    const char *rot_name = "gsr", *rot2_name = "none", *quant_name = "uniform", *method = "gptq";
    const char *rot3_name = NULL, *rot4_name = NULL;
    int64_t block = 0, block2 = 0, wbits = 2, group = 64, calib_n = 128, calib_len = 2048, seed = 0, threads = 0;
    int64_t block3 = 0, block4 = 0, abits = 16, kvbits = 16, kv_group = 0;
    double damp = 0.01, aclip = 1.0, kvclip = 1.0;
    const char *fit_name = "ls";
    bool asym = false;
    int act_order = -1; /* -1: the default, on with gptq */
    int fit_imp = -1; /* -1: the default, on with gptq */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VAL() (v ? (i++, v) : NULL)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        else if (!strcmp(a, "-m")) { if (!(in = VAL())) return cli_fail("-m needs a file"); }
        else if (!strcmp(a, "-o")) { if (!(out = VAL())) return cli_fail("-o needs a file"); }
        else if (!strcmp(a, "--rotate")) { if (!(rot_name = VAL())) return cli_fail("--rotate needs a kind"); }
        else if (!strcmp(a, "--rotate2")) { if (!(rot2_name = VAL())) return cli_fail("--rotate2 needs a kind"); }
        else if (!strcmp(a, "--quantizer")) { if (!(quant_name = VAL())) return cli_fail("--quantizer needs a value"); }
        else if (!strcmp(a, "--method")) { if (!(method = VAL())) return cli_fail("--method needs a value"); }
        else if (!strcmp(a, "--calib")) { if (!(calib = VAL())) return cli_fail("--calib needs a value"); }
        else if (!strcmp(a, "--calib-ids")) { if (!(calib_ids = VAL())) return cli_fail("--calib-ids needs a file"); }
        else if (!strcmp(a, "--calib-save")) { if (!(calib_save = VAL())) return cli_fail("--calib-save needs a file"); }
        else if (!strcmp(a, "--embd-type")) { if (!(embd = VAL())) return cli_fail("--embd-type needs a value"); }
        else if (!strcmp(a, "--block")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &block)) return 1; }
        else if (!strcmp(a, "--block2")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &block2)) return 1; }
        else if (!strcmp(a, "--rotate3")) { if (!(rot3_name = VAL())) return cli_fail("--rotate3 needs a kind"); }
        else if (!strcmp(a, "--rotate4")) { if (!(rot4_name = VAL())) return cli_fail("--rotate4 needs a kind"); }
        else if (!strcmp(a, "--block3")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &block3)) return 1; }
        else if (!strcmp(a, "--block4")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &block4)) return 1; }
        else if (!strcmp(a, "--abits")) { if (!cli_parse_int(a, VAL(), 2, 16, &abits)) return 1; }
        else if (!strcmp(a, "--kvbits")) { if (!cli_parse_int(a, VAL(), 2, 16, &kvbits)) return 1; }
        else if (!strcmp(a, "--kv-group")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &kv_group)) return 1; }
        else if (!strcmp(a, "--aclip")) { if (!cli_parse_float(a, VAL(), 1e-6, 1, &aclip)) return 1; }
        else if (!strcmp(a, "--kvclip")) { if (!cli_parse_float(a, VAL(), 1e-6, 1, &kvclip)) return 1; }
        else if (!strcmp(a, "--asym")) asym = true;
        else if (!strcmp(a, "--wbits")) { if (!cli_parse_int(a, VAL(), 2, 16, &wbits)) return 1; }
        else if (!strcmp(a, "--group")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &group)) return 1; }
        else if (!strcmp(a, "--calib-n")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &calib_n)) return 1; }
        else if (!strcmp(a, "--calib-len")) { if (!cli_parse_int(a, VAL(), 2, 1 << 20, &calib_len)) return 1; }
        else if (!strcmp(a, "--seed")) { if (!cli_parse_int(a, VAL(), 0, INT64_MAX, &seed)) return 1; }
        else if (!strcmp(a, "-t")) { if (!cli_parse_int(a, VAL(), 1, 1024, &threads)) return 1; }
        else if (!strcmp(a, "--damp")) { if (!cli_parse_float(a, VAL(), 0, 10, &damp)) return 1; }
        else if (!strcmp(a, "--act-order")) act_order = 1;
        else if (!strcmp(a, "--no-act-order")) act_order = 0;
        else if (!strcmp(a, "--fit-importance")) fit_imp = 1;
        else if (!strcmp(a, "--no-fit-importance")) fit_imp = 0;
        else if (!strcmp(a, "--fit")) { if (!(fit_name = VAL())) return cli_fail("--fit needs ls, clip or minmax"); }
        else if (!strcmp(a, "--clip-search")) fit_name = "clip";
        else return cli_fail("quantize: unknown option '%s' (see rotquant quantize --help)", a);
#undef VAL
    }
    if (!in || (!out && !calib_save))
        return cli_fail("quantize: -m IN.gguf and -o OUT.gguf are required (or --calib-save FILE alone: only "
                        "generate calibration data)");
    if (!rq_qpacked_bits_ok((int)wbits) && wbits != 16)
        return cli_fail("--wbits: %lld is not one of 2, 3, 4, 8, 16", (long long)wbits);
    if (abits != 4 && abits != 8 && abits != 16) return cli_fail("--abits: %lld is not one of 4, 8, 16", (long long)abits);
    if (kvbits != 4 && kvbits != 16) return cli_fail("--kvbits: %lld is not 4 or 16", (long long)kvbits);
    if (kvbits == 16 && (kv_group || kvclip != 1.0)) return cli_fail("--kv-group/--kvclip need --kvbits 4");
    if (abits == 16 && (asym || aclip != 1.0)) return cli_fail("--asym/--aclip need --abits 4 or 8");
    bool w16 = wbits == 16;
    rq_ptq_opts po = rq_ptq_opts_default();
    po.wbits = (int)wbits;
    po.group = group;
    po.damp = damp;
    if (!strcmp(fit_name, "ls")) po.clip_search = po.least_squares = true;
    else if (!strcmp(fit_name, "clip")) po.clip_search = true;
    else if (strcmp(fit_name, "minmax")) return cli_fail("--fit: '%s' is not ls, clip or minmax", fit_name);
    po.progress = true;
    if (!strcmp(quant_name, "uniform")) po.quantizer = RQ_QPARAM_UNIFORM;
    else if (!strcmp(quant_name, "lut")) po.quantizer = RQ_QPARAM_LUT;
    else return cli_fail("--quantizer: '%s' is not uniform or lut", quant_name);
    if (!strcmp(method, "gptq")) po.method = RQ_PTQ_GPTQ;
    else if (!strcmp(method, "rtn")) po.method = RQ_PTQ_RTN;
    else return cli_fail("--method: '%s' is not rtn or gptq", method);
    if (fit_imp == 1 && po.method != RQ_PTQ_GPTQ) return cli_fail("--fit-importance needs --method gptq (the weights come from its Hessian)");
    if (fit_imp < 0) fit_imp = po.method == RQ_PTQ_GPTQ;
    if (act_order == 1 && po.method != RQ_PTQ_GPTQ) return cli_fail("--act-order needs --method gptq");
    if (act_order < 0) act_order = po.method == RQ_PTQ_GPTQ;
    po.act_order = act_order;
    po.fit_importance = fit_imp;
    if (po.least_squares && wbits == 8) po.least_squares = false; /* 8-bit zero points stay integers */
    if (strcmp(embd, "q8_0") && strcmp(embd, "f16") && strcmp(embd, "f32"))
        return cli_fail("--embd-type: '%s' is not q8_0, f16 or f32", embd);
    rq_rot_kind k1, k2, k3, k4;
    if (rq_rot_kind_parse(rot_name, &k1) != RQ_OK || rq_rot_kind_parse(rot2_name, &k2) != RQ_OK) return cli_fail_status();
    /* R3/R4 default: the R1 kind when activations or the KV cache are quantized */
    const char *dflt34 = abits < 16 || kvbits < 16 ? rot_name : "none";
    if (!rot4_name) rot4_name = rot3_name ? rot3_name : dflt34;
    if (!rot3_name) rot3_name = dflt34;
    if (rq_rot_kind_parse(rot3_name, &k3) != RQ_OK || rq_rot_kind_parse(rot4_name, &k4) != RQ_OK) return cli_fail_status();
    const char *outputs[] = {out, calib_save};
    if (!cli_check_outputs(outputs, 2)) return 1;
    cli_threads_set(threads);

    double t_start = rq_time_now();
    rq_gguf *g;
    if (rq_gguf_open(in, &g) != RQ_OK) return cli_fail_status();
    rq_qinfo qi0;
    if (rq_qinfo_read(g, &qi0) != RQ_OK) { rq_gguf_close(g); return cli_fail_status(); }
    if (qi0.present) { rq_gguf_close(g); return cli_fail("%s is already quantized by rotquant", in); }
    rq_model *m = NULL;
    rq_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    rq_ptq_result res = {0};
    int rc = 1;
    if (rq_model_load(g, &m) != RQ_OK || rq_tokenizer_load(g, &tok) != RQ_OK) { rc = cli_fail_status(); goto done; }
    const rq_model_config *c = &m->cfg;
    if (block == 0) block = group;
    if (block2 == 0) block2 = c->head_dim;
    rq_rotation r1 = rq_rot_make(k1, c->n_embd, (k1 == RQ_ROT_GH || k1 == RQ_ROT_GSR) ? block : 0, (uint64_t)seed);
    rq_rotation r2 = rq_rot_make(k2, c->head_dim, (k2 == RQ_ROT_GH || k2 == RQ_ROT_GSR) ? block2 : 0, (uint64_t)seed + 1);
    if (block3 == 0) block3 = c->head_dim;
    if (block4 == 0) block4 = rq_qpacked_group_for(group, c->n_ff);
    if (block4 == 0) {
        rc = cli_fail("--block4: no power-of-two fraction of the group %lld divides the feed-forward size %lld; give "
                      "--block4", (long long)group, (long long)c->n_ff);
        goto done;
    }
    rq_rotation r3 = rq_rot_make(k3, c->head_dim, (k3 == RQ_ROT_GH || k3 == RQ_ROT_GSR) ? block3 : 0, (uint64_t)seed + 2);
    rq_rotation r4 = rq_rot_make(k4, c->n_ff, (k4 == RQ_ROT_GH || k4 == RQ_ROT_GSR) ? block4 : 0, (uint64_t)seed + 3);
    rq_online_cfg oc = {.act = {.bits = abits < 16 ? (int)abits : 0, .asym = asym, .clip = (float)aclip},
                        .kv_bits = kvbits < 16 ? (int)kvbits : 0, .kv_group = kv_group ? kv_group : c->head_dim,
                        .kv_clip = (float)kvclip, .r3 = r3, .r4 = r4};
    {
        /* check the run-time configuration before any long work (e.g. a block that does
         * not divide head_dim); it is switched on after the calibration data is sampled */
        if (rq_model_set_online(m, &oc) != RQ_OK) { rc = cli_fail_status(); goto done; }
        rq_online_cfg off = {0};
        RQ_ASSERT(rq_model_set_online(m, &off) == RQ_OK);
    }
    char d1[96], d2[96], don[320];
    fprintf(stderr, "quantize: %s: %lld layers, hidden %lld; R1 %s, R2 %s; W%lld g%lld %s %s%s%s; %s\n", in,
            (long long)c->n_layer, (long long)c->n_embd, rq_rot_describe(&r1, d1, sizeof d1),
            rq_rot_describe(&r2, d2, sizeof d2), (long long)wbits, (long long)group, w16 ? "-" : method,
            w16 ? "float" : quant_name, act_order ? " act-order" : "", fit_imp ? " fit-importance" : "",
            rq_online_describe(&oc, don, sizeof don));
    double t0 = rq_time_now();
    if (rq_fold_model(m, &r1, &r2) != RQ_OK) { rc = cli_fail_status(); goto done; }
    double t_fold = rq_time_now() - t0;

    double t_calib = 0;
    if (w16 && calib_save) {
        rc = cli_fail("--calib-save: --wbits 16 uses no calibration data");
        goto done;
    }
    if (po.method == RQ_PTQ_GPTQ && !w16) {
        if (calib_len > c->n_ctx_train && c->n_ctx_train > 0) calib_len = c->n_ctx_train;
        if (calib_ids && (calib_n != 128 || calib_len != 2048)) {
            rc = cli_fail("--calib-ids sets the sequence count and length itself");
            goto done;
        }
        t0 = rq_time_now();
        rq_status s;
        if (calib_ids) {
            s = RQ_OK;
            if (!read_calib_ids(calib_ids, c->n_vocab, &ids, &calib_n, &calib_len)) goto done;
            calib = calib_ids;
        } else if (!strcmp(calib, "generate")) {
            /* the rotated model computes the same function: sampling from it is sampling
             * from the float model */
            s = rq_calib_generate(m, tok, calib_n, calib_len, 1.0f, (uint64_t)seed, true, &ids);
        } else {
            char *text;
            int64_t len;
            if (!cli_read_file(calib, &text, &len)) goto done;
            s = rq_calib_from_text(tok, text, len, calib_n, calib_len, (uint64_t)seed, &ids);
            rq_free(text);
        }
        if (s != RQ_OK) { rc = cli_fail_status(); goto done; }
        t_calib = rq_time_now() - t0;
        if (calib_save) {
            rq_atomic_file af;
            s = rq_atomic_file_open(&af, calib_save);
            for (int64_t q = 0; q < calib_n && s == RQ_OK; q++)
                for (int64_t t = 0; t < calib_len && s == RQ_OK; t++)
                    s = rq_atomic_file_printf(&af, "%d%c", ids[q * calib_len + t], t + 1 < calib_len ? ' ' : '\n');
            if (s == RQ_OK) s = rq_atomic_file_commit(&af);
            else rq_atomic_file_abort(&af);
            if (s != RQ_OK) { rc = cli_fail_status(); goto done; }
            fprintf(stderr, "quantize: wrote %lld calibration sequences of %lld tokens to %s (%.1fs)\n",
                    (long long)calib_n, (long long)calib_len, calib_save, t_calib);
        }
        if (!out) {
            rc = 0;
            goto done;
        }
    }
    /* R4 folded into down, then the quantizers and online rotations switched on: GPTQ
     * calibrates with them in place (each block sees the outputs of the fully quantized
     * blocks before it; the calibration data above was sampled from the float model) */
    t0 = rq_time_now();
    if (rq_fold_r4(m, &r4) != RQ_OK || rq_model_set_online(m, &oc) != RQ_OK) { rc = cli_fail_status(); goto done; }
    t_fold += rq_time_now() - t0;
    if (!w16 && rq_ptq_run(m, &po, ids, calib_n, calib_len, &res) != RQ_OK) { rc = cli_fail_status(); goto done; }
    rq_qinfo qi;
    memset(&qi, 0, sizeof qi);
    qi.wbits = (uint32_t)wbits;
    qi.group = (uint32_t)group;
    qi.quantizer = po.quantizer;
    snprintf(qi.method, sizeof qi.method, "%s", w16 ? "none" : method);
    qi.r3 = r3;
    qi.r4 = r4;
    qi.abits = (uint32_t)abits;
    qi.asym = asym;
    qi.aclip = (float)aclip;
    qi.kvbits = (uint32_t)kvbits;
    qi.kv_group = kvbits < 16 ? (uint32_t)m->online.cfg.kv_group : 0;
    qi.kv_clip = (float)kvclip;
    snprintf(qi.embd_type, sizeof qi.embd_type, "%s", embd);
    const char *base = strrchr(calib, '/');
    bool used_calib = po.method == RQ_PTQ_GPTQ && !w16;
    snprintf(qi.calib, sizeof qi.calib, "%s", used_calib ? (base ? base + 1 : calib) : "");
    qi.calib_n = used_calib ? (uint32_t)calib_n : 0;
    qi.calib_len = used_calib ? (uint32_t)calib_len : 0;
    qi.r1 = r1;
    qi.r2 = r2;
    qi.seed = (uint64_t)seed;
    qi.act_order = act_order;
    qi.fit_importance = fit_imp;
    snprintf(qi.weight_fit, sizeof qi.weight_fit, "%s",
             w16 ? "" : po.quantizer == RQ_QPARAM_LUT ? "lloyd" : po.least_squares ? "ls" : po.clip_search ? "clip" : "minmax");
    qi.damp = (float)damp;
    t0 = rq_time_now();
    if (rq_qmodel_write(m, g, &res, &qi, out) != RQ_OK) { rc = cli_fail_status(); goto done; }
    double t_write = rq_time_now() - t0;
    char desc[256];
    fprintf(stderr, "quantize: wrote %s: %s\n", out, rq_qinfo_describe(&qi, desc, sizeof desc));
    fprintf(stderr,
            "quantize: time %.1fs = fold %.1fs + calibration data %.1fs + calibration forward %.1fs + Hessians %.1fs"
            " + quantization %.1fs + writing %.1fs (+ loading); peak RSS %.0f MiB\n",
            rq_time_now() - t_start, t_fold, t_calib, res.t_forward, res.t_hessian, res.t_quant, t_write,
            (double)rq_peak_rss_bytes() / 1048576.0);
    rc = 0;
done:
    rq_ptq_result_free(&res);
    rq_free(ids);
    rq_tokenizer_free(tok);
    rq_model_free(m);
    rq_gguf_close(g);
    return rc;
}
