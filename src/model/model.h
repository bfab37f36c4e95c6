/* The model: configuration from GGUF metadata, weights, run state with the KV cache, and
 * the ONE forward pass that inference, perplexity, calibration and (later) training share.
 *
 * Architecture handled now: LLaMA (general.architecture = "llama"): token embedding,
 * n_layer × { RMSNorm → q/k/v → RoPE (adjacent pairs (2i, 2i+1), the pairing of GGUF's
 * permuted q/k rows) → causal GQA attention → o, residual; RMSNorm → SwiGLU MLP,
 * residual }, final RMSNorm, lm_head (tied to the embedding when the file has no
 * output.weight).
 * Gemma-3 (general.architecture = "gemma3") runs through the same layer function, switched by
 * the fields of rq_model_config below: token embeddings × √n_embd; per layer RMSNorm → q/k/v
 * → per-head RMSNorm of q and k (q_norm/k_norm, over head_dim) → RoPE on the NEOX pairing
 * (i, i + rope_dim/2) → attention (scale 1/√head_dim; sliding window on the local layers,
 * whose RoPE base is rope_theta_swa) → o → RMSNorm (post_attention_norm) → residual add;
 * RMSNorm → GELU(tanh)(gate)·up → down → RMSNorm (post_ffw_norm) → residual add; final
 * RMSNorm; lm_head tied. The GGUF holds Gemma's norm scales as (1 + w) already (llama.cpp's
 * converter adds the 1), so every RMSNorm multiplies by the stored vector as it is. No
 * logit soft-capping (Gemma-3 has none; a file asking for it is refused).
 *
 * Conventions: row-major; a linear layer stored [out, in] computes y = x·Wᵀ; activations
 * are rows [n_tokens, dim]. */
#ifndef RQ_MODEL_MODEL_H
#define RQ_MODEL_MODEL_H

#include "base/status.h"
#include "io/gguf.h"
#include "kernels/actq.h"
#include "kernels/vmath.h"
#include "rotate/rotation.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum rq_arch {
    RQ_ARCH_LLAMA = 0,
    RQ_ARCH_GEMMA3 = 1, /* "gemma3": the text model of Gemma 3 (enums only grow at the end) */
    RQ_ARCH_COUNT
} rq_arch;

typedef enum rq_rope_scaling {
    RQ_ROPE_SCALING_NONE = 0,
    RQ_ROPE_SCALING_LINEAR = 1, /* positions multiplied by rope_freq_scale = 1/factor */
} rq_rope_scaling;

typedef struct rq_model_config {
    rq_arch arch;
    int64_t n_vocab;
    int64_t n_embd;      /* residual width */
    int64_t n_layer;
    int64_t n_head;      /* query heads */
    int64_t n_head_kv;   /* key/value heads (GQA: n_head % n_head_kv == 0) */
    int64_t head_dim;    /* per head, for q, k and v */
    int64_t n_ff;        /* MLP hidden width */
    int64_t n_ctx_train; /* context length the model was trained for (informational) */
    int64_t rope_dim;    /* leading dims of each head that RoPE rotates (even, <= head_dim) */
    float rope_theta;    /* base of the frequencies theta_i = base^(-2i/rope_dim) */
    rq_rope_scaling rope_scaling;
    float rope_freq_scale;   /* 1 when no scaling */
    bool has_rope_freqs;     /* per-frequency divisors from the rope_freqs.weight tensor */
    float rms_eps;
    bool tied_embeddings;    /* no output.weight: lm_head is the token embedding */
    /* Architecture switches of the one forward pass (LLaMA: 1, 1/√head_dim, and all off). */
    float embd_scale;        /* token embeddings are multiplied by this (Gemma-3: √n_embd) */
    float attn_scale;        /* scale of q·kᵀ (1/√head_dim) */
    bool rope_neox;          /* RoPE pairs (i, i + rope_dim/2) instead of (2i, 2i+1) */
    bool qk_norm;            /* per-head RMSNorm of q and k (before RoPE), layers' q_norm/k_norm */
    bool post_norms;         /* RMSNorm of the attention and MLP outputs before the residual add */
    bool ffn_gelu;           /* MLP GELU(tanh approximation)(gate)·up instead of SiLU(gate)·up */
    int64_t sliding_window;  /* 0: none; else a local layer's query at position p sees keys
                              * at positions (p − sliding_window, p] */
    int64_t swa_pattern;     /* with a window: layer l is local iff l % swa_pattern <
                              * swa_pattern − 1 (Gemma-3: 6, every 6th layer global) */
    float rope_theta_swa;    /* RoPE base of the local layers (Gemma-3: 10000) */
} rq_model_config;

