/* rotquant train: fine-tune a float model on token data (next-token cross-entropy), or, with
 * --wbits, distill the float model into a fake-quantized copy of itself (QAT: latent float
 * weights and learnable clipping, train/qat.h) on its own generated text. */
#include "cli.h"

#include "base/hash.h"
#include "base/mpi.h"
#include "base/pool.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/timer.h"
#include "io/gguf.h"
#include "model/hf.h"
#include "model/model.h"
#include "quant/calib.h"
#include "text/tokenizer.h"
#include "train/backward.h"
#include "train/checkpoint.h"
#include "train/params.h"
#include "train/qat.h"
#include "train/run.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(void) {
    printf("usage: rotquant train -m MODEL [-o OUT.gguf] [--data generate|TEXT | --data-ids IDS] [options]\n"
           "  -o OUT.gguf        write the trained model (float32 tensors; QAT: the fake-quantized weights)\n"
           "  --save-init PATH   also write the model as it is before the first step (QAT: the initial\n"
           "                     fake-quantized copy), to compare against\n"
           "  --data SRC         generate (default: the float model samples its own text, temperature\n"
           "                     --gen-temp, from BOS) or a TEXT file (tokenized, no BOS)\n"
           "  --data-ids IDS     token ids (decimal, blanks/commas/newlines), e.g. quantize --calib-save\n"
           "  --gen-seqs N       generated sequences of --seq-len tokens (default 64)\n"
           "  --gen-temp X       generation temperature (default 0.7)\n"
           "  --seq-len T        tokens per training sequence (default 256)\n"
           "  --batch B          sequences per step (default 4)\n"
           "  --steps N          optimizer steps in all (default 100)\n"
           "  --lr X             learning rate of the weights (default 1e-5)\n"
           "  --lr-quant X       learning rate of the quantizer parameters (default 1e-3)\n"
           "  --lr-norm X        learning rate of the norm scales (default: --lr)\n"
           "  --wd X             weight decay of the linears (default 0)\n"
           "  --schedule S       constant (default), cosine or linear; --warmup N steps (default 0)\n"
           "  --clip X           clip the global gradient norm to X (default 1; 0: off)\n"
           "  --wbits B          QAT: distill into a B-bit (2..8) fake-quantized copy of the block linears\n"
           "  --group G          QAT group size (default 64); --clip-init L initial clip logit (default 4)\n"
           "  --kl-gamma G       distillation loss G·KL(s‖t) + (1−G)·KL(t‖s) (default 0)\n"
           "  --train-embd       also train the token embedding (default: frozen)\n"
           "  --eval-every K     validation loss every K steps (default 25) on the held-out split\n"
           "  --val-frac F       fraction of the sequences held out (default 0.2)\n"
           "  --checkpoint PATH  write a checkpoint after each validation; --resume PATH continues one\n"
           "  --keep-best        end with (and write) the parameters of the lowest validation loss\n"
           "  --checkpoint-act   activation checkpointing: keep only each block's input in the forward and\n"
           "                     recompute the block in the backward (less memory for long --seq-len or\n"
           "                     large --batch, about one more forward per step; the same gradients)\n"
           "  --seed S           data generation, split and batch sampling (default 0)\n"
           "  -t N               threads (default: the cores present); deterministic for a fixed N\n"
           "  -q, --quiet        no progress lines\n");
}

typedef struct {
    const char *model, *out, *data, *data_ids, *ckpt, *resume, *save_init;
    int64_t gen_seqs, T, B, steps, warmup, wbits, group, eval_every, seed, threads;
    double gen_temp, lr, lr_quant, lr_norm, wd, clip, clip_init, gamma, val_frac;
    rq_lr_shape schedule;
    bool train_embd, quiet, keep_best, ckpt_act;
} train_args;

