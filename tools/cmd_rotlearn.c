/* rotquant rotlearn: learn R1 (and per-layer R2) by Cayley SGD on the fake-quantized model's
 * cross-entropy (train/rotlearn.h, SpinQuant) and write them to a rotation file that
 * `rotquant quantize --rotate learned --rotation-file F` folds. */
#include "cli.h"

#include "base/mpi.h"
#include "base/pool.h"
#include "base/status.h"
#include "base/timer.h"
#include "train/rotlearn.h"

#include <stdio.h>
#include <string.h>

static void usage(void) {
    rq_rotlearn_opts d = rq_rotlearn_opts_default();
    printf("usage: rotquant rotlearn -m FLOAT.gguf -o ROT.gguf [options]\n"
           "  Learn the rotations R1 (hidden) and R2 (per layer, head_dim) by Cayley SGD on the\n"
           "  cross-entropy of the fake-quantized model (SpinQuant); ROT.gguf is folded by\n"
           "  `rotquant quantize --rotate learned --rotation-file ROT.gguf`.\n"
           "  --init R            R1's start: hadamard (default, random signs), walsh, gsr, gh, orthogonal, none\n"
           "  --init-block B      gsr/gh block of the start (default: --block, else --group)\n"
           "  --block B           learn R1 block-diagonal with blocks of B (each block orthogonal; start\n"
           "                      from gsr/gh with blocks dividing B, or none)\n"
           "  --no-r2             learn R1 only; --init2 R: R2's start (default hadamard)\n"
           "  --r1-route R        auto (default: linear on models with post-norms such as Gemma-3, whose\n"
           "                      R1 cannot fold; residual otherwise), residual, or linear: learn Ri, the\n"
           "                      online rotation of each linear's normed input (no R2; o's input and R4\n"
           "                      take the start's kind, fixed)\n"
           "  --wbits W           fake-quantized weights: RTN asymmetric per group (default %d; 16 = float)\n"
           "  --group G           weights per group (default %lld)\n"
           "  --abits A, --kvbits K  16 (default), 8/4: activations and KV cache fake-quantized (STE),\n"
           "                      with R3/R4 online (--rotate3/--rotate4, default hadamard); --asym, --aclip X\n"
           "  --steps N           Cayley steps (default %lld); --lr X (default %.2g; SpinQuant's 1.5 diverges on\n"
           "                      SmolLM2-135M; the step is η = min(lr, 1/‖A‖));\n"
           "                      --schedule cosine|constant|linear (default cosine)\n"
           "  --seq-len T         tokens per window (default %lld); --batch B windows per step (default %lld)\n"
           "  --data-ids IDS      training token ids (default: the float model generates --gen-seqs windows\n"
           "                      at --gen-temp, default %lld and %.1f; --data-save FILE keeps them;\n"
           "                      --gen-chat F: that fraction in the chat format; default 0)\n"
           "  --val-seqs N        windows held out for the loss before/after (default %lld)\n"
           "  --seed S            rotation signs, data and batches (default 0); -t N threads; -q, --quiet\n",
           d.wbits, (long long)d.group, (long long)d.steps, d.lr, (long long)d.T, (long long)d.n_seq,
           (long long)d.gen_seqs, d.gen_temp, (long long)d.val_seqs);
}

static bool parse_kind(const char *opt, const char *v, rq_rot_kind *k) {
    if (!v) return cli_fail("%s needs a value", opt), false;
    if (rq_rot_kind_parse(v, k) != RQ_OK || *k == RQ_ROT_LEARNED) {
        cli_fail("%s: '%s' is not none, hadamard, walsh, gh, gsr or orthogonal", opt, v);
        return false;
    }
    return true;
}