/* True when layer l uses the sliding window (and rope_theta_swa). */
static inline bool rq_model_layer_is_swa(const rq_model_config *c, int64_t l) {
    return c->sliding_window > 0 && l % c->swa_pattern < c->swa_pattern - 1;
}

/* A linear layer y = x·Wᵀ. Kind F32 holds a float matrix (float models, and the
 * reference path for quantized files); the packed kinds hold the file's quantized rows and
 * run the kernels of src/kernels on them, never materializing the float matrix:
 *   W2U / W2L  2-bit uniform / LUT blocks (format/lowbit.h), repacked at load from a rotquant
 *              file's N.codes/N.params (format/qpacked.h); rq_lowbit_gemm (kernels/gemv.h)
 *   W4U        4-bit uniform blocks (format/lowbit.h), the same way
 *   GGUF       rows in a GGUF block type as stored (Q8_0, F16, ...): the lm_head of
 *              rotquant files; Q8_0 GEMV for one token (kernels/qgemv.h), otherwise
 *              tiles of rows dequantized and multiplied with BLAS.
 * Enums only grow at the end. */
typedef enum rq_linear_kind {
    RQ_LINEAR_F32 = 0,
    RQ_LINEAR_W2U = 1,
    RQ_LINEAR_W2L = 2,
    RQ_LINEAR_GGUF = 3,
    RQ_LINEAR_W4U = 4,
} rq_linear_kind;

/* True for the kinds that run the packed-weight kernels of kernels/gemv.h (W2U, W2L, W4U). */
static inline bool rq_linear_kind_lowbit(rq_linear_kind k) {
    return k == RQ_LINEAR_W2U || k == RQ_LINEAR_W2L || k == RQ_LINEAR_W4U;
}

typedef struct rq_linear {
    rq_linear_kind kind;
    int64_t n_out, n_in;
    float *w;    /* [n_out, n_in] (kind F32) */
    bool owns_w; /* false when shared (tied lm_head): then neither w nor data is freed */
    int type;          /* packed kinds: rq_type of the rows (RQ_TYPE_W2U_G64, RQ_TYPE_W4U_G128, RQ_TYPE_Q8_0, ...) */
    void *data;        /* packed kinds: [n_out] rows of row_bytes each */
    int64_t row_bytes;
    /* 8 or 4: this (W2U/W2L/W4U) layer quantizes its input rows itself, per token, symmetric, in
     * the integer kernels (format/act.h); 0: its input arrives as it should be used (float,
     * or already fake-quantized by the forward pass). Derived from the model's activation
     * quantizer by rq_model_set_online; not to be set directly. */
    int act_bits;
    /* GGUF Q8_0 lm_head under RQ_LOWBIT_A16_Q8 (kernels/gemv.h): its rows repacked for the
     * int8 GEMV (kernels/qgemv.h's R16 layout; rq_linear_prepare_q8), owned, freed with the
     * model whatever owns_w says; NULL otherwise */
    void *q8r16;
} rq_linear;

