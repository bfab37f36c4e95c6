/* rotquant quantize: the options of the quantize pipeline (quant/pipeline.h: fold a
 * rotation into the float model, quantize its linear layers with the run-time quantizers
 * and online rotations in place during calibration, write a rotquant GGUF), one library
 * call, and its summary. */
#include "cli.h"

#include "base/mpi.h"
#include "base/timer.h"
#include "model/qinfo.h"
#include "quant/pipeline.h"

#include <stdio.h>
#include <string.h>

static void usage(void) {
    printf("usage: rotquant quantize -m IN.gguf|HF_DIR -o OUT.gguf [options]\n"
           "  --rotate KIND      none|hadamard|walsh|gh|gsr|orthogonal  R1, the residual rotation (default gsr);\n"
           "                     learned: R1 (and R2) from --rotation-file F (rotquant rotlearn), R3/R4 by\n"
           "                     default those it was trained with\n"
           "  --compose KIND     with --rotate learned: apply this fixed rotation on top of the learned R1\n"
           "                     before GPTQ (R1 = R_learned·Q; gsr/gh take --block)\n"
           "  --block B          block size of gh/gsr (default: the group size)\n"
           "  --r1-route R       auto (default): linear on models with post-norms (Gemma-3, where\n"
           "                     residual destroys the model), residual otherwise; residual: R1\n"
           "                     rotates the residual stream, folded into the weights (post-norm\n"
           "                     models: o/down keep their output basis and the post-norms' outputs\n"
           "                     are rotated online); linear: no residual rotation, each linear's\n"
           "                     input rotated online by a rotation of the --rotate kind, its inverse\n"
           "                     folded into the linear (R4 for down)\n"
           "  --rotate2 KIND     R2, per attention head (v/o pair, folded): auto (default: hadamard when\n"
           "                     --rotate is not none, a learned file's own R2, else none), or a kind\n"
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
           "  --quantizer Q      uniform|lut|seq (lut: 4 Lloyd-Max levels per group, wbits 2; seq:\n"
           "                     uniform with the zero point at the middle, ParetoQ's SEQ grid ±s/2, ±3s/2)\n"
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
           "  --hessian-shrink A GPTQ: scale H's off-diagonal entries by 1 - A (0..1, default 0); 1 keeps\n"
           "                     only the diagonal: weights rounded to the H_ii-weighted fit, no feedback\n"
           "  --calib SRC        generate (the model samples its own text; default) or a text FILE\n"
           "  --calib-n N        calibration sequences (default 16)\n"
           "  --calib-len L      tokens per sequence (default 512, at most the model's context). On 2\n"
           "                     cores, SmolLM2-135M: the default takes about 1 min to generate and 2 min\n"
           "                     of GPTQ; the papers' --calib-n 128 --calib-len 2048 took 89 min and 20 min\n"
           "                     and gave no better a W2 file (generate once: --calib-save, then --calib-ids)\n"
           "  --calib-save FILE  also write the calibration token ids as text (one sequence per line);\n"
           "                     without -o, only generate the calibration data\n"
           "  --calib-ids FILE   read calibration token ids written by --calib-save (reuse across runs)\n"
           "  --loss-report FILE also write each linear's quantization loss (GPTQ: sum e^2/2 weighted by H;\n"
           "                     RTN: squared error) as a TSV, one line per tensor with its layer\n"
           "  --embd-type T      token embedding / lm_head storage: q8_0 (default), f16, f32\n"
           "  --seed S           seeds the rotation signs, the calibration data (default 0)\n"
           "  -t N               threads (default: all cores)\n"
           "  -q, --quiet        no progress or summary lines\n");
}


