/* The quantize pipeline under MPI, on the tiny random LLaMA (tests/tiny_llama.h):
 *   mpi_quant DIR TAG
 * rank 0 writes DIR/tiny.gguf and DIR/ids.txt (calibration ids: 7 sequences of 24, an odd
 * count so that the ranks' shares differ), then every rank runs rq_quant_run for two
 * configurations (W2 GPTQ uniform, act-order and fitted groups; W3 GPTQ with A4
 * KV4 quantizers in place during calibration) into DIR/TAG.w2.gguf and DIR/TAG.a4.gguf.
 * tests/mpi_cli.sh runs it alone and under mpirun -np 2 and 4 and checks that the files are
 * byte-identical (codes, parameters and metadata). Built with -DRQ_MPI=ON only. */
#include "tiny_llama.h"

#include "base/mpi.h"
#include "quant/pipeline.h"

static void quantize(const char *model, const char *ids, const char *out, int wbits, int abits) {
    rq_quant_opts o = rq_quant_opts_default();
    o.wbits = wbits, o.group = 16, o.abits = abits, o.kvbits = abits == 16 ? 16 : 4;
    o.rotate = RQ_ROT_GSR, o.embd_type = "f32", o.seed = 3, o.calib_ids = ids;
    rq_quant_result r;
    rq_status s = rq_quant_run(model, out, &o, &r);
    RQ_CHECK_MSG(s == RQ_OK, "rank %d: %s: %s", rq_mpi_rank(), out, rq_last_error());
}

int main(int argc, char **argv) {
    (void)naive_forward; /* tiny_llama.h's float64 forward: not needed here */
    RQ_ASSERT(rq_mpi_init(&argc, &argv) == RQ_OK);
    if (argc != 3) {
        fprintf(stderr, "usage: mpi_quant DIR TAG\n");
        rq_mpi_abort(2);
    }
    snprintf(tmpdir, sizeof tmpdir, "%s", argv[1]);
    init_weights();
    char ids[512], out[512];
    snprintf(ids, sizeof ids, "%s/ids.txt", tmpdir);
    const char *model = NULL;
    if (rq_mpi_rank() == 0) {
        model = write_tiny("tiny.gguf", (tiny_opts){0});
        int32_t calib[7 * 24];
        rq_rng r;
        rq_rng_seed(&r, 11);
        for (int i = 0; i < 7 * 24; i++) calib[i] = (int32_t)rq_rng_below(&r, V);
        RQ_ASSERT(rq_quant_calib_ids_write(ids, calib, 7, 24) == RQ_OK);
    }
    int done = 1; /* the others wait for rank 0's files */
    RQ_ASSERT(rq_mpi_bcast(&done, sizeof done, 0) == RQ_OK);
    char model_path[512];
    snprintf(model_path, sizeof model_path, "%s/tiny.gguf", tmpdir);
    RQ_ASSERT(!model || !strcmp(model, model_path));
    snprintf(out, sizeof out, "%s/%s.w2.gguf", tmpdir, argv[2]);
    quantize(model_path, ids, out, 2, 16);
    snprintf(out, sizeof out, "%s/%s.a4.gguf", tmpdir, argv[2]);
    quantize(model_path, ids, out, 3, 4);
    int rc = rq_test_finish();
    if (rc) rq_mpi_abort(rc);
    rq_mpi_finalize();
    return 0;
}
