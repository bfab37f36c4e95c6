/* Data-parallel training under MPI (train/dp.h), on the tiny random LLaMA (tests/tiny_llama.h):
 *   mpi_train DIR TAG full          fine-tune, QAT distillation, block-wise QAT
 *   mpi_train DIR TAG half          the fine-tune's first 2 of 4 steps, checkpoint DIR/TAG.ckpt
 *   mpi_train DIR TAG resume CKPT   the fine-tune resumed from CKPT up to step 4
 * Rank 0 writes DIR/tiny.gguf if it is missing, and for each run DIR/TAG.<run>.txt (every
 * validation and step loss, 17 digits) and DIR/TAG.<run>.bin (the trainable parameters
 * afterwards, raw float32). tests/mpi_cli.sh runs it alone and under mpirun -np 2 and 4 and
 * checks that the files are byte-identical: the losses and updates of a data-parallel run
 * do not depend on the rank count. Batches of 5 windows, so that the ranks' shares differ
 * (4 ranks: 2, 1, 1, 1). Built with -DRQ_MPI=ON only. */
#include "tiny_llama.h"

#include "base/mpi.h"
#include "model/model.h"
#include "train/blockwise.h"
#include "train/params.h"
#include "train/qat.h"
#include "train/run.h"

#include <unistd.h>

enum { T = 12, NW = 24, NSEQ = 5 };

static FILE *trace; /* rank 0's loss lines */

static void on_val(void *user, int64_t step, double train_loss, double val_loss) {
    (void)user;
    fprintf(trace, "step %lld train %.17g val %.17g\n", (long long)step, train_loss, val_loss);
}

static void open_out(const char *tag, const char *run) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s.%s.txt", tmpdir, tag, run);
    trace = fopen(rq_mpi_rank() == 0 ? path : "/dev/null", "w");
    RQ_ASSERT(trace);
}

/* the trainable entries of list, raw, then the trace closed */
static void close_out(const char *tag, const char *run, const rq_params *list) {
    fclose(trace);
    if (rq_mpi_rank() != 0) return;
    char path[600];
    snprintf(path, sizeof path, "%s/%s.%s.bin", tmpdir, tag, run);
    FILE *f = fopen(path, "wb");
    RQ_ASSERT(f);
    for (int64_t i = 0; i < list->count; i++)
        if (list->p[i].trainable) RQ_ASSERT(fwrite(list->p[i].data, sizeof(float), (size_t)list->p[i].n, f) == (size_t)list->p[i].n);
    RQ_ASSERT(fclose(f) == 0);
}

static void check(rq_status s, const char *what) {
    RQ_CHECK_MSG(s == RQ_OK, "rank %d: %s: %s", rq_mpi_rank(), what, rq_last_error());
    if (s != RQ_OK) rq_mpi_abort(1); /* the other ranks may wait in a collective */
}

/* the fine-tune (next-token cross-entropy): 4 steps, validation every step */
static void finetune(const char *model, const int32_t *win, const char *tag, const char *run, int64_t steps,
                     const char *ckpt, const char *resume) {
    rq_model *m;
    rq_params p;
    check(rq_model_load_file(model, &m), "load");
    check(rq_params_build(m, &p), "params");
    rq_train_run_opts o = {.n_seq = NSEQ, .T = T, .steps = steps, .eval_every = 1, .clip = 1, .seed = 9,
                           .checkpoint = ckpt, .resume = resume, .on_validation = on_val};
    o.schedule = (rq_lr_schedule){.shape = RQ_LR_COSINE, .total = 4};
    for (int gi = 0; gi < RQ_PGROUP_COUNT; gi++) o.group[gi] = (rq_adamw_group){.lr = 3e-3f, .weight_decay = 0.01f};
    rq_train_run_result r;
    open_out(tag, run);
    check(rq_train_run(m, &p, NULL, NULL, win, NW - NSEQ, win + (NW - NSEQ) * T, NSEQ, &o, &r), run);
    fprintf(trace, "end %lld val %.17g\n", (long long)r.steps, r.val_last);
    close_out(tag, run, &p);
    rq_params_free(&p);
    rq_model_free(m);
}

/* QAT of the block linears (2-bit LDP, per channel: `rotquant qat`'s quantizers): the
 * block-wise phase, then end-to-end distillation from the float model */
