/* rotquant qat: RCP's quantization-aware training (train/rcp.h) — rotate, start from GPTQ,
 * block-wise then end-to-end self-distillation, export the trained 2-bit grid. */
#include "cli.h"

#include "base/mpi.h"
#include "base/pool.h"
#include "base/status.h"
#include "base/timer.h"
#include "train/rcp.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void usage(void) {
    rq_rcp_opts d = rq_rcp_opts_default();
    printf("usage: rotquant qat -m FLOAT.gguf|HF_DIR -o OUT.gguf [options]\n"
           "  2-bit quantization-aware training (RCP): rotation, learnable clipping and partitions,\n"
           "  self-distillation from the float model; OUT runs on the packed 2-bit kernels.\n"
           "  --quantizer Q       ldp (default: 4 learned levels per group, W2L), uniform (learnable\n"
           "                      clipping, W2U) or seq (ParetoQ's levels ±¼, ±¾ of a row scale, W2U)\n"
           "  --group G           32, 64 (default), 128, or 0 = per output channel (stored in groups of 64)\n"
           "  --rotate R          gsr (default), gh, walsh, hadamard, none (R1; block = the group)\n"
           "  --rotate2 KIND      R2 per attention head, folded into v/o (default none)\n"
           "  --r1-route R        auto (default: linear on models with post-norms such as Gemma-3,\n"
           "                      residual otherwise), residual (R1 on the residual stream, folded) or\n"
           "                      linear (each linear's input rotated online, the inverse folded)\n"
           "  --abits A           16 (default), 8 or 4: per-token activations (R3/R4 online as --rotate)\n"
           "  --kvbits K          16 (default) or 4: KV cache; --asym, --aclip X for the activations\n"
           "  --init I            ptq (default: GPTQ's grid and updated weights) or minmax\n"
           "  --init-file PTQ     start from this 2-bit rotquant file of the same model (rotquant quantize\n"
           "                      --wbits 2 ...): its grid, rotations, A/KV settings and group are kept\n"
           "  --calib-n N         GPTQ calibration windows, taken from the training data (default %lld)\n"
           "  --data-ids IDS      token ids to train on (default: the float model generates --gen-seqs\n"
           "                      windows at --gen-temp, default %lld and %.1f; --data-save FILE keeps them;\n"
           "                      --gen-chat F: that fraction of them in the chat format, user and\n"
           "                      assistant turns both written by the model; default 0)\n"
           "  --seq-len T         tokens per window (default %lld); --batch B windows per step (default %lld)\n"
           "  --val-frac F        windows held out for validation (default %.2f)\n"
           "  --block-steps N     phase 1: steps per block (default %lld; 0 skips it)\n"
           "  --block-lr X        phase 1 learning rate of the weights (default %g); --block-lr-quant X of\n"
           "                      the quantizer (default %g)\n"
           "  --steps N           phase 2: end-to-end steps (default %lld; 0 skips it)\n"
           "  --lr X, --lr-quant X  phase 2 learning rates (default %g, %g); --schedule constant|cosine|linear\n"
           "  --warmup N          phase 2: the learning rates ramp up linearly over the first N steps\n"
           "                      (default 0), then follow --schedule over the rest\n"
           "  --kl-gamma G        CAKLD γ·KL(s‖t) + (1−γ)·KL(t‖s) (default: the teacher's mean top-1 probability)\n"
           "  --eval-every K      validation every K steps (default %lld)\n"
           "  --checkpoint PATH   phase 2 checkpoint after each validation; --resume PATH continues one\n"
           "                      (phase 1 is then skipped: the checkpoint holds its result)\n"
           "  --keep-last         end with the last parameters (default: those of the lowest validation\n"
           "                      loss of phase 2)\n"
           "  --save-start PATH   also write the start point before any training; --save-block PATH the\n"
           "                      model after phase 1 (2-bit files like OUT)\n"
           "  --checkpoint-act    phase 2: activation checkpointing (keep only each block's input, recompute\n"
           "                      the block in the backward: less memory, ~one more forward per step)\n"
           "  --embd-type T       q8_0 (default), f16 or f32 for the embedding and lm_head\n"
           "  --seed S            data, rotation and sampling (default 0); -t N threads; -q, --quiet\n",
           (long long)d.calib_n, (long long)d.gen_seqs, d.gen_temp, (long long)d.T, (long long)d.n_seq, d.val_frac,
           (long long)d.block_steps, d.block_lr, d.block_lr_quant, (long long)d.steps, d.lr, d.lr_quant,
           (long long)d.eval_every);
}

