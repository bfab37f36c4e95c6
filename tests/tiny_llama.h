/* A tiny random LLaMA for tests: written as a GGUF with the writer API (options: another
 * architecture, a missing tensor, a transposed tensor, untied output, RoPE scaling), and
 * a naive float64 forward of it written from the formulas (no cache, every position).
 * Header-only (static functions); include from one test program each. */
#ifndef RQ_TESTS_TINY_LLAMA_H
#define RQ_TESTS_TINY_LLAMA_H

#include "testing.h"

#include "base/rng.h"
#include "base/status.h"
#include "format/format.h"
#include "io/gguf.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* directory for the files (set by the test's main) */
static char tmpdir[256];

/* ---- tiny model ---------------------------------------------------------------------- */

enum { V = 67, E = 48, H = 6, HK = 2, HD = 8, FF = 80, NL = 2 };
#define THETA 10000.0f
#define EPS 1e-5f

typedef struct {
    const char *arch;       /* general.architecture */
    const char *omit;       /* tensor to leave out */
    const char *bad_shape;  /* tensor written with a wrong shape */
    bool untied;            /* write output.weight */
    const char *scaling;    /* rope.scaling.type or NULL */
} tiny_opts;

/* Weights, kept for the naive forward: [out, in] row-major. */
static float w_emb[V * E], w_out[V * E], w_onorm[E];
static float w_anorm[NL][E], w_fnorm[NL][E];
static float w_q[NL][H * HD * E], w_k[NL][HK * HD * E], w_v[NL][HK * HD * E], w_o[NL][E * H * HD];
static float w_g[NL][FF * E], w_u[NL][FF * E], w_d[NL][E * FF];

static void fill(rq_rng *r, float *x, int64_t n, double scale, double offset) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(offset + scale * rq_rng_normal(r));
}

static void init_weights(void) {
    rq_rng r;
    rq_rng_seed(&r, 1234);
    fill(&r, w_emb, V * E, 1.0, 0);
    fill(&r, w_out, V * E, 0.3, 0);
    fill(&r, w_onorm, E, 0.1, 1);
    for (int l = 0; l < NL; l++) {
        fill(&r, w_anorm[l], E, 0.1, 1);
        fill(&r, w_fnorm[l], E, 0.1, 1);
        fill(&r, w_q[l], H * HD * E, 0.3, 0);
        fill(&r, w_k[l], HK * HD * E, 0.3, 0);
        fill(&r, w_v[l], HK * HD * E, 0.3, 0);
        fill(&r, w_o[l], E * H * HD, 0.2, 0);
        fill(&r, w_g[l], FF * E, 0.2, 0);
        fill(&r, w_u[l], FF * E, 0.2, 0);
        fill(&r, w_d[l], E * FF, 0.2, 0);
    }
}

static void add(rq_gguf_writer *w, const tiny_opts *o, const char *name, const float *data, int64_t ne0, int64_t ne1) {
    if (o->omit && !strcmp(o->omit, name)) return;
    int64_t ne[2] = {ne0, ne1};
    if (o->bad_shape && !strcmp(o->bad_shape, name)) {
        ne[0] = ne1; /* transposed */
        ne[1] = ne0;
    }
    int nd = ne1 == 1 ? 1 : 2;
    RQ_ASSERT(rq_gguf_writer_add_tensor(w, name, RQ_TYPE_F32, nd, ne, data, ne0 * ne1 * 4) == RQ_OK);
}

static const char *write_tiny(const char *file, tiny_opts o) {
    static char path[8][512];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, file);
    const char *arch = o.arch ? o.arch : "llama";
    char key[128];
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_str(w, "general.architecture", arch);
#define KEY(s) (snprintf(key, sizeof key, "%s.%s", arch, s), key)
    rq_gguf_writer_set_u32(w, KEY("block_count"), NL);
    rq_gguf_writer_set_u32(w, KEY("context_length"), 256);
    rq_gguf_writer_set_u32(w, KEY("embedding_length"), E);
    rq_gguf_writer_set_u32(w, KEY("feed_forward_length"), FF);
    rq_gguf_writer_set_u32(w, KEY("attention.head_count"), H);
    rq_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), HK);
    rq_gguf_writer_set_u32(w, KEY("attention.key_length"), HD);
    rq_gguf_writer_set_f32(w, KEY("rope.freq_base"), THETA);
    rq_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), EPS);
    if (o.scaling) {
        rq_gguf_writer_set_str(w, KEY("rope.scaling.type"), o.scaling);
        rq_gguf_writer_set_f32(w, KEY("rope.scaling.factor"), 4.0f);
    }
