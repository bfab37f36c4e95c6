/* Folding rotations into the real model keeps its function (QuaRot's invariance): for
 * every rotation kind, the rotated float model's logits on a fixed input equal the
 * original's (relative L2 < FOLD_REL_TOL), and the folded model has unit norm scales. */
#include "testing.h"

#include "base/pool.h"
#include "model/model.h"
#include "model/fold.h"

#include <string.h>

/* float32 weights rotated by a float32 transform, then a 30-layer forward: rounding
 * differences of order 1e-6 per op accumulate; the brief's bound. */
#define FOLD_REL_TOL 1e-4
#define N_TOK 24

static const int32_t tokens[N_TOK] = {1,    504,  3458, 282,  253,  1690, 28,   378,  260,  2382, 30,  216,
                                      1206, 1361, 4162, 5250, 314,  260,  1646, 282,  9046, 33,   42, 2};

int main(void) {
    const char *path = rq_test_model_path();
    if (!path) RQ_SKIP("default model not present (scripts/fetch-model.sh)");
    rq_threads_set(0);
    rq_model *m;
    RQ_CHECK(rq_model_load_file(path, &m) == RQ_OK);
    float *ref = rq_test_logits(m, tokens, N_TOK);

    /* the layer-by-layer entry point (calibration) computes what the full forward does */
    {
        rq_state *a, *b;
        RQ_ASSERT(rq_state_new(m, N_TOK, N_TOK, false, &a) == RQ_OK && rq_state_new(m, N_TOK, N_TOK, false, &b) == RQ_OK);
        RQ_CHECK(rq_model_forward(a, tokens, N_TOK, 0, RQ_LOGITS_NONE) == RQ_OK);
        int64_t e = m->cfg.n_embd;
        for (int i = 0; i < N_TOK; i++) memcpy(b->x + i * e, m->tok_embd + (int64_t)tokens[i] * e, (size_t)e * sizeof(float));
        RQ_CHECK(rq_model_forward_layers(b, 0, 10, N_TOK, 0) == RQ_OK);
        RQ_CHECK(rq_model_forward_layers(b, 10, m->cfg.n_layer, N_TOK, 0) == RQ_OK);
        RQ_CHECK(rq_max_abs_diff(a->x, b->x, N_TOK * e) == 0);
        RQ_CHECK(rq_model_forward_layers(b, 3, 2, N_TOK, 0) == RQ_EINVAL);
        rq_state_free(a);
        rq_state_free(b);
    }
    int64_t n_log = N_TOK * m->cfg.n_vocab, n_embd = m->cfg.n_embd, hd = m->cfg.head_dim;
    rq_model_free(m);

    struct {
        rq_rot_kind k1;
        int64_t b1;
        rq_rot_kind k2;
        int64_t b2;
    } cases[] = {
        {RQ_ROT_NONE, 0, RQ_ROT_NONE, 0},        {RQ_ROT_HADAMARD, 0, RQ_ROT_HADAMARD, 0},
        {RQ_ROT_WALSH, 0, RQ_ROT_NONE, 0},       {RQ_ROT_GH, 64, RQ_ROT_GH, 32},
        {RQ_ROT_GSR, 64, RQ_ROT_GSR, 16},        {RQ_ROT_GSR, 32, RQ_ROT_WALSH, 0},
        {RQ_ROT_ORTHOGONAL, 0, RQ_ROT_ORTHOGONAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        RQ_CHECK(rq_model_load_file(path, &m) == RQ_OK);
        rq_rotation r1 = rq_rot_make(cases[i].k1, n_embd, cases[i].b1, 11 + i);
        rq_rotation r2 = rq_rot_make(cases[i].k2, hd, cases[i].b2, 23 + i);
        RQ_CHECK(rq_fold_model(m, &r1, &r2) == RQ_OK);
        bool unit = true;
        for (int64_t j = 0; j < n_embd; j++)
            unit &= m->output_norm[j] == 1.0f && m->layers[0].attn_norm[j] == 1.0f && m->layers[7].ffn_norm[j] == 1.0f;
        RQ_CHECK(unit);
        RQ_CHECK(!m->cfg.tied_embeddings && m->output.w != m->tok_embd);
        float *got = rq_test_logits(m, tokens, N_TOK);
        char d1[96], d2[96];
        double err = rq_rel_l2(got, ref, n_log);
        printf("R1 %-28s R2 %-28s rel L2 %.2e\n", rq_rot_describe(&r1, d1, sizeof d1), rq_rot_describe(&r2, d2, sizeof d2),
               err);
        RQ_CHECK_MSG(err < FOLD_REL_TOL, "fold %s/%s: rel L2 %g", d1, d2, err);
        free(got);
        rq_model_free(m);
    }
    /* a rotation of the wrong size is refused */
    RQ_CHECK(rq_model_load_file(path, &m) == RQ_OK);
    rq_rotation bad = rq_rot_make(RQ_ROT_GSR, 512, 64, 0);
    RQ_CHECK(rq_fold_model(m, &bad, NULL) == RQ_EINVAL);
    RQ_CHECK(strstr(rq_last_error(), "hidden size is 576") != NULL);
    rq_rotation good = rq_rot_make(RQ_ROT_GSR, 576, 64, 0);
    rq_rotation r2bad = rq_rot_make(RQ_ROT_GSR, 64, 48, 0); /* 48 does not divide 64 */
    RQ_CHECK(rq_fold_model(m, &good, &r2bad) != RQ_OK);
    rq_model_free(m);
    free(ref);
    return rq_test_finish();
}