typedef struct rq_layer {
    float *attn_norm; /* [n_embd] */
    rq_linear wq;     /* [n_head·head_dim, n_embd] */
    rq_linear wk;     /* [n_head_kv·head_dim, n_embd] */
    rq_linear wv;     /* [n_head_kv·head_dim, n_embd] */
    rq_linear wo;     /* [n_embd, n_head·head_dim] */
    float *ffn_norm;  /* [n_embd] */
    rq_linear w_gate; /* [n_ff, n_embd] */
    rq_linear w_up;   /* [n_ff, n_embd] */
    rq_linear w_down; /* [n_embd, n_ff] */
    /* Gemma-3 only (NULL otherwise): */
    float *q_norm;    /* [head_dim] per-head RMSNorm of q (cfg.qk_norm) */
    float *k_norm;    /* [head_dim] per-head RMSNorm of k */
    float *post_attn_norm; /* [n_embd] RMSNorm of o's output (cfg.post_norms) */
    float *post_ffn_norm;  /* [n_embd] RMSNorm of down's output */
} rq_layer;

/* Run-time quantizers and online rotations (QuaRot's W/A/KV set-up, METHODS.md steps 4
 * and 5 of "Folding rotations"), applied by the forward pass:
 *   - act: the input of every linear of a block (q, k, v, o, gate, up, down) is
 *     fake-quantized per token (kernels/actq.h) just before the linear; lm_head is not;
 *   - R3 [head_dim]: q and k of every head after RoPE: q ← q·R3, k ← k·R3 (q·kᵀ is
 *     unchanged, so R3 only matters for the quantized keys);
 *   - R4 [n_ff]: the input of down: h ← h·R4 (before its quantizer). R4 must ALSO be
 *     folded into the weights (W_down ← W_down·R4, rq_fold_r4 in model/fold.h) — the
 *     file loader assumes it was (rotquant files record R4 only once folded);
 *   - KV cache: keys (after R3) and values stored 4-bit packed (format/kv.h), one scale
 *     and zero point per token per group of kv_group channels (default head_dim).
 * Rotations are applied with prepared fast transforms (rq_rot_apply); only a learned Ri is
 * dense (cblas). */
typedef struct rq_online_cfg {
    rq_actq act;          /* act.bits 0: float activations (run-time encoding, format/abits.h) */
    int kv_bits;          /* 0: float cache; 4: packed 4-bit (run-time encoding) */
    int64_t kv_group;     /* channels per scale/zero (0: head_dim) */
    float kv_clip;        /* clip ratio of the KV quantizer (0: 1.0) */
    rq_rotation r3, r4;   /* kind none when absent; hadamard, walsh, gh or gsr otherwise */
    /* R1 through post-norms (METHODS.md "Rotations through post-norms"), kind none when absent:
     *   - r1 [n_embd], route (a), post-norm models only: R1 is folded everywhere but the output
     *     side of o and down (rq_fold_model), and the post-attention and post-FFN norms' outputs
     *     are rotated here, y ← y·R1, right before the residual add;
     *   - ri [n_embd], route (b), any model: the normed input of q/k/v and of gate/up ← ·Ri,
     *     ro [n_head·head_dim]: o's input ← ·Ro (after R2, before the activation quantizer);
     *     their inverses folded into those linears (rq_fold_inputs). Down's is R4.
     *     ri may be learned (a dense matrix applied with cblas: rotquant rotlearn on a post-norm
     *     model): ri_matrix then gives it [n_embd, n_embd] (copied into the model's plan; NULL
     *     keeps the learned matrix the model already applies). */
    rq_rotation r1, ri, ro;
    const float *ri_matrix;
} rq_online_cfg;

typedef struct rq_online {
    rq_online_cfg cfg;     /* validated, kv_group/kv_clip resolved */
    rq_rot_plan *p3, *p4;  /* NULL when the rotation is none; owned by the model */
    rq_rot_plan *p1, *pi, *po; /* likewise, of r1, ri, ro */
    bool kv_fake;          /* tests: keep a float cache holding the dequantized values
                            * instead of the packed one (read when a state is created) */
} rq_online;