static int parse(int argc, char **argv, train_args *a) {
    *a = (train_args){.data = "generate", .gen_seqs = 64, .T = 256, .B = 4, .steps = 100, .group = 64,
                      .eval_every = 25, .gen_temp = 0.7, .lr = 1e-5, .lr_quant = 1e-3, .lr_norm = -1, .clip = 1,
                      .clip_init = 4, .val_frac = 0.2};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define STR(flag, dst) else if (!strcmp(o, flag)) { if (!v) return cli_fail("%s needs a value", o); dst = v; i++; }
#define INT(flag, dst, lo, hi) else if (!strcmp(o, flag)) { if (!cli_parse_int(o, v, lo, hi, &dst)) return 1; i++; }
#define FLT(flag, dst, lo, hi) else if (!strcmp(o, flag)) { if (!cli_parse_float(o, v, lo, hi, &dst)) return 1; i++; }
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage();
            return -1;
        }
        STR("-m", a->model) STR("-o", a->out) STR("--data", a->data) STR("--data-ids", a->data_ids)
        STR("--checkpoint", a->ckpt) STR("--resume", a->resume) STR("--save-init", a->save_init)
        INT("--gen-seqs", a->gen_seqs, 1, 1 << 20) INT("--seq-len", a->T, 2, 1 << 16) INT("--batch", a->B, 1, 1 << 20)
        INT("--steps", a->steps, 0, INT64_C(1) << 40) INT("--warmup", a->warmup, 0, INT64_C(1) << 40)
        INT("--wbits", a->wbits, 2, 8) INT("--group", a->group, 1, 1 << 20) INT("--eval-every", a->eval_every, 1, INT64_C(1) << 40)
        INT("--seed", a->seed, 0, INT64_MAX) INT("-t", a->threads, 0, 256)
        FLT("--gen-temp", a->gen_temp, 0, 10) FLT("--lr", a->lr, -1e9, 1e9) FLT("--lr-quant", a->lr_quant, -1e9, 1e9)
        FLT("--lr-norm", a->lr_norm, -1e9, 1e9) FLT("--wd", a->wd, 0, 1e3) FLT("--clip", a->clip, 0, 1e9)
        FLT("--clip-init", a->clip_init, -50, 50) FLT("--kl-gamma", a->gamma, 0, 1) FLT("--val-frac", a->val_frac, 0, 0.9)
        else if (!strcmp(o, "--schedule")) {
            if (!v) return cli_fail("--schedule needs a value");
            if (rq_lr_shape_parse(v, &a->schedule) != RQ_OK) return cli_fail_status();
            i++;
        } else if (!strcmp(o, "--train-embd")) a->train_embd = true;
        else if (!strcmp(o, "-q") || !strcmp(o, "--quiet")) a->quiet = true;
        else if (!strcmp(o, "--keep-best")) a->keep_best = true;
        else if (!strcmp(o, "--checkpoint-act")) a->ckpt_act = true;
        else return cli_fail("train: unknown argument '%s'", o);
#undef STR
#undef INT
#undef FLT
    }
    if (!a->model) return cli_fail("train: -m MODEL is required");
    if (!(a->lr > 0)) return cli_fail("--lr must be > 0 (got %g)", a->lr);
    if (a->lr_norm < 0 && a->lr_norm != -1) return cli_fail("--lr-norm must be > 0 (got %g)", a->lr_norm);
    if (a->lr_norm == 0) return cli_fail("--lr-norm must be > 0 (got 0)");
    if (a->lr_norm == -1) a->lr_norm = a->lr;
    if (a->wbits && !(a->lr_quant > 0)) return cli_fail("--lr-quant must be > 0 (got %g)", a->lr_quant);
    if (a->data_ids && strcmp(a->data, "generate")) return cli_fail("train: give one of --data TEXT and --data-ids");
    return 0;
}

/* MemAvailable of /proc/meminfo in bytes (INT64_MAX when unknown) */
static int64_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return INT64_MAX;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? INT64_MAX : (int64_t)kb * 1024;
}

/* validation lines on stdout */
static void print_validation(void *user, int64_t step, double train_loss, double val_loss) {
    const char *what = user;
    if (train_loss < 0) printf("step %lld: validation %s %.5f\n", (long long)step, what, val_loss);
    else printf("step %lld: train %s %.5f, validation %.5f\n", (long long)step, what, train_loss, val_loss);
    fflush(stdout);
}