static void qat(const char *model, const int32_t *win, const char *tag) {
    rq_model *m, *teacher;
    rq_params p;
    rq_qat *q;
    check(rq_model_load_file(model, &m), "load");
    check(rq_model_load_file(model, &teacher), "load");
    check(rq_params_build(m, &p), "params");
    for (int64_t i = 0; i < p.count; i++) p.p[i].trainable = p.p[i].group == RQ_PGROUP_LINEAR && !strncmp(p.p[i].name, "blk.", 4);
    rq_qat_cfg qc = {.fq2 = true, .kind = RQ_FQ2_LDP, .group = 0, .init_logit = 4.0f};
    check(rq_qat_new_cfg(&p, &qc, &q), "qat");
    rq_blockwise_opts bo = {.n_seq = NSEQ, .T = T, .steps = 3, .clip = 1, .seed = 4};
    bo.group[RQ_PGROUP_LINEAR] = (rq_adamw_group){.lr = 1e-3f};
    bo.group[RQ_PGROUP_QUANT] = (rq_adamw_group){.lr = 1e-2f};
    bo.schedule = (rq_lr_schedule){.shape = RQ_LR_CONSTANT, .total = 3};
    rq_blockwise_result br;
    open_out(tag, "block");
    check(rq_blockwise_run(m, &p, q, teacher, win, NW - NSEQ, &bo, &br), "block-wise");
    fprintf(trace, "mse %.17g -> %.17g, %lld tokens\n", br.mse_first, br.mse_last, (long long)br.tokens);
    close_out(tag, "block", &q->list);
    rq_train_run_opts o = {.n_seq = NSEQ, .T = T, .steps = 3, .eval_every = 2, .clip = 1, .gamma = 0.3, .seed = 2,
                           .on_validation = on_val};
    o.schedule = (rq_lr_schedule){.shape = RQ_LR_CONSTANT, .total = 3};
    o.group[RQ_PGROUP_LINEAR] = (rq_adamw_group){.lr = 1e-3f};
    o.group[RQ_PGROUP_QUANT] = (rq_adamw_group){.lr = 1e-2f};
    rq_train_run_result r;
    open_out(tag, "qat");
    check(rq_train_run(m, &p, q, teacher, win, NW - NSEQ, win + (NW - NSEQ) * T, NSEQ, &o, &r), "QAT");
    fprintf(trace, "end val %.17g\n", r.val_last);
    close_out(tag, "qat", &q->list);
    rq_qat_free(q);
    rq_params_free(&p);
    rq_model_free(teacher);
    rq_model_free(m);
}

int main(int argc, char **argv) {
    (void)naive_forward; /* tiny_llama.h's float64 forward: not needed here */
    RQ_ASSERT(rq_mpi_init(&argc, &argv) == RQ_OK);
    if (argc < 4 || (!strcmp(argv[3], "resume") && argc != 5)) {
        fprintf(stderr, "usage: mpi_train DIR TAG full|half|resume CKPT\n");
        rq_mpi_abort(2);
    }
    snprintf(tmpdir, sizeof tmpdir, "%s", argv[1]);
    const char *tag = argv[2], *mode = argv[3];
    char model[512], ckpt[600];
    snprintf(model, sizeof model, "%s/tiny.gguf", tmpdir);
    if (rq_mpi_rank() == 0 && access(model, R_OK) != 0) {
        init_weights();
        write_tiny("tiny.gguf", (tiny_opts){0});
    }
    int done = 1; /* the others wait for rank 0's file */
    RQ_ASSERT(rq_mpi_bcast(&done, sizeof done, 0) == RQ_OK);
    /* the windows: seeded ids, the same on every rank */
    int32_t win[NW * T];
    rq_rng r;
    rq_rng_seed(&r, 21);
    for (int i = 0; i < NW * T; i++) win[i] = (int32_t)rq_rng_below(&r, V);
    snprintf(ckpt, sizeof ckpt, "%s/%s.ckpt", tmpdir, tag);
    if (!strcmp(mode, "full")) {
        finetune(model, win, tag, "train", 4, NULL, NULL);
        qat(model, win, tag);
    } else if (!strcmp(mode, "half")) {
        finetune(model, win, tag, "train", 2, ckpt, NULL);
    } else if (!strcmp(mode, "resume")) {
        finetune(model, win, tag, "train", 4, NULL, argv[4]);
    } else {
        fprintf(stderr, "mpi_train: unknown mode '%s'\n", mode);
        rq_mpi_abort(2);
    }
    int rc = rq_test_finish();
    if (rc) rq_mpi_abort(rc);
    rq_mpi_finalize();
    return 0;
}