typedef struct rq_model {
    rq_model_config cfg;
    float *tok_embd;    /* [n_vocab, n_embd]; NULL when embd holds the embedding packed */
    rq_linear embd;     /* the token embedding kept as stored (kind GGUF, [n_vocab, n_embd]) when
                         * tok_embd is NULL: quantized files on the fast path; rows are
                         * dequantized on lookup (rq_model_embed) */
    rq_layer *layers;   /* [n_layer] */
    float *output_norm; /* [n_embd] */
    rq_linear output;   /* [n_vocab, n_embd]; w == tok_embd (or data == embd.data) when tied */
    float *rope_freqs;  /* [rope_dim/2] divisors of the frequencies, or NULL */
    rq_online online;   /* run-time quantizers and online rotations (all off by default) */
    int64_t file_bytes; /* size of the file it was loaded from (0: built in memory); bounds
                         * the state one position may need (rq_state_new) */
} rq_model;

/* Read and validate the configuration from a GGUF's metadata. Errors: unsupported
 * architecture, missing/invalid keys (message names the key). */
rq_status rq_model_config_read(const rq_gguf *g, rq_model_config *cfg);

/* One line on the configuration, e.g. "gemma3: 18 layers, n_embd 640, 4 heads (1 KV) × 256,
 * n_ff 2048 GELU, vocab 262144 tied, RoPE neox base 1e+06, sliding window 512 on 5 of every 6
 * layers (RoPE base 10000), q/k norms, post norms, embedding × 25.3". Writes into buf (n
 * bytes, always terminated), returns buf. */
const char *rq_model_config_describe(const rq_model_config *c, char *buf, size_t n);

/* Load a model: config, then the weights. Tensors are checked for presence ("missing
 * tensor 'blk.3.attn_q.weight'") and shape. Plain GGUF files: every weight dequantized to
 * float32. rotquant's quantized files (model/qinfo.h): the fast path by default (2-bit
 * linears and 4-bit uniform ones with groups of 32/64/128 kept packed as W2U/W2L/W4U
 * kinds, the token embedding and lm_head kept in their stored type as kind GGUF; other
 * widths (3, 8 bits) and groups dequantized),
 * or the reference path (everything dequantized to float32, as for plain files) when
 * opts->ref_linear or the environment has RQ_REF_LINEAR=1. The tensor pages of the file
 * mapping are released from the resident set afterwards (rq_gguf_release_pages).
 * *out is owned by the caller (rq_model_free); it does not reference the rq_gguf
 * afterwards. opts may be NULL (defaults: all false). */
typedef struct rq_model_load_opts {
    bool ref_linear; /* dequantize every quantized weight to float32 (the reference path) */
} rq_model_load_opts;
rq_status rq_model_load_ex(const rq_gguf *g, const rq_model_load_opts *opts, rq_model **out);
/* rq_model_load_ex with default options. */
rq_status rq_model_load(const rq_gguf *g, rq_model **out);
/* Convenience: open the file, load (default options), close. */
rq_status rq_model_load_file(const char *path, rq_model **out);
void rq_model_free(rq_model *m);
/* Number of weight parameters (tied embedding counted once). */
int64_t rq_model_n_params(const rq_model *m);
/* Bytes the model's weights occupy in memory (float, packed and norm vectors; a tied
 * lm_head counted once). */
int64_t rq_model_weight_bytes(const rq_model *m);
/* One line on how the weights are held, e.g. "blocks: 210 W2U_G64; lm_head Q8_0; embedding
 * Q8_0; 90.1 MiB of weights; activations A8". Writes into buf (n bytes), returns buf. */
const char *rq_model_describe(const rq_model *m, char *buf, size_t n);
/* Per-token symmetric activation quantizer without clipping, `abits` (a setting,
 * format/abits.h: 16 = float, 8 or 4), on the inputs of every linear of the blocks (q, k, v, o, gate, up, down; not the
 * lm_head), keeping the rest of the online configuration: rq_model_set_online with
 * act = {act_bits, symmetric, clip 1}. Packed W2U/W2L/W4U linears then run the integer kernels.
 * RQ_EINVAL for other values. */
rq_status rq_model_set_act_bits(rq_model *m, int abits);
/* Token embeddings: x[i, :] = row tokens[i] of the embedding (float or dequantized) times
 * cfg.embd_scale (when not 1), for i < n; x [n, n_embd]. Token ids must be in range (asserted). */