int cmd_train(int argc, char **argv) {
    train_args a;
    int pr = parse(argc, argv, &a);
    if (pr) return pr < 0 ? 0 : pr;
    cli_threads_set(a.threads);
    bool r0 = rq_mpi_rank() == 0; /* data-parallel over MPI ranks (train/dp.h): rank 0 reports and writes */
    if (!r0) a.quiet = true;
    int rc = 1;
    rq_gguf *g = NULL;
    rq_model *m = NULL, *teacher = NULL;
    rq_tokenizer *tok = NULL;
    char *text = NULL;
    int32_t *ids = NULL, *win = NULL;
    int64_t n_ids = 0, text_len = 0;
    rq_params p = {0};
    rq_qat *qat = NULL;
    const char *src = a.data_ids ? a.data_ids : a.data;
    bool generate = !a.data_ids && !strcmp(a.data, "generate");
    /* the input files first: a bad one fails before the model loads */
    if (!generate && !cli_read_file(src, &text, &text_len)) goto done;
    if (!generate && text_len == 0) {
        cli_fail("%s: no tokens (empty file)", src);
        goto done;
    }
    if (a.data_ids && !cli_parse_ids(a.data_ids, text, &ids, &n_ids)) goto done;
    double t0 = rq_time_now();
    rq_model_load_opts lo = {.ref_linear = true};
    /* the tokenizer only where text is read or generated */
    if (rq_model_open(a.model, &g) != RQ_OK || rq_model_load_ex(g, &lo, &m) != RQ_OK ||
        (!a.data_ids && rq_tokenizer_load(g, &tok) != RQ_OK) || (a.wbits && rq_model_load_ex(g, &lo, &teacher) != RQ_OK)) {
        cli_fail_status();
        goto done;
    }
    if (!cli_mpi_same_model(g, a.model)) goto done;
    const rq_model_config *cf = &m->cfg;
    if (a.T > cf->n_ctx_train) {
        cli_fail("--seq-len %lld exceeds the model's context %lld", (long long)a.T, (long long)cf->n_ctx_train);
        goto done;
    }
    /* memory, before allocating anything large or writing anything: one window's activations
     * (the windows of a batch run one at a time, train/dp.h), the exact gradient sums (16 bytes
     * per parameter), per rank on this machine */
    int64_t need = rq_train_ctx_bytes_ex(cf, 1, a.T, &(rq_train_ctx_opts){.checkpoint_act = a.ckpt_act});
    int64_t avail = mem_available();
    if (a.wbits) need += a.T * cf->n_vocab * 4 + 8 * rq_model_n_params(m) * 4; /* teacher logits; latents, grads, moments, sums */
    else need += 7 * rq_model_n_params(m) * 4;                                  /* grads, moments, sums */
    need *= rq_mpi_local_size();
    if (need > avail) {
        cli_fail("--seq-len %lld needs about %.2f GiB%s, %.2f GiB of memory are available", (long long)a.T,
                 (double)need / (1 << 30), rq_mpi_local_size() > 1 ? " for the ranks on this machine" : "",
                 (double)avail / (1 << 30));
        goto done;
    }
    /* data: windows of T tokens */
    int64_t n_win = 0;
    if (generate) {
        if (rq_calib_generate(teacher ? teacher : m, tok, a.gen_seqs, a.T, (float)a.gen_temp, (uint64_t)a.seed, !a.quiet,
                              &win) != RQ_OK) {
            cli_fail_status();
            goto done;
        }
        n_win = a.gen_seqs;
    } else {
        if (!a.data_ids && rq_tokenizer_encode(tok, text, text_len, false, false, &ids, &n_ids) != RQ_OK) {
            cli_fail("%s: %s", src, rq_last_error());
            goto done;
        }
        if (n_ids == 0) {
            cli_fail("%s: no tokens", src);
            goto done;
        }
        for (int64_t i = 0; i < n_ids; i++)
            if (ids[i] < 0 || ids[i] >= cf->n_vocab) {
                cli_fail("%s: token id %d at index %lld is out of range [0, %lld)", src, ids[i], (long long)i,
                         (long long)cf->n_vocab);
                goto done;
            }
        n_win = n_ids / a.T;
        win = rq_alloc(n_win * a.T * (int64_t)sizeof(int32_t) + 4);
        if (!win) {
            cli_fail_status();
            goto done;
        }
        memcpy(win, ids, (size_t)(n_win * a.T) * sizeof(int32_t));
    }
    /* seeded shuffle of the windows, then the held-out split at the end */
    rq_rng rng;
    rq_rng_seed(&rng, (uint64_t)a.seed ^ 0x747261696eULL);
    int32_t *tmp = rq_xalloc(a.T * (int64_t)sizeof(int32_t));
    for (int64_t i = n_win - 1; i > 0; i--) {
        int64_t j = (int64_t)rq_rng_below(&rng, (uint64_t)(i + 1));
        memcpy(tmp, win + i * a.T, (size_t)a.T * 4), memcpy(win + i * a.T, win + j * a.T, (size_t)a.T * 4);
        memcpy(win + j * a.T, tmp, (size_t)a.T * 4);
    }
    rq_free(tmp);
    if (rq_mpi_size() > 1 &&
        rq_mpi_check_same(rq_hash64(win, n_win * a.T * (int64_t)sizeof(int32_t), 0), "train: the training windows") != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    int64_t n_val = (int64_t)(a.val_frac * (double)n_win + 0.5), n_train = n_win - n_val;
    if (n_train < 1 || (a.val_frac > 0 && n_val < a.B)) {
        cli_fail("%s: %lld sequences of %lld tokens: need at least 1 for training and --batch %lld held out "
                 "(--val-frac %.2f)", generate ? "generated data" : src, (long long)n_win, (long long)a.T,
                 (long long)a.B, a.val_frac);
        goto done;
    }
    if (rq_params_build(m, &p) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    p.p[rq_params_find(&p, m->tok_embd)].trainable = a.train_embd;
    if (a.wbits && rq_qat_new(&p, (int)a.wbits, a.group, (float)a.clip_init, &qat) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    if (r0 && a.save_init && rq_train_export(g, &p, a.save_init) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    char desc[512];
    if (!a.quiet)
        fprintf(stderr, "train %s: %s; loaded in %.1f s, %d threads\n  %s; %lld trainable parameters; data: %lld "
                "sequences of %lld tokens (%lld held out)\n", a.model, rq_model_config_describe(cf, desc, sizeof desc),
                rq_time_now() - t0, rq_threads_get(),
                qat ? "QAT distillation from the float model" : "fine-tuning (next-token cross-entropy)",
                (long long)rq_params_n_trainable(qat ? &qat->list : &p), (long long)n_win, (long long)a.T,
                (long long)n_val);
    rq_train_run_opts ro = {.n_seq = a.B, .T = a.T, .steps = a.steps, .eval_every = a.eval_every, .clip = a.clip,
                            .gamma = a.gamma, .seed = (uint64_t)a.seed, .checkpoint = a.ckpt, .resume = a.resume,
                            .progress = !a.quiet, .keep_best = a.keep_best, .checkpoint_act = a.ckpt_act,
                            .on_validation = print_validation,
                            .user = (void *)(qat ? "KL" : "loss")};
    ro.schedule = (rq_lr_schedule){.shape = a.schedule, .warmup = a.warmup, .total = a.steps, .min_ratio = 0};
    ro.group[RQ_PGROUP_LINEAR] = (rq_adamw_group){.lr = (float)a.lr, .weight_decay = (float)a.wd};
    ro.group[RQ_PGROUP_EMBED] = (rq_adamw_group){.lr = (float)a.lr};
    ro.group[RQ_PGROUP_NORM] = (rq_adamw_group){.lr = (float)a.lr_norm};
    ro.group[RQ_PGROUP_QUANT] = (rq_adamw_group){.lr = (float)a.lr_quant};
    rq_train_run_result res;
    if (rq_train_run(m, &p, qat, teacher, win, n_train, win + n_train * a.T, n_val, &ro, &res) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    if (!r0) { /* the same parameters as rank 0's, which writes them */
        rc = 0;
        goto done;
    }
    printf("trained steps %lld..%lld: %lld tokens in %.1f s, %.1f tokens/s, peak RSS %.0f MiB\n",
           (long long)res.step0, (long long)res.steps, (long long)res.tokens, res.seconds,
           res.seconds > 0 ? (double)res.tokens / res.seconds : 0.0, (double)rq_peak_rss_bytes() / (1024.0 * 1024.0));
    if (a.out && rq_train_export(g, &p, a.out) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    rc = 0;
done:
    rq_qat_free(qat);
    rq_params_free(&p);
    rq_free(win);
    rq_free(ids);
    rq_free(text);
    rq_tokenizer_free(tok);
    rq_model_free(teacher);
    rq_model_free(m);
    rq_gguf_close(g);
    return rc;
}
