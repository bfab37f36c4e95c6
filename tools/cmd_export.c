/* rotquant export: a llama.cpp-loadable GGUF (quant/ggexport.h): rotations folded, GPTQ
 * solved onto llama.cpp's own block encodings. One library call and its summary. */
#include "cli.h"

#include "base/timer.h"
#include "quant/ggexport.h"
#include "quant/ggquant.h"

#include <stdio.h>
#include <string.h>

static void usage(void) {
    printf("usage: rotquant export -m IN.gguf|HF_DIR -o OUT.gguf [options]\n"
           "Writes a standard GGUF that llama.cpp loads unchanged: R1/R2 folded into the weights, norms\n"
           "fused, every linear solved by GPTQ directly onto a llama.cpp block encoding.\n"
           "  --type T           q4_0 (default), q4_1, q5_0, q5_1, q8_0, iq4_nl, or the K types q2_k, q3_k,\n"
           "                     q4_k, q5_k, q6_k where a row is a multiple of 256 (elsewhere llama.cpp's\n"
           "                     fallback: q2_k/q3_k -> iq4_nl, q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0)\n"
           "  --embd-type T      token embedding and lm_head: q8_0 (default), any --type, f16, f32\n"
           "  --rotate KIND      none|hadamard|walsh|gh|gsr|orthogonal  R1, folded (default gsr); learned:\n"
           "                     R1 (and R2) from --rotation-file F (rotquant rotlearn). A model with\n"
           "                     post-norms (Gemma-3) would need R1 online: only --rotate none there\n"
           "  --rotation-file F  with --rotate learned; --compose KIND on top of it\n"
           "  --block B          block size of gh/gsr (default 32, llama.cpp's block)\n"
           "  --rotate2 KIND     R2, per attention head, folded into v/o (default none)\n"
           "  --block2 B         block size of R2 when gh/gsr (default: head_dim)\n"
           "  --method M         rtn|gptq (default gptq)\n"
           "  --act-order        GPTQ: columns by decreasing Hessian diagonal, static groups (default;\n"
           "                     --no-act-order: columns in order, each block fitted when reached)\n"
           "  --fit-importance   fit each block weighting weights by H_ii (default with gptq;\n"
           "                     --no-fit-importance: plain squared error)\n"
           "  --damp L           GPTQ dampening, relative to mean diag H (default 0.01)\n"
           "  --hessian-shrink A GPTQ: scale H's off-diagonal entries by 1 - A (0..1, default 0); 1 keeps\n"
           "                     only the diagonal: weights rounded to the H_ii-weighted fit, no feedback\n"
           "  --calib SRC        generate (the model samples its own text; default) or a text FILE\n"
           "  --calib-n N        calibration sequences (default 16)\n"
           "  --calib-len L      tokens per sequence (default 512, at most the model's context)\n"
           "  --calib-save FILE  also write the calibration token ids (one sequence per line)\n"
           "  --calib-ids FILE   read calibration token ids written by --calib-save\n"
           "  --seed S           seeds the rotation signs and the calibration data (default 0)\n"
           "  -t N               threads (default: all cores)\n"
           "  -q, --quiet        no progress or summary lines\n");
}

int cmd_export(int argc, char **argv) {
    rq_export_opts o = rq_export_opts_default();
    struct cli_quant_args qa = cli_quant_args_default(&o.q);
    const char *in = NULL, *out = NULL, *type = "q4_0", *embd = "q8_0";
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
        else if (!strcmp(a, "--type")) { if (!(type = VAL())) return cli_fail("--type needs a type"); }
        else if (!strcmp(a, "--embd-type")) { if (!(embd = VAL())) return cli_fail("--embd-type needs a type"); }
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = true;
        else return cli_fail("export: unknown option '%s' (see rotquant export --help)", a);
#undef VAL
    }
    if (!in || !out) return cli_fail("export: -m IN and -o OUT.gguf are required");
    if (rq_gg_type_parse(type, false, "--type", &o.type) != RQ_OK ||
        rq_gg_type_parse(embd, true, "--embd-type", &o.embd_type) != RQ_OK)
        return cli_fail_status();
    if (!cli_quant_args_finish(&qa)) return 1;
    o.q.progress = !quiet;
    if (rq_quant_opts_check(&o.q) != RQ_OK) return cli_fail_status();
    const char *outputs[] = {out, o.q.calib_save};
    if (!cli_check_outputs(outputs, 2)) return 1;
    cli_threads_set(qa.threads);

    rq_export_result r;
    if (rq_export_run(in, out, &o, &r, NULL) != RQ_OK) return cli_fail_status();
    if (quiet) return 0;
    fprintf(stderr, "export: wrote %s: %.1f MiB; linears %s (%.3f bits per weight, %lld of %lld in a fallback type); "
            "loss %.4g\n", out, (double)r.file_bytes / 1048576.0, r.types, r.bits_per_weight, (long long)r.n_fallback,
            (long long)r.n_lin, r.loss);
    fprintf(stderr,
            "export: time %.1fs = fold %.1fs + calibration data %.1fs + calibration forward %.1fs + Hessians %.1fs"
            " + quantization %.1fs + writing %.1fs (+ loading); peak RSS %.0f MiB\n",
            r.t_total, r.t_fold, r.t_calib, r.t_forward, r.t_hessian, r.t_quant, r.t_write,
            (double)rq_peak_rss_bytes() / 1048576.0);
    return 0;
}
