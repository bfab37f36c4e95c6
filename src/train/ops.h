/* Backward of the forward pass's operations (src/model/forward.c, model/ops.h,
 * kernels/vmath.h), float32, threaded over the one pool (base/pool.h), the GEMMs through
 * single-threaded OpenBLAS calls inside the pool's work items.
 *
 * Conventions: row-major, a linear stored [out, in] computes y = x·Wᵀ; activations are rows
 * [n, dim]. "dX" is ∂L/∂X for the scalar loss L. Gradients of parameters are ACCUMULATED
 * (+=) so that several uses (tied embedding, several sequences) add up; gradients of
 * activations are written unless the argument says accumulate.
 *
 * Determinism: every output element is computed by one work item whose bounds do not depend
 * on the number of threads, so results are bit-identical for any thread count.
 * Each backward is checked against central finite differences of a float64 forward in
 * tests/test_grad.c. */
#ifndef RQ_TRAIN_OPS_H
#define RQ_TRAIN_OPS_H

#include <stdbool.h>
#include <stdint.h>

/* Token embedding x[i] = E[tok[i]]·scale (Gemma-3: scale √n_embd): dE[tok[i]] += scale·dx[i].
 * dx [n, d], dE [n_vocab, d]. Serial (a scatter; rows may repeat). */
void rq_train_embed_backward(const float *dx, const int32_t *tok, int64_t n, int64_t d, float scale, float *dE);

/* RMSNorm y = x·r·g, r = 1/sqrt(Σx²/d + eps), over rows x [n, d] with the stored scale g [d]
 * (LLaMA's w; Gemma's 1 + w is stored as the sum, so ∂L/∂w = ∂L/∂g):
 *   dx_i = r·g_i·dy_i − (r³/d)·x_i·Σ_j g_j·dy_j·x_j      (written, or added when accumulate)
 *   dg_j += Σ_rows dy_j·x_j·r
 * dg may be NULL (no parameter gradient wanted). */
void rq_train_rmsnorm_backward(const float *x, const float *g, const float *dy, int64_t n, int64_t d, float eps,
                               float *dx, bool accumulate, float *dg);

/* y = x·Wᵀ, W [n_out, n_in], x [n, n_in], dy [n, n_out]:
 *   dx [n, n_in] = dy·W (written, or added when accumulate; dx NULL: skipped)
 *   dW [n_out, n_in] += dyᵀ·x (dW NULL: skipped). */
void rq_train_linear_backward(const float *w, const float *x, const float *dy, int64_t n, int64_t n_out,
                              int64_t n_in, float *dx, bool accumulate, float *dw);

/* RoPE backward on one head vector dx [head_dim] in place (the forward is a rotation by the
 * angles of cos/sin; its backward is the rotation by the opposite angles). neox: pairs
 * (i, i + rope_dim/2), else (2i, 2i+1), as model/ops.h. */
void rq_train_rope_backward(float *dx, const float *cos_, const float *sin_, int64_t rope_dim, bool neox);

/* MLP activations h = act(g)·u over n elements (SwiGLU: act = silu; GELU: act = gelu with
 * the tanh approximation, model/ops.h rq_geglu): from the pre-activations g, u and dh,
 * dg = dh·u·act'(g), du = dh·act(g) (written; du may equal dh). h [n] may be NULL; when not, h = act(g)·u is
 * written too (the input of down, recomputed for its weight gradient). */
void rq_train_mlp_act_backward(bool gelu, const float *g, const float *u, const float *dh, int64_t n, float *dg,
                               float *du, float *h);
/* h = act(g)·u alone (the forward, for recomputation). */
void rq_train_mlp_act(bool gelu, const float *g, const float *u, int64_t n, float *h);

/* Causal GQA attention over n_seq sequences of T rows each (sequence b is rows
 * [b·T, (b+1)·T), positions 0..T−1), as the forward computes it:
 *   S = scale·q_h·k_{h/group}ᵀ, row t masked to keys (t − window, t] (window 0: [0, t]),
 *   P = softmax(S) (rows), o_h = P·v_{h/group}
 * q, dq [n, n_head·hd]; k, v, dk, dv [n, n_kv·hd]; dout [n, n_head·hd]. P is recomputed
 * from q and k (not saved). dq, dk, dv written. */
typedef struct rq_train_attn_shape {
    int64_t n_seq, T, n_head, n_kv, hd, window;
    float scale;
} rq_train_attn_shape;
void rq_train_attention_backward(const rq_train_attn_shape *a, const float *q, const float *k, const float *v,
                                 const float *dout, float *dq, float *dk, float *dv);

/* ---- losses (rows of logits [n, V]; the gradient may be written over the logits) ----- */

/* Cross-entropy: for rows with target[i] >= 0, L_i = −log softmax(z_i)[target_i];
 * dz_i = scale·(softmax(z_i) − onehot(target_i)); rows with target −1 get dz = 0.
 * Returns Σ_i L_i (double; not scaled). dz may equal z. */
double rq_train_xent(const float *z, const int32_t *target, int64_t n, int64_t V, float scale, float *dz);

/* Distillation loss of the student logits zs against the teacher's zt, per row,
 *   L_i = γ·KL(P_s ‖ P_t) + (1 − γ)·KL(P_t ‖ P_s)
 * (γ = 0: the forward KL(teacher ‖ student); γ in between: METHODS.md's CAKLD), summed over
 * the vocabulary:
 *   ∂KL(P_t‖P_s)/∂zs_j = p_s,j − p_t,j
 *   ∂KL(P_s‖P_t)/∂zs_j = p_s,j·(log p_s,j − log p_t,j − KL(P_s‖P_t))
 * dzs = scale·∂L_i/∂zs (dzs may equal zs). Returns Σ_i L_i (double; not scaled). */
double rq_train_kl(const float *zs, const float *zt, int64_t n, int64_t V, double gamma, float scale, float *dzs);

#endif