int cmd_rotlearn(int argc, char **argv) {
    rq_rotlearn_opts o = rq_rotlearn_opts_default();
    const char *in = NULL, *out = NULL, *ids_path = NULL, *route = "auto";
    int64_t threads = 0, seed = 0, abits = 16, kvbits = 16, wbits = o.wbits;
    double x;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() (v ? (i++, v) : NULL)
#define STR(flag, dst) else if (!strcmp(a, flag)) { if (!(dst = NEED())) return cli_fail("%s needs a value", a); }
#define INT(flag, dst, lo, hi) else if (!strcmp(a, flag)) { if (!cli_parse_int(a, NEED(), lo, hi, &dst)) return 1; }
#define FLT(flag, dst, lo, hi) else if (!strcmp(a, flag)) { if (!cli_parse_float(a, NEED(), lo, hi, &x)) return 1; dst = x; }
#define KIND(flag, dst) else if (!strcmp(a, flag)) { if (!parse_kind(a, NEED(), &dst)) return 1; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        }
        STR("-m", in) STR("-o", out) STR("--r1-route", route) STR("--data-ids", ids_path) STR("--data-save", o.data_save)
        KIND("--init", o.init) KIND("--init2", o.init2)
        INT("--init-block", o.init_block, 1, 1 << 16) INT("--block", o.block, 0, 1 << 16)
        INT("--wbits", wbits, 2, 16) INT("--group", o.group, 1, 4096)
        INT("--steps", o.steps, 1, INT64_C(1) << 40) INT("--seq-len", o.T, 2, 1 << 16) INT("--batch", o.n_seq, 1, 1 << 16)
        INT("--gen-seqs", o.gen_seqs, 1, 1 << 20) INT("--val-seqs", o.val_seqs, 0, 1 << 20)
        INT("--seed", seed, 0, INT64_MAX) INT("-t", threads, 0, 1024)
        FLT("--lr", o.lr, 1e-12, 1e6) FLT("--gen-temp", o.gen_temp, 0, 10) FLT("--gen-chat", o.gen_chat, 0, 1) FLT("--aclip", o.aclip, 0.01, 1)
        else if (!strcmp(a, "--rotate3") || !strcmp(a, "--rotate4")) {
            rq_rot_kind k;
            if (!parse_kind(a, NEED(), &k)) return 1;
            if (a[8] == '3') o.rotate3 = (int)k;
            else o.rotate4 = (int)k;
        }
        else if (!strcmp(a, "--abits")) { if (!cli_parse_abits(a, NEED(), &abits)) return 1; }
        else if (!strcmp(a, "--kvbits")) { if (!cli_parse_kvbits(a, NEED(), &kvbits)) return 1; }
        else if (!strcmp(a, "--schedule")) { if (!v || rq_lr_shape_parse(NEED(), &o.schedule) != RQ_OK) return v ? cli_fail_status() : cli_fail("--schedule needs a value"); }
        else if (!strcmp(a, "--no-r2")) o.r2 = false;
        else if (!strcmp(a, "--asym")) o.asym = true;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = true;
        else return cli_fail("rotlearn: unknown option '%s' (see rotquant rotlearn --help)", a);
#undef NEED
#undef STR
#undef INT
#undef FLT
#undef KIND
    }
    if (!in || !out) return cli_fail("rotlearn: -m FLOAT.gguf and -o ROT.gguf are required");
    if (!cli_parse_r1_route(route, &o.r1_route)) return 1;
    o.wbits = (int)wbits, o.abits = (int)abits, o.kvbits = (int)kvbits, o.seed = (uint64_t)seed, o.progress = !quiet;
    const char *outputs[] = {out, o.data_save};
    if (rq_mpi_rank() == 0 && !cli_check_outputs(outputs, 2)) return 1;
    int32_t *ids = NULL;
    if (ids_path) {
        if (!cli_read_ids(ids_path, &ids, &o.n_ids)) return 1;
        o.ids = ids;
    }
    cli_threads_set(threads);
    rq_rotlearn_result r;
    rq_status s = rq_rotlearn_run(in, out, &o, &r);
    rq_free(ids);
    if (s != RQ_OK) return cli_fail_status();
    if (rq_mpi_rank() != 0) return 0; /* rank 0 reports (data-parallel: train/dp.h) */
    printf("rotlearn: wrote %s; training loss %.5f -> %.5f, held-out loss %.5f -> %.5f; |R1'R1 - I| %.1e, "
           "|R2'R2 - I| %.1e\n", out, r.loss_first, r.loss_last, r.val_first, r.val_last, r.orth1, r.orth2);
    printf("rotlearn: %lld training tokens; time %.0f s (data %.0f s, training %.0f s); peak RSS %.0f MiB; %d threads\n",
           (long long)r.tokens, r.t_total, r.t_data, r.t_train, (double)rq_peak_rss_bytes() / 1048576.0,
           rq_threads_get());
    return 0;
}