void rq_model_embed(const rq_model *m, const int32_t *tokens, int64_t n, float *x);

/* Set the run-time quantizers and online rotations (replacing earlier ones; the plans
 * are owned by the model). Checks (RQ_EINVAL / RQ_EUNSUPPORTED, message naming the
 * value): act bits 0, 4 or 8 and clip in (0, 1]; kv bits 0 or 4, kv_group dividing
 * head_dim and a multiple of 8, kv_clip in (0, 1]; r3.n == head_dim, r4.n == n_ff,
 * kinds none/hadamard/walsh/gh/gsr with a block that divides n (rq_rot_validate); r1.n ==
 * n_embd on a post-norm model only (RQ_EINVAL otherwise), ri.n == n_embd, ro.n ==
 * n_head·head_dim. Does not touch the weights (see rq_fold_r4, rq_fold_model, rq_fold_inputs).
 * States created before must not be used after. */
rq_status rq_model_set_online(rq_model *m, const rq_online_cfg *cfg);
/* "A4 asym clip 0.90, KV4 g64, R3 gsr(n=64, block=64), R4 none" (buf, always terminated). */
const char *rq_online_describe(const rq_online_cfg *cfg, char *buf, size_t n);
/* Release the plans (rq_model_free does this). */
void rq_online_free(rq_online *o);

/* ---- linear layers ------------------------------------------------------------------ */

/* y[n, ldy] (first n_out columns) = x[n, n_in]·Wᵀ (+ y when accumulate). Multithreaded
 * over the pool: n == 1 uses GEMV over row blocks, n > 1 GEMM over column blocks.
 * Threads: the work is split over OUR pool, each piece calling single-threaded BLAS
 * (OpenBLAS's thread count is set to 1 for the duration and restored), so that the two
 * thread pools never spin against each other. */
void rq_linear_forward(const rq_linear *l, const float *x, int64_t n, float *y, int64_t ldy, bool accumulate);
/* Only output columns [c0, c1) of the above, on the calling thread (with whatever BLAS
 * threading is set): the building block for callers that fuse several linears (and
 * their epilogues) into one parallel region. */
void rq_linear_forward_cols(const rq_linear *l, const float *x, int64_t n, int64_t c0, int64_t c1, float *y,
                            int64_t ldy, bool accumulate);

/* Under RQ_LOWBIT_A16_Q8 (the tuning at the time of the call) a GGUF Q8_0 layer with a multiple
 * of 16 rows gets its rows repacked for the int8 GEMV (l->q8r16: as many bytes again as the
 * Q8_0 rows), which one-token forwards then use; otherwise nothing happens. The model loader
 * calls it for the lm_head. RQ_ENOMEM if the copy cannot be allocated. */
rq_status rq_linear_prepare_q8(rq_linear *l);

/* Batches of at least this many tokens run W2U/W2L/W4U layers as dequantized tiles + SGEMM, smaller
 * ones on the low-bit kernels (model/linear.c explains the measured choice; default 8, or
 * RQ_LOWBIT_DEQUANT_MIN from the environment). Process-wide; not to be changed while a
 * forward runs. 0 restores the default; INT64_MAX keeps the low-bit kernels for every batch. */
void rq_linear_set_lowbit_dequant_min(int64_t tokens);

/* ---- run state ---------------------------------------------------------------------- */

/* Points of the forward pass a hook can observe (calibration capture, tests). The four
 * linear-input sites show exactly what the linears receive: after the online rotation
 * (R4 for down) and the activation quantizer, when those are set (rq_model_set_online),
 * so that GPTQ's Hessians are those of the deployed model's inputs. */
typedef enum rq_site {
    RQ_SITE_ATTN_IN = 0, /* normed input of q/k/v   [n, n_embd] */
    RQ_SITE_ATTN_OUT,    /* input of o              [n, n_head·head_dim] */
    RQ_SITE_FFN_IN,      /* normed input of gate/up [n, n_embd] */
    RQ_SITE_FFN_DOWN,    /* input of down           [n, n_ff] */
    RQ_SITE_RESIDUAL,    /* residual after the layer [n, n_embd] */
    RQ_SITE_COUNT
} rq_site;
typedef void (*rq_forward_hook)(void *user, int64_t layer, rq_site site, const float *x, int64_t n, int64_t dim);