#undef KEY
    add(w, &o, "token_embd.weight", w_emb, E, V);
    add(w, &o, "output_norm.weight", w_onorm, E, 1);
    if (o.untied) add(w, &o, "output.weight", w_out, E, V);
    char name[NL][9][64];
    for (int l = 0; l < NL; l++) {
        const char *sfx[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                              "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
        for (int s = 0; s < 9; s++) snprintf(name[l][s], 64, "blk.%d.%s.weight", l, sfx[s]);
        add(w, &o, name[l][0], w_anorm[l], E, 1);
        add(w, &o, name[l][1], w_q[l], E, H * HD);
        add(w, &o, name[l][2], w_k[l], E, HK * HD);
        add(w, &o, name[l][3], w_v[l], E, HK * HD);
        add(w, &o, name[l][4], w_o[l], H * HD, E);
        add(w, &o, name[l][5], w_fnorm[l], E, 1);
        add(w, &o, name[l][6], w_g[l], E, FF);
        add(w, &o, name[l][7], w_u[l], E, FF);
        add(w, &o, name[l][8], w_d[l], FF, E);
    }
    RQ_ASSERT(rq_gguf_writer_write(w, p) == RQ_OK);
    rq_gguf_writer_free(w);
    return p;
}

/* ---- naive float64 forward of the tiny model (no cache, all positions) ---------------- */

static void mat(const double *x, const float *w, int out, int in, double *y) {
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) s += x[i] * w[o * in + i];
        y[o] = s;
    }
}

static void rms(const double *x, const float *g, double *y) {
    double ss = 0;
    for (int i = 0; i < E; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / E + EPS);
    for (int i = 0; i < E; i++) y[i] = x[i] * r * g[i];
}

/* rotate adjacent pairs: (x0 + i x1) · e^{i p θ_j} */
static void rope(double *x, int p, double freq_scale) {
    for (int j = 0; j < HD / 2; j++) {
        double a = p * freq_scale * pow(THETA, -2.0 * j / HD);
        double x0 = x[2 * j], x1 = x[2 * j + 1];
        x[2 * j] = x0 * cos(a) - x1 * sin(a);
        x[2 * j + 1] = x0 * sin(a) + x1 * cos(a);
    }
}

static void naive_forward(const int32_t *tok, int n, bool untied, double freq_scale, float *logits) {
    double *x = calloc((size_t)n * E, sizeof(double)), *xn = malloc(sizeof(double) * E);
    double *q = malloc(sizeof(double) * n * H * HD), *k = malloc(sizeof(double) * n * HK * HD);
    double *v = malloc(sizeof(double) * n * HK * HD), *att = malloc(sizeof(double) * H * HD);
    double *tmp = malloc(sizeof(double) * E), *g = malloc(sizeof(double) * FF), *u = malloc(sizeof(double) * FF);
    double *sc = malloc(sizeof(double) * n);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < E; i++) x[t * E + i] = w_emb[tok[t] * E + i];
    for (int l = 0; l < NL; l++) {
        for (int t = 0; t < n; t++) {
            rms(x + t * E, w_anorm[l], xn);
            mat(xn, w_q[l], H * HD, E, q + t * H * HD);
            mat(xn, w_k[l], HK * HD, E, k + t * HK * HD);
            mat(xn, w_v[l], HK * HD, E, v + t * HK * HD);
            for (int h = 0; h < H; h++) rope(q + t * H * HD + h * HD, t, freq_scale);
            for (int h = 0; h < HK; h++) rope(k + t * HK * HD + h * HD, t, freq_scale);
        }
        for (int t = 0; t < n; t++) {
            for (int h = 0; h < H; h++) {
                int kh = h / (H / HK);
                double mx = -1e300, sum = 0;
                for (int s = 0; s <= t; s++) {
                    double d = 0;
                    for (int i = 0; i < HD; i++) d += q[t * H * HD + h * HD + i] * k[s * HK * HD + kh * HD + i];
                    sc[s] = d / sqrt((double)HD);
                    if (sc[s] > mx) mx = sc[s];
                }
                for (int s = 0; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
                for (int i = 0; i < HD; i++) {
                    double o = 0;
                    for (int s = 0; s <= t; s++) o += sc[s] / sum * v[s * HK * HD + kh * HD + i];
                    att[h * HD + i] = o;
                }
            }
            mat(att, w_o[l], E, H * HD, tmp);
            for (int i = 0; i < E; i++) x[t * E + i] += tmp[i];
            rms(x + t * E, w_fnorm[l], xn);
            mat(xn, w_g[l], FF, E, g);
            mat(xn, w_u[l], FF, E, u);
            for (int i = 0; i < FF; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            mat(g, w_d[l], E, FF, tmp);
            for (int i = 0; i < E; i++) x[t * E + i] += tmp[i];
        }
    }
    double *lg = malloc(sizeof(double) * V);
    for (int t = 0; t < n; t++) {
        rms(x + t * E, w_onorm, xn);
        mat(xn, untied ? w_out : w_emb, V, E, lg);
        for (int i = 0; i < V; i++) logits[t * V + i] = (float)lg[i];
    }
    free(x), free(xn), free(q), free(k), free(v), free(att), free(tmp), free(g), free(u), free(sc), free(lg);
}

#endif
