/* Shared helpers of the CLI commands. */
#ifndef RQ_TOOLS_CLI_H
#define RQ_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>

#define RQ_VERSION "0.1.0"

int cmd_version(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_detok(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_qat(int argc, char **argv);
int cmd_rotlearn(int argc, char **argv);

/* Print "rotquant: error: <msg>" to stderr and return exit code 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the library's last error as "rotquant: error: ..." and return 1. */
int cli_fail_status(void);
/* Strict number parsing of an option's value; false (with an error printed) if bad. */
bool cli_parse_int(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out);
bool cli_parse_float(const char *opt, const char *s, double lo, double hi, double *out);

/* --abits: 16 (float), 8 or 4; --kvbits: 16 (float) or 4 (format/abits.h; false with an
 * error printed otherwise). */
bool cli_parse_abits(const char *opt, const char *s, int64_t *out);
bool cli_parse_kvbits(const char *opt, const char *s, int64_t *out);
/* --r1-route: auto, residual or linear (quant/pipeline.h rq_r1_route, as an int); false after
 * printing the error */
bool cli_parse_r1_route(const char *s, int *out);
/* --a16 exact|q8: how the packed 2-bit kernels take float activations (kernels/gemv.h,
 * rq_lowbit_a16); sets the process-wide kernel tuning. False with an error printed. */
bool cli_parse_a16(const char *opt, const char *s);
/* Size the thread pool (0 = the cores present) and give OpenBLAS the same count; first
 * let OpenBLAS use its AVX-512 kernels where it would not (model/blas.h). */
void cli_threads_set(int64_t n);
/* Parse a list of token ids "1,2 3" (commas and/or blanks); *ids owned by the caller
 * (rq_free). False (with an error printed) if malformed or empty. */
bool cli_parse_ids(const char *opt, const char *s, int32_t **ids, int64_t *n);
/* Read a whole file into a NUL-terminated buffer (rq_free); false with an error printed. */
bool cli_read_file(const char *path, char **data, int64_t *len);
/* Read a file of token ids (cli_parse_ids over its whole text); *ids owned by the caller
 * (rq_free). false after printing the error. */
bool cli_read_ids(const char *path, int32_t **ids, int64_t *n);
/* Check, before any long work, that each output path (NULL entries skipped) can be
 * written (io/atomic_file.h: absent or a regular file, a temporary can be created beside
 * it) and that no two are the same; false with an error printed otherwise. */
bool cli_check_outputs(const char *const *paths, int n);

/* The options of the quantization front half that quantize and export share: rotations
 * (--rotate, --rotate2, --rotation-file, --compose, --block, --block2), GPTQ (--method,
 * --damp, --hessian-shrink, --act-order, --fit-importance and their --no- forms),
 * calibration (--calib, --calib-ids, --calib-save, --calib-n, --calib-len), --seed, -t.
 * The names are kept for cli_quant_args_finish; the other values go straight into *o,
 * which holds the command's defaults. */
struct rq_quant_opts;
struct cli_quant_args {
    struct rq_quant_opts *o;                          /* the command's options, not owned */
    const char *rotate, *rotate2, *compose, *method; /* names (argv's or the defaults) */
    int64_t calib_n, calib_len;                       /* 0: not given (the library's defaults) */
    int64_t seed, threads;                            /* threads 0: all cores (cli_threads_set) */
};
/* rotate gsr, rotate2 none, compose none, method gptq, the numbers 0; parsing into o. */
struct cli_quant_args cli_quant_args_default(struct rq_quant_opts *o);
/* One shared option at argv[*i]: 1 if it was one (its value consumed, *i advanced), 0 if
 * not one of them, -1 after printing an error. */
int cli_parse_quant_opt(int argc, char **argv, int *i, struct cli_quant_args *qa);
/* After the loop: the method and rotation names into qa->o's enums, and calib_n, calib_len,
 * seed into qa->o; false with an error printed (bad --method first, then the kinds). */
bool cli_quant_args_finish(const struct cli_quant_args *qa);

/* Under MPI (base/mpi.h): check that every rank opened the same model (io/gguf_hash.h);
 * false with the error (naming the rank that differs) printed otherwise. True alone. */
struct rq_gguf;
bool cli_mpi_same_model(const struct rq_gguf *g, const char *path);

#endif