typedef enum rq_logits_mode {
    RQ_LOGITS_NONE = 0, /* only the final normed hidden states (st->hidden) */
    RQ_LOGITS_LAST = 1, /* logits of the batch's last token: st->logits [1, n_vocab] */
    RQ_LOGITS_ALL = 2,  /* logits of every token: st->logits [n, n_vocab] */
} rq_logits_mode;

/* Activations saved for training (llm.c's pattern): when a state's `acts` is set, the one
 * forward pass copies into these buffers what each layer's backward needs (src/train/);
 * inference and calibration leave it NULL and pay nothing. Rows are the batch's n tokens
 * (n <= n_rows). Allocated and owned by src/train (train/backward.h). With the online
 * quantizers and rotations on (rq_model_set_online) the saved tensors are the values BEFORE
 * each quantizer and before R3 (q, k, v, att, the normed inputs recomputed from x_in), so
 * that the backward can recompute the quantizers' decisions bit for bit; down_in is the one
 * addition it needs. Several entries of `layers` may share one buffer (a block-wise context
 * holds one layer's activations). */
typedef struct rq_layer_acts {
    float *x_in;     /* [n, n_embd] residual stream entering the layer */
    float *q_pre;    /* [n, n_head·head_dim] q before its per-head norm (cfg.qk_norm; else NULL) */
    float *k_pre;    /* [n, n_head_kv·head_dim] k before its per-head norm (cfg.qk_norm; else NULL) */
    float *q;        /* [n, n_head·head_dim] q after norm and RoPE */
    float *k;        /* [n, n_head_kv·head_dim] k after norm and RoPE */
    float *v;        /* [n, n_head_kv·head_dim] */
    float *att;      /* [n, n_head·head_dim] attention output, the input of o */
    float *o_out;    /* [n, n_embd] o's output before post_attn_norm (cfg.post_norms; else NULL) */
    float *x_mid;    /* [n, n_embd] residual stream after the attention block */
    float *gate;     /* [n, n_ff] gate's output before the activation */
    float *up;       /* [n, n_ff] up's output */
    float *down_out; /* [n, n_embd] down's output before post_ffn_norm (cfg.post_norms; else NULL) */
    float *down_in;  /* [n, n_ff] the input of down after R4, before the activation quantizer
                      * (saved when not NULL: training with an activation quantizer) */
} rq_layer_acts;

typedef struct rq_model_acts {
    int64_t n_rows;        /* capacity in token rows */
    rq_layer_acts *layers; /* [n_layer] */
    float *x_final;        /* [n, n_embd] residual stream entering the final norm */
} rq_model_acts;