int cmd_qat(int argc, char **argv) {
    rq_rcp_opts o = rq_rcp_opts_default();
    const char *in = NULL, *out = NULL, *ids_path = NULL, *quant = "ldp", *rot = "gsr", *init = "ptq", *route = "auto", *rot2 = "none";
    int64_t threads = 0, seed = 0, abits = 16, kvbits = 16;
    double gamma = -1, x;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() (v ? (i++, v) : NULL)
#define STR(flag, dst) else if (!strcmp(a, flag)) { if (!(dst = NEED())) return cli_fail("%s needs a value", a); }
#define INT(flag, dst, lo, hi) else if (!strcmp(a, flag)) { if (!cli_parse_int(a, NEED(), lo, hi, &dst)) return 1; }
#define FLT(flag, dst, lo, hi) else if (!strcmp(a, flag)) { if (!cli_parse_float(a, NEED(), lo, hi, &x)) return 1; dst = x; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        }
        STR("-m", in) STR("-o", out) STR("--data-ids", ids_path) STR("--quantizer", quant) STR("--rotate", rot) STR("--rotate2", rot2) STR("--r1-route", route)
        STR("--init", init) STR("--init-file", o.init_file) STR("--data-save", o.data_save) STR("--save-block", o.save_block) STR("--save-start", o.save_start) STR("--checkpoint", o.checkpoint) STR("--resume", o.resume) STR("--embd-type", o.embd_type)
        INT("--group", o.group, 0, 4096) INT("--calib-n", o.calib_n, 1, 1 << 20) INT("--gen-seqs", o.gen_seqs, 1, 1 << 20)
        INT("--seq-len", o.T, 2, 1 << 16) INT("--batch", o.n_seq, 1, 1 << 16)
        INT("--block-steps", o.block_steps, 0, INT64_C(1) << 40) INT("--steps", o.steps, 0, INT64_C(1) << 40)
        INT("--warmup", o.warmup, 0, INT64_C(1) << 40) INT("--eval-every", o.eval_every, 1, INT64_C(1) << 40) INT("--seed", seed, 0, INT64_MAX)
        INT("-t", threads, 0, 1024)
        FLT("--gen-temp", o.gen_temp, 0, 10) FLT("--gen-chat", o.gen_chat, 0, 1) FLT("--val-frac", o.val_frac, 0, 0.9) FLT("--block-lr", o.block_lr, -1e9, 1e9)
        FLT("--block-lr-quant", o.block_lr_quant, -1e9, 1e9) FLT("--lr", o.lr, -1e9, 1e9)
        FLT("--lr-quant", o.lr_quant, -1e9, 1e9) FLT("--kl-gamma", gamma, 0, 1) FLT("--clip", o.clip, 0, 1e9)
        FLT("--aclip", o.aclip, 0.01, 1)
        else if (!strcmp(a, "--abits")) { if (!cli_parse_abits(a, NEED(), &abits)) return 1; }
        else if (!strcmp(a, "--kvbits")) { if (!cli_parse_kvbits(a, NEED(), &kvbits)) return 1; }
        else if (!strcmp(a, "--schedule")) { if (!v || rq_lr_shape_parse(NEED(), &o.schedule) != RQ_OK) return v ? cli_fail_status() : cli_fail("--schedule needs a value"); }
        else if (!strcmp(a, "--asym")) o.asym = true;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = true;
        else if (!strcmp(a, "--keep-last")) o.keep_last = true;
        else if (!strcmp(a, "--checkpoint-act")) o.checkpoint_act = true;
        else return cli_fail("qat: unknown option '%s' (see rotquant qat --help)", a);
#undef NEED
#undef STR
#undef INT
#undef FLT
    }
    if (!in || !out) return cli_fail("qat: -m FLOAT.gguf and -o OUT.gguf are required");
    int qk = rq_fq2_parse(quant);
    if (qk < 0) return cli_fail("--quantizer: '%s' is not ldp, uniform or seq", quant);
    o.quantizer = (rq_fq2_kind)qk;
    if (rq_rot_kind_parse(rot, &o.rotate) != RQ_OK || rq_rot_kind_parse(rot2, &o.rotate2) != RQ_OK)
        return cli_fail_status();
    if (o.rotate2 == RQ_ROT_LEARNED || o.rotate == RQ_ROT_LEARNED)
        return cli_fail("qat: a learned rotation is not taken here (start from a quantized file with --init-file)");
    if (!cli_parse_r1_route(route, &o.r1_route)) return 1;
    if (strcmp(init, "ptq") && strcmp(init, "minmax")) return cli_fail("--init: '%s' is not ptq or minmax", init);
    o.init_ptq = !strcmp(init, "ptq");
    o.abits = (int)abits, o.kvbits = (int)kvbits, o.gamma = gamma, o.seed = (uint64_t)seed, o.progress = !quiet;
    if (strcmp(o.embd_type, "q8_0") && strcmp(o.embd_type, "f16") && strcmp(o.embd_type, "f32"))
        return cli_fail("--embd-type: '%s' is not q8_0, f16 or f32", o.embd_type);
    const char *outputs[] = {out, o.checkpoint, o.data_save, o.save_block, o.save_start};
    if (rq_mpi_rank() == 0 && !cli_check_outputs(outputs, 5)) return 1;
    int32_t *ids = NULL;
    if (ids_path) {
        if (!cli_read_ids(ids_path, &ids, &o.n_ids)) return 1;
        o.ids = ids;
    }
    cli_threads_set(threads);
    rq_rcp_result r;
    rq_status s = rq_rcp_run(in, out, &o, &r);
    rq_free(ids);
    if (s != RQ_OK) return cli_fail_status();
    if (rq_mpi_rank() != 0) return 0; /* rank 0 reports (data-parallel: train/dp.h) */
    printf("qat: wrote %s (%.3f bits/weight on the linears); held-out perplexity of the file %.4f, of the "
           "training graph %.4f\n", out, r.bits_per_weight, r.val_ppl_file, r.val_ppl_end);
    if (isnan(r.val_ppl_start)) printf("qat: resumed; held-out perplexity %.3f; ", r.val_ppl_end); /* no start measured */
    else printf("qat: held-out perplexity %.3f -> %.3f; ", r.val_ppl_start, r.val_ppl_end);
    if (r.tokens_block) printf("block-wise MSE %.5g -> %.5g (%lld tokens, %.0f s); ", r.mse_first, r.mse_last,
                               (long long)r.tokens_block, r.t_block);
    else printf("no block-wise phase; ");
    if (r.tokens_e2e) printf("end-to-end KL %.5f -> %.5f (γ %.3f, %lld tokens, %.0f s)\n", r.val_first, r.val_last,
                             r.gamma, (long long)r.tokens_e2e, r.t_e2e);
    else printf("no end-to-end phase\n");
    printf("qat: time %.0f s (data %.0f s, GPTQ start %.0f s); peak RSS %.0f MiB; %d threads\n", r.t_total, r.t_data,
           r.t_ptq, (double)rq_peak_rss_bytes() / 1048576.0, rq_threads_get());
    return 0;
}