int cmd_quantize(int argc, char **argv) {
    rq_quant_opts o = rq_quant_opts_default();
    struct cli_quant_args qa = cli_quant_args_default(&o);
    qa.rotate2 = "auto"; /* quantize: R2 Hadamard with a rotated R1 (export keeps none) */
    const char *in = NULL, *out = NULL, *embd = "q8_0", *quant_name = "uniform";
    const char *rot3_name = NULL, *rot4_name = NULL, *fit_name = "ls", *route = "auto";
    int64_t wbits = 2, abits = 16, kvbits = 16;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        int shared = cli_parse_quant_opt(argc, argv, &i, &qa);
        if (shared < 0) return 1;
        if (shared) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VAL() (v ? (i++, v) : NULL)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        else if (!strcmp(a, "-m")) { if (!(in = VAL())) return cli_fail("-m needs a file"); }
        else if (!strcmp(a, "-o")) { if (!(out = VAL())) return cli_fail("-o needs a file"); }
        else if (!strcmp(a, "--r1-route")) { if (!(route = VAL())) return cli_fail("--r1-route needs auto, residual or linear"); }
        else if (!strcmp(a, "--quantizer")) { if (!(quant_name = VAL())) return cli_fail("--quantizer needs a value"); }
        else if (!strcmp(a, "--embd-type")) { if (!(embd = VAL())) return cli_fail("--embd-type needs a value"); }
        else if (!strcmp(a, "--rotate3")) { if (!(rot3_name = VAL())) return cli_fail("--rotate3 needs a kind"); }
        else if (!strcmp(a, "--rotate4")) { if (!(rot4_name = VAL())) return cli_fail("--rotate4 needs a kind"); }
        else if (!strcmp(a, "--block3")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &o.block3)) return 1; }
        else if (!strcmp(a, "--block4")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &o.block4)) return 1; }
        else if (!strcmp(a, "--abits")) { if (!cli_parse_abits(a, VAL(), &abits)) return 1; }
        else if (!strcmp(a, "--kvbits")) { if (!cli_parse_kvbits(a, VAL(), &kvbits)) return 1; }
        else if (!strcmp(a, "--kv-group")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &o.kv_group)) return 1; }
        else if (!strcmp(a, "--aclip")) { if (!cli_parse_float(a, VAL(), 1e-6, 1, &o.aclip)) return 1; }
        else if (!strcmp(a, "--kvclip")) { if (!cli_parse_float(a, VAL(), 1e-6, 1, &o.kvclip)) return 1; }
        else if (!strcmp(a, "--asym")) o.asym = true;
        else if (!strcmp(a, "--wbits")) { if (!cli_parse_int(a, VAL(), 2, 16, &wbits)) return 1; }
        else if (!strcmp(a, "--group")) { if (!cli_parse_int(a, VAL(), 1, 1 << 20, &o.group)) return 1; }
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = true;
        else if (!strcmp(a, "--fit")) { if (!(fit_name = VAL())) return cli_fail("--fit needs ls, clip or minmax"); }
        else if (!strcmp(a, "--clip-search")) fit_name = "clip";
        else if (!strcmp(a, "--loss-report")) { if (!(o.loss_report = VAL())) return cli_fail("--loss-report needs a file"); }
        else return cli_fail("quantize: unknown option '%s' (see rotquant quantize --help)", a);
#undef VAL
    }
    if (!in || (!out && !o.calib_save))
        return cli_fail("quantize: -m IN.gguf and -o OUT.gguf are required (or --calib-save FILE alone: only "
                        "generate calibration data)");
    if (rq_mpi_rank() != 0) quiet = true; /* one rank reports (and writes the files) */
    o.wbits = (int)wbits, o.abits = (int)abits, o.kvbits = (int)kvbits;
    o.embd_type = embd, o.progress = !quiet;
    if (!strcmp(fit_name, "ls")) o.fit = RQ_FIT_LS;
    else if (!strcmp(fit_name, "clip")) o.fit = RQ_FIT_CLIP;
    else if (!strcmp(fit_name, "minmax")) o.fit = RQ_FIT_MINMAX;
    else return cli_fail("--fit: '%s' is not ls, clip or minmax", fit_name);
    int r1_route;
    if (!cli_parse_r1_route(route, &r1_route)) return 1;
    o.r1_route = (rq_r1_route)r1_route;
    if (!strcmp(quant_name, "uniform")) o.quantizer = RQ_QPARAM_UNIFORM;
    else if (!strcmp(quant_name, "lut")) o.quantizer = RQ_QPARAM_LUT;
    else if (!strcmp(quant_name, "seq")) o.quantizer = RQ_QPARAM_UNIFORM, o.seq_grid = true;
    else return cli_fail("--quantizer: '%s' is not uniform, lut or seq", quant_name);
    if (!cli_quant_args_finish(&qa)) return 1;
    rq_rot_kind k;
    if (rot3_name) {
        if (rq_rot_kind_parse(rot3_name, &k) != RQ_OK) return cli_fail_status();
        o.rotate3 = (int)k;
    }
    if (rot4_name) {
        if (rq_rot_kind_parse(rot4_name, &k) != RQ_OK) return cli_fail_status();
        o.rotate4 = (int)k;
    }
    if (rq_quant_opts_check(&o) != RQ_OK) return cli_fail_status();
    const char *outputs[] = {out, o.calib_save, o.loss_report};
    if (rq_mpi_rank() == 0 && !cli_check_outputs(outputs, 3)) return 1;
    cli_threads_set(qa.threads);

    rq_quant_result r;
    if (rq_quant_run(in, out, &o, &r) != RQ_OK) return cli_fail_status();
    if (!out || quiet) return 0;
    char desc[640];
    fprintf(stderr, "quantize: wrote %s: %s\n", out, rq_qinfo_describe(&r.qi, desc, sizeof desc));
    fprintf(stderr,
            "quantize: time %.1fs = fold %.1fs + calibration data %.1fs + calibration forward %.1fs + Hessians %.1fs"
            " + quantization %.1fs + writing %.1fs (+ loading); peak RSS %.0f MiB%s\n",
            r.t_total, r.t_fold, r.t_calib, r.t_forward, r.t_hessian, r.t_quant, r.t_write,
            (double)rq_peak_rss_bytes() / 1048576.0, rq_mpi_size() > 1 ? " (rank 0)" : "");
    return 0;
}