typedef struct rq_state {
    const rq_model *model;
    int64_t n_ctx;   /* KV cache capacity in positions */
    int64_t n_batch; /* most tokens one forward call takes */
    int64_t n_past;  /* positions filled in the cache by the last forward */
    /* KV cache: K and V of layer l at position p start at [(l·n_ctx + p)·kv_dim]. */
    float *k_cache; /* [n_layer, n_ctx, n_head_kv·head_dim] (NULL when packed) */
    float *v_cache; /* [n_layer, n_ctx, n_head_kv·head_dim] (NULL when packed) */
    /* Packed 4-bit cache (model online.kv_bits == 4, not kv_fake): row (l, p) at byte
     * (l·n_ctx + p)·kv_row_bytes, layout format/kv.h. */
    uint8_t *kq_cache, *vq_cache; /* [n_layer, n_ctx, kv_row_bytes] */
    int64_t kv_row_bytes;
    float *k_new, *v_new; /* [n_batch, kv_dim] the batch's K/V before packing */
    float *k_deq, *v_deq; /* [n_ctx, kv_dim] one layer's cache dequantized for attention */
    float *rope_cos, *rope_sin; /* [n_ctx, rope_dim/2] */
    float *rope_cos_swa, *rope_sin_swa; /* [n_ctx, rope_dim/2] local layers' (base rope_theta_swa);
                                         * NULL without a sliding window */
    /* activations */
    float *x;      /* [n_batch, n_embd] residual stream */
    float *xn;     /* [n_batch, n_embd] normed */
    float *q;      /* [n_batch, n_head·head_dim] */
    float *att;    /* [n_batch, n_head·head_dim] */
    float *gate;   /* [n_batch, n_ff] */
    float *up;     /* [n_batch, n_ff] */
    float *hidden; /* [n_batch, n_embd] after the final norm */
    float *logits; /* [n_logits_rows, n_vocab] */
    int64_t n_logits_rows; /* capacity of logits in rows */
    float *scores; /* [n_threads, ATT_BLOCK, scores_keys] attention scratch */
    int n_threads_alloc;
    int64_t scores_keys; /* keys per score row the scratch has room for */
    const rq_vmath *vm; /* vector kernels of the current forward call */
    rq_forward_hook hook;
    void *hook_user;
    /* tree batches (rq_model_forward_tree); allocated on first use */
    bool tree;            /* the forward in progress is a tree batch */
    int32_t *tree_pos;    /* [n_batch] RoPE position of each slot (its depth) */
    int32_t *tree_end;    /* [n_batch] one past the last slot of each slot's subtree */
    int32_t *tree_root;   /* [n_batch] slot of the root of each slot's sequence */
    /* segmented cache (rq_state_set_segments, rq_model_forward_segments) */
    int64_t seg_len;      /* positions per segment; 0: the state is not segmented */
    int64_t n_seg;        /* segments: n_ctx / seg_len */
    int64_t *seg_fill;    /* [n_seg] positions each segment holds (0..seg_fill−1) */
    int64_t *seg_next;    /* [n_seg] scratch of the argument check (−1 between calls) */
    bool segments;        /* the forward in progress is a segmented batch */
    int64_t *seg_pos;     /* [n_batch] RoPE position of each row */
    int64_t *seg_slot;    /* [n_batch] cache slot of each row: seg·seg_len + pos */
    int64_t *seg_blk;     /* [n_batch + 1] first row of each attention block (runs of one segment) */
    int64_t n_seg_blk;    /* attention blocks of the batch */
    rq_model_acts *acts;  /* training: the forward fills these (not owned); NULL otherwise */
} rq_state;

/* Allocate a run state for up to n_ctx positions and n_batch tokens per forward call.
 * all_logits: room for logits of every token of a batch (else only the last).
 * Owned by the caller (rq_state_free). The model must outlive it. */
rq_status rq_state_new(const rq_model *m, int64_t n_ctx, int64_t n_batch, bool all_logits, rq_state **out);
void rq_state_free(rq_state *st);
/* Forget the cache (n_past = 0, and every segment empty). */
void rq_state_reset(rq_state *st);
/* Bytes the KV cache of this state takes per position (all layers, K and V). */
int64_t rq_state_kv_bytes_per_token(const rq_state *st);

/* THE forward pass: tokens[0..n) at positions pos..pos+n-1 (the cache must already hold
 * positions 0..pos-1; those after are dropped). Writes st->hidden, and st->logits per
 * `mode`. Errors: n outside [1, n_batch], pos+n > n_ctx, token id out of range. */
rq_status rq_model_forward(rq_state *st, const int32_t *tokens, int64_t n, int64_t pos, rq_logits_mode mode);

/* Run layers [l0, l1) on the residual rows already in st->x [n, n_embd] at positions
 * pos..pos+n-1 (their K/V go to the cache of those layers). The calibration driver steps
 * through the model this way, one layer for all its sequences at a time. */
rq_status rq_model_forward_layers(rq_state *st, int64_t l0, int64_t l1, int64_t n, int64_t pos);

/* rq_model_forward_layers on a segmented state (rq_state_set_segments): layers [l0, l1) on
 * the residual rows already in st->x [n, n_embd], row i of segment seg[i] at position pos[i]
 * (the rules of rq_model_forward_segments: each row attends only to its own segment). Block-
 * wise training runs one layer over the independent sequences of a batch this way. Saves
 * activations when st->acts is set. Errors (RQ_EINVAL): layers out of range, no segments,
 * n outside [1, n_batch], a segment or position out of range or not consecutive;
 * RQ_EUNSUPPORTED: packed KV cache. */
rq_status rq_model_forward_layers_segments(rq_state *st, int64_t l0, int64_t l1, const int64_t *seg,
                                           const int64_t *pos, int64_t n);

/* Tree-batched forward: n tokens forming a forest of sequences that share prefixes (a
 * shared context followed by several continuations, several such items side by side),
 * in depth-first pre-order: parent[i] is the slot of token i's predecessor (< i), or -1
 * where a new sequence starts. Token i attends to itself and its ancestors only, and sits
 * at position depth(i) (0 for a root) — so each root-to-leaf path computes exactly what
 * rq_model_forward computes for that path alone. The batch occupies cache slots 0..n-1
 * (n_past is 0 afterwards: a plain forward cannot continue a tree). Writes st->hidden [n,
 * n_embd] and st->logits per mode (LAST = the last slot). Errors: n outside [1, n_batch],
 * a token id out of range, a parent out of range or not on the path from its root to
 * token i−1 (not pre-order). */
rq_status rq_model_forward_tree(rq_state *st, const int32_t *tokens, const int32_t *parent, int64_t n,
                                rq_logits_mode mode);

/* Split the state's KV cache into n_seg = n_ctx / seg_len segments of seg_len positions
 * (slots [s·seg_len, (s+1)·seg_len) are segment s; slots past n_seg·seg_len stay unused),
 * each holding one independent sequence, all empty. Called again, it re-splits (all
 * empty). rq_model_forward, rq_model_forward_tree and rq_model_forward_layers on the
 * state write from slot 0 as one sequence: they empty every segment (the split stays).
 * Errors: seg_len outside [1, n_ctx] (RQ_EINVAL). */
rq_status rq_state_set_segments(rq_state *st, int64_t seg_len);

/* Segmented forward: n tokens of several independent sequences in one call, so that the
 * linears run as one GEMM over the n rows (batched sampling: one token of each of B
 * sequences per call; or several tokens of a segment, a prefill). tokens, seg, pos [n]:
 * token i belongs to segment seg[i] and sits at position pos[i] (its RoPE position; cache
 * slot seg[i]·seg_len + pos[i]); it attends to positions 0..pos[i] of its own segment
 * only, the earlier ones held in the cache or coming earlier in this batch. Rows of one
 * segment need not be adjacent, but taken in batch order their positions must be
 * consecutive, p0, p0+1, ..., with p0 <= the positions the segment holds (like pos of
 * rq_model_forward: positions after the batch's last are dropped); each row of a
 * segment computes what rq_model_forward computes for that sequence alone. Afterwards
 * segment s holds positions 0..(its last position in the batch), the segments absent
 * from the batch are unchanged, and n_past is 0 (a plain forward cannot continue a
 * segment). Writes st->hidden [n, n_embd] and st->logits per mode (LAST: row n−1; ALL:
 * every row, [n, n_vocab], needs a state with all_logits). The packed 4-bit KV cache is
 * not supported (the float cache, and the fake-quantized one of kv_fake, are).
 * Errors (RQ_EINVAL unless said): no segments set, n outside [1, n_batch], a token id, a
 * segment or a position out of range, a position past what its segment holds, a
 * segment's positions not consecutive in batch order; RQ_EUNSUPPORTED: packed KV cache. */
rq_status rq_model_forward_segments(rq_state *st, const int32_t *tokens, const int64_t *seg, const int64_t *pos,
                                    int64_t n, rq_logits_mode mode);

/* Logits of rows of normed hidden states: out[n, n_vocab] = hidden[n, n_embd]·Wᵀ_out. */
void rq_model_logits(const rq_model *m, const float *hidden, int64_t n, float *out);

#endif
